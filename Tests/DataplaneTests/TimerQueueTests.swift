import XCTest
import Reactor
#if canImport(Glibc)
import Glibc
#endif

final class TimerQueueTests: XCTestCase {
    private final class Probe: Channel {
        var fired = 0
        override func handleTimeout() { fired += 1 }
    }

    /// Regression: the proxy armed the upstream timer of a connection it had just closed (a
    /// chunked body over the limit arrived with the head); timer links do not retain, so the
    /// freed channel was later read by the loop. Arming a closed channel must do nothing.
    func testArmingAClosedChannelIsANoOp() {
        let loop = EventLoop()
        let queue = loop.timerQueue(nanos: 1_000_000)
        let probe = Probe(fd: dup(2))
        loop.register(probe)
        loop.close(probe)
        queue.arm(probe)
        XCTAssertFalse(probe.hasTimer)
    }

    func testArmCancelAndRearmKeepOneDeadline() {
        let loop = EventLoop()
        let a = loop.timerQueue(nanos: 1_000_000)
        let b = loop.timerQueue(nanos: 5_000_000)
        let probe = Probe(fd: -1)
        a.arm(probe)
        XCTAssertTrue(probe.isTimer(on: a))
        b.arm(probe)
        XCTAssertTrue(probe.isTimer(on: b))
        XCTAssertFalse(probe.isTimer(on: a))
        probe.cancelTimer()
        XCTAssertFalse(probe.hasTimer)
        a.arm(probe)
        a.arm(probe)
        XCTAssertTrue(probe.isTimer(on: a))
        probe.cancelTimer()
    }
}
