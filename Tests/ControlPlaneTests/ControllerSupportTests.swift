import Foundation
import Objects
import XCTest
@testable import ControlPlane

/// The pure rules the controllers share (no processes).
final class ControllerSupportTests: XCTestCase {
    func testSurgeRoundsUpAndUnavailableRoundsDown() {
        // Kubernetes: maxSurge rounds up, maxUnavailable rounds down (ResolveFenceposts).
        XCTAssertEqual(ObjectFields.scaled(nil, default: "25%", total: 3, roundUp: true), 1)
        XCTAssertEqual(ObjectFields.scaled(nil, default: "25%", total: 3, roundUp: false), 0)
        XCTAssertEqual(ObjectFields.scaled(.string("50%"), default: "25%", total: 5, roundUp: false), 2)
        XCTAssertEqual(ObjectFields.scaled(.int(2), default: "25%", total: 10, roundUp: true), 2)
        XCTAssertEqual(ObjectFields.scaled(.string("3"), default: "25%", total: 10, roundUp: true), 3)
    }

    func testTemplateHashIsStableAndIgnoresItsOwnLabel() throws {
        let t = try JSONValue.parse(#"{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","command":["sleep","1"]}]}}"#)
        var labelled = t
        labelled[path: ["metadata", "labels", "pod-template-hash"]] = .string("abc")
        let h = ObjectFields.templateHash(t)
        XCTAssertEqual(ObjectFields.templateHash(labelled), h)
        XCTAssertEqual(ObjectFields.templateHash(try JSONValue.parse(t.jsonString)), h, "same after a store round trip")
        XCTAssertTrue(h.allSatisfy { "bcdfghjklmnpqrstvwxz2456789".contains($0) }, h)
        var changed = t
        changed[path: ["spec", "containers"]] = try JSONValue.parse(#"[{"name":"c","command":["sleep","2"]}]"#)
        XCTAssertNotEqual(ObjectFields.templateHash(changed), h)
        XCTAssertNotEqual(ObjectFields.templateHash(t, collisionCount: 1), h)
        XCTAssertTrue(DeploymentController.sameTemplate(labelled, t))
        XCTAssertFalse(DeploymentController.sameTemplate(changed, t))
    }

    func testSelectorWithExpressions() throws {
        let s = try XCTUnwrap(ObjectFields.selector(try JSONValue.parse(
            #"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},{"key":"legacy","operator":"DoesNotExist"}]}"#)))
        XCTAssertTrue(s.matches(["app": "web", "tier": "a"]))
        XCTAssertFalse(s.matches(["app": "web", "tier": "c"]))
        XCTAssertFalse(s.matches(["app": "web", "tier": "a", "legacy": "1"]))
        XCTAssertNil(ObjectFields.selector(try JSONValue.parse(#"{}"#)), "an empty selector selects nothing here")
    }

    func testStatefulSetOrdinals() {
        XCTAssertEqual(StatefulSetController.ordinal("db-0", of: "db"), 0)
        XCTAssertEqual(StatefulSetController.ordinal("db-12", of: "db"), 12)
        XCTAssertNil(StatefulSetController.ordinal("db-01", of: "db"))
        XCTAssertNil(StatefulSetController.ordinal("db-x", of: "db"))
        XCTAssertNil(StatefulSetController.ordinal("dbx-1", of: "db"))
    }

    func testServiceEnvironmentNames() {
        XCTAssertEqual(ServiceController.envName("backend-api"), "BACKEND_API")
    }
}

final class ControllerConfigDataTests: XCTestCase {
    func testConfigMapAndSecretDataForTheAgent() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.configMaps, #"{"metadata":{"name":"cfg"},"data":{"MODE":"fast"}}"#)
        try h.apply(.secrets, #"{"metadata":{"name":"sec"},"data":{"TOKEN":"c2VjcmV0"}}"#)
        XCTAssertEqual(h.onLoop { h.manager.configData(namespace: "default", kind: "ConfigMap", name: "cfg") }, ["MODE": "fast"])
        XCTAssertEqual(h.onLoop { h.manager.configData(namespace: "default", kind: "Secret", name: "sec") }, ["TOKEN": "secret"])
        XCTAssertNil(h.onLoop { h.manager.configData(namespace: "default", kind: "Secret", name: "missing") })
    }
}
