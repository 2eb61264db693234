import Foundation
import Objects
import XCTest
@testable import ControlPlane

/// The recorder's correlation map (client-go's event correlator: the same reason and message
/// about the same object bumps `count`) must hold only Events that still exist: each rolling
/// update records a few dozen new keys, one per new pod.
final class EventRecorderTests: XCTestCase {
    private var dir: String!
    private var store: Store!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-events-\(UUID().uuidString)"
        store = try Store(directory: dir)
    }

    override func tearDownWithError() throws {
        store?.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private static func pod(_ i: Int) -> JSONValue {
        .object(["apiVersion": .string("v1"), "kind": .string("Pod"),
                 "metadata": .object(["name": .string("web-\(i)"), "namespace": .string("default"), "uid": .string("uid-\(i)")])])
    }

    private func events() throws -> [JSONValue] { try store.list(.events).items }

    func testForgetsEventsThatAreGoneAndStillBumpsTheOthers() throws {
        let recorder = EventRecorder(store: store)
        for i in 0..<50 { recorder.record(Self.pod(i), reason: "Started", message: "Started container web", component: "kubelet") }
        XCTAssertEqual(recorder.correlatedCount, 50)
        XCTAssertEqual(try events().count, 50)

        for e in try events() where e[path: ["involvedObject", "name"]]?.stringValue.map({ Int($0.dropFirst(4))! >= 20 }) == true {
            try store.delete(.events, namespace: e.namespace, name: e.name)
        }
        recorder.forgetMissing()
        XCTAssertEqual(recorder.correlatedCount, 20, "the 30 deleted Events are forgotten")

        // A kept one is bumped; a forgotten one is written anew.
        recorder.record(Self.pod(3), reason: "Started", message: "Started container web", component: "kubelet")
        recorder.record(Self.pod(40), reason: "Started", message: "Started container web", component: "kubelet")
        let byPod = Dictionary(grouping: try events()) { $0[path: ["involvedObject", "name"]]?.stringValue ?? "" }
        XCTAssertEqual(byPod["web-3"]?.count, 1)
        XCTAssertEqual(byPod["web-3"]?.first?["count"]?.intValue, 2)
        XCTAssertEqual(byPod["web-40"]?.count, 1)
        XCTAssertEqual(byPod["web-40"]?.first?["count"]?.intValue, 1)
        XCTAssertEqual(recorder.correlatedCount, 21)
    }

    /// Events expired by the manager's collection (`--event-ttl`) leave the recorder too.
    func testCollectedEventsLeaveTheRecorder() throws {
        var options = ControllerOptions()
        options.eventTTL = 0
        let h = try ControllerHarness(options: options)
        defer { h.finish() }
        h.onLoop {
            for i in 0..<20 { h.manager.event(Self.pod(i), "Normal", "Killing", "Stopping container web", component: "kubelet") }
        }
        XCTAssertEqual(h.onLoop { h.manager.events.correlatedCount }, 20)
        // Timestamps have whole seconds: one later, every Event is past a TTL of 0.
        Thread.sleep(forTimeInterval: 1.1)
        h.onLoop { h.manager.collectEvents() }
        XCTAssertEqual(try h.store.list(.events).items.count, 0)
        XCTAssertEqual(h.onLoop { h.manager.events.correlatedCount }, 0, "the recorder forgets the collected Events")
    }
}
