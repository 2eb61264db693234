import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// One connect before the run, so an unreachable target is a one-line error (exit 3) rather than
/// a run full of connect errors.
public enum Preflight {
    /// nil when a TCP connection to `address` opens within `timeoutNanos`, else why not.
    public static func connectProblem(_ address: SocketAddress, timeoutNanos: UInt64) -> String? {
        let fd: Int32
        do {
            fd = try Socket.connect(to: address)
        } catch let e as SocketError {
            return "cannot connect to \(address): \(String(cString: strerror(e.errno)))"
        } catch {
            return "cannot connect to \(address): \(error)"
        }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ms = Int32(min(timeoutNanos / 1_000_000, 60_000))
        let rc = poll(&p, 1, max(ms, 1))
        if rc == 0 { return "cannot connect to \(address): no answer within \(ms) ms" }
        if rc < 0 { return "cannot connect to \(address): \(String(cString: strerror(errno)))" }
        let err = Socket.connectResult(fd)
        if err != 0 { return "cannot connect to \(address): \(String(cString: strerror(err)))" }
        return nil
    }
}
