import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// An error from a socket call, with the call's name and errno.
public struct SocketError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public init(_ call: String, _ errno: Int32) { self.call = call; self.errno = errno }
    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// Thin wrappers over the socket calls the reactor needs; all descriptors are non-blocking and
/// close-on-exec.
public enum Socket {
    /// A listening TCP socket. `reusePort` lets every worker bind its own listener to the same
    /// address (the kernel spreads connections across them).
    public static func listen(_ address: SocketAddress, reusePort: Bool, backlog: Int32 = 4096) throws -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let rc = address.withSockAddr { bind(fd, $0, $1) }
        guard rc == 0 else { let e = errno; Glibc.close(fd); throw SocketError("bind \(address)", e) }
        guard Glibc.listen(fd, backlog) == 0 else { let e = errno; Glibc.close(fd); throw SocketError("listen \(address)", e) }
        return fd
    }

    /// The address a socket is bound to (to learn the port chosen for `:0`).
    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!, length: Int(len)) }
    }

    /// Accepts one connection, non-blocking; nil on EAGAIN. Throws on other errors (EMFILE …).
    @inline(__always)
    public static func accept(_ listener: Int32, peer: inout sockaddr_storage) throws -> Int32? {
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                portico_accept4(listener, $0, &len, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            }
        }
        if fd >= 0 { return fd }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED { return nil }
        throw SocketError("accept", e)
    }

    /// Starts a non-blocking connect. Returns the descriptor; completion is signalled by
    /// EPOLLOUT, after which `connectResult` tells success or the error.
    public static func connect(to address: SocketAddress) throws -> Int32 {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno) }
        setNoDelay(fd)
        let rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let e = errno
            Glibc.close(fd)
            throw SocketError("connect \(address)", e)
        }
        return fd
    }

    /// 0 when a non-blocking connect succeeded, else the errno it failed with.
    public static func connectResult(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
        return err
    }

    @inline(__always) public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets SO_LINGER to zero so close() sends RST (used to drop a connection on purpose).
    public static func setLingerZero(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }
}

/// Result of a non-blocking read or write.
public enum IOResult: Equatable {
    case bytes(Int)
    case wouldBlock
    case eof
    case error(Int32)
}

extension Socket {
    /// Reads into the free space of `buffer` (growing it to at least `minSpace`).
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: Buffer, minSpace: Int = 4096) -> IOResult {
        if buffer.writableCount < minSpace { buffer.reserve(minSpace) }
        let space = buffer.writable
        while true {
            let n = Glibc.read(fd, space.baseAddress, space.count)
            if n > 0 { buffer.didWrite(n); return .bytes(n) }
            if n == 0 { return .eof }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(e)
        }
    }

    /// Writes from `bytes`; partial writes return the count written.
    @inline(__always)
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(e)
        }
    }

    /// Writes two byte ranges with one writev call (a generated head, then pass-through bytes).
    @inline(__always)
    public static func write(_ fd: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult {
        if a.count == 0 { return write(fd, b) }
        if b.count == 0 { return write(fd, a) }
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count))
        while true {
            let n = withUnsafeMutablePointer(to: &iov) {
                $0.withMemoryRebound(to: iovec.self, capacity: 2) { Glibc.writev(fd, $0, 2) }
            }
            if n >= 0 { return .bytes(n) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .error(e)
        }
    }
}
