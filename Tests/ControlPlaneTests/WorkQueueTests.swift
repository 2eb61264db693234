import CSystem
import Foundation
import Reactor
import XCTest
@testable import ControlPlane

/// Delayed adds keep one timer per item, the earliest (client-go's delaying queue): a key
/// requeued on every sync must not pile up timers.
final class WorkQueueTests: XCTestCase {
    func testDelayedAddsKeepOneTimerPerItemTheEarliest() throws {
        let loop = EventLoop()
        let timers = AgentTimers()
        let queue = WorkQueue(loop: loop, timers: timers, backoffBase: 0.1, backoffMax: 1)
        var processed: [String] = []
        queue.process = { item in processed.append(item.key); return nil }
        loop.register(timers, events: EPOLLIN.rawValue, edgeTriggered: false)
        let thread = OSThread(name: "queue-test") { loop.run() }
        defer {
            loop.execute { loop.stop() }
            thread.join()
        }
        func onLoop<T>(_ body: @escaping () -> T) -> T { loop.runAndWait(body) }
        let a = WorkQueue.Item(controller: "deployment", key: "default/a")
        let b = WorkQueue.Item(controller: "deployment", key: "default/b")

        // A progress deadline asked for on each of 100 syncs: one timer.
        XCTAssertEqual(onLoop { for _ in 0..<100 { queue.add(after: 600, a) }; return timers.count }, 1)
        // An earlier time for the same item takes over; the later timer will do nothing.
        XCTAssertEqual(onLoop { queue.add(after: 0.1, a); queue.add(after: 300, a); return timers.count }, 2)
        XCTAssertEqual(onLoop { for _ in 0..<50 { queue.add(after: 0.2, b) }; return timers.count }, 3)

        let deadline = Date().addingTimeInterval(5)
        while onLoop({ processed.count }) < 2 && Date() < deadline { usleep(20_000) }
        usleep(300_000)
        XCTAssertEqual(onLoop { processed }, ["default/a", "default/b"], "each item synced once, at its earliest time")
        XCTAssertEqual(onLoop { timers.count }, 1, "only a's replaced 600 s timer is left, until its deadline")
        // Once fired, the item can wait again.
        XCTAssertEqual(onLoop { queue.add(after: 600, b); return timers.count }, 2)
    }
}
