import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

final class ControllerRestartTests: XCTestCase {
    func testANewManagerConvergesWithoutDuplicates() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.deployments, deploymentJSON("web", replicas: 3))
        try h.apply(.statefulSets, statefulSetJSON("db", replicas: 2, probe: #"{"exec":{"command":["true"]},"periodSeconds":1}"#))
        h.waitUntil("all ready") { h.readyPods("app=web").count == 3 && h.readyPods("app=db").count == 2 }
        let uids = Set(h.pods().map(\.uid))

        // A new manager over the same store and agent changes nothing.
        h.startManager()
        usleep(500_000)
        h.waitUntil("idle") { h.onLoop { h.manager.isIdle } }
        XCTAssertEqual(Set(h.pods().map(\.uid)), uids)
        XCTAssertEqual(h.runningPods.count, 5)

        // Changes made while no manager runs are picked up by the next one.
        h.stopManager()
        try h.edit(.deployments, "web") { $0[path: ["spec", "replicas"]] = .int(4) }
        let gone = try XCTUnwrap(h.pods("app=web").first)
        try h.store.delete(.pods, namespace: "default", name: gone.name)
        usleep(300_000)
        XCTAssertEqual(h.runningPods.count, 5, "nothing happens without a manager")
        h.startManager()
        h.waitUntil("converged") { h.readyPods("app=web").count == 4 && h.runningPods.count == 6 }
        usleep(500_000)
        XCTAssertEqual(h.pods("app=web").count, 4)
        XCTAssertEqual(h.runningPods.count, 6)
        XCTAssertFalse(h.runningPods.contains { $0.uid == gone.uid })
        XCTAssertEqual(try h.store.list(.replicaSets).items.count, 1)
    }
}
