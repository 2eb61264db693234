import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// One side of a `ByteTunnel`: a connection with edge-triggered readiness flags and its transport
/// (a plain socket, or TLS). Used as a generic parameter, never as an existential: `pump` is
/// specialised for each pair of end types, so every call in its loop is direct.
protocol TunnelEnd: AnyObject {
    var canRead: Bool { get set }
    var canWrite: Bool { get set }
    /// Reads into the free space of `buffer` (grown to at least `minSpace`).
    func transportRead(into buffer: Buffer, minSpace: Int) -> IOResult
    /// Writes `a` then `b` (either may be empty) in one call.
    func transportWrite(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult
    /// True on a plain socket, where a short write means the kernel's buffer is full (wait for
    /// EPOLLOUT); false with TLS, where OpenSSL may take the rest at once.
    var shortWriteMeansFull: Bool { get }
    /// Ends this side's sending, so its peer reads an end of file (half-close).
    func shutdownWrite()
}

/// A tunnel end on a plain socket: the channel's own descriptor, no TLS.
protocol PlainSocketTunnelEnd: Channel, TunnelEnd {}

extension PlainSocketTunnelEnd {
    @inline(__always) func transportRead(into buffer: Buffer, minSpace: Int) -> IOResult {
        Socket.read(fd, into: buffer, minSpace: minSpace)
    }

    @inline(__always) func transportWrite(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult {
        Socket.write(fd, a, b)
    }

    var shortWriteMeansFull: Bool { true }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }
}

/// A tunnel end that is plain or TLS by its `tls` session: the proxy's client and upstream
/// connections, which use the same branch for HTTP.
protocol PlainOrTLSTunnelEnd: Channel, TunnelEnd {
    var tls: TLSSession? { get }
}

extension PlainOrTLSTunnelEnd {
    @inline(__always) func transportRead(into buffer: Buffer, minSpace: Int) -> IOResult {
        if let t = tls { return t.read(into: buffer, minSpace: minSpace) }
        return Socket.read(fd, into: buffer, minSpace: minSpace)
    }

    @inline(__always) func transportWrite(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult {
        if let t = tls { return t.write(a, b) }
        return Socket.write(fd, a, b)
    }

    var shortWriteMeansFull: Bool { tls == nil }

    func shutdownWrite() {
        tls?.shutdown()
        shutdown(fd, Int32(SHUT_WR))
    }
}

/// A two-way byte tunnel between end A (the client) and end B (the upstream), after the proxy
/// stopped reading the bytes as HTTP (a 101 Upgrade) or never did (a Service's TCP port). Each
/// side's bytes are read into its own buffer and written to the other side; a buffer is refilled
/// only once it is empty, so a slow reader stops the reading on the other side (backpressure).
/// The ends and buffers stay with their owners; this holds only what the tunnel itself knows.
struct ByteTunnel {
    /// What an end of file read from one side does.
    enum EndOfFile {
        /// Passed on as a half-close (`shutdownWrite` on the other side); the other direction
        /// goes on, and the tunnel is over once both sides finished and both buffers drained.
        case halfClose
        /// Ends the tunnel.
        case end
    }

    let onEndOfFile: EndOfFile
    /// A's (B's) end of file was read and passed on to the other side.
    private(set) var aFinished = false
    private(set) var bFinished = false

    init(onEndOfFile: EndOfFile) { self.onEndOfFile = onEndOfFile }

    /// Moves bytes both ways until neither direction can make progress now. Returns true when
    /// the tunnel is over (an error, an end of file with `.end`, or both sides finished): the
    /// caller then closes both ends. `headForA` holds bytes for A that go before B's (the 101
    /// response head), written with them in one call.
    mutating func pump<A: TunnelEnd, B: TunnelEnd>(_ a: A, _ fromA: Buffer, _ b: B, _ fromB: Buffer,
                                                   headForA: Buffer? = nil) -> Bool {
        let halfClose = onEndOfFile == .halfClose
        var progress = true
        while progress {
            progress = false
            // B to A first: a head for A is waiting before anything else.
            switch Self.step(from: b, fromB, to: a, head: headForA, halfClose: halfClose, finished: &bFinished) {
            case .progress: progress = true
            case .idle: break
            case .over: return true
            }
            switch Self.step(from: a, fromA, to: b, head: nil, halfClose: halfClose, finished: &aFinished) {
            case .progress: progress = true
            case .idle: break
            case .over: return true
            }
            if aFinished && bFinished && fromA.isEmpty && fromB.isEmpty { return true }
        }
        return false
    }

    private enum Step { case progress, idle, over }

    /// One step of one direction: write what `head` and `buf` hold to `dst`, or, once both are
    /// empty, read more from `src` into `buf`.
    @inline(__always)
    private static func step<S: TunnelEnd, D: TunnelEnd>(from src: S, _ buf: Buffer, to dst: D, head: Buffer?,
                                                         halfClose: Bool, finished: inout Bool) -> Step {
        let headCount = head?.readableCount ?? 0
        if headCount > 0 || !buf.isEmpty {
            guard dst.canWrite else { return .idle }
            let h = head?.readable ?? UnsafeRawBufferPointer(start: nil, count: 0)
            switch dst.transportWrite(h, buf.readable) {
            case .bytes(let n):
                let fromHead = min(n, headCount)
                if fromHead > 0 { head?.consume(fromHead) }
                buf.consume(n - fromHead)
                if (headCount > fromHead || !buf.isEmpty) && dst.shortWriteMeansFull {
                    dst.canWrite = false
                    return .idle
                }
                return .progress
            case .wouldBlock:
                dst.canWrite = false
                return .idle
            case .error, .eof:
                return .over
            }
        }
        guard src.canRead && !finished else { return .idle }
        switch src.transportRead(into: buf, minSpace: 16384) {
        case .bytes:
            return .progress
        case .wouldBlock:
            src.canRead = false
            return .idle
        case .eof:
            guard halfClose else { return .over }
            finished = true
            dst.shutdownWrite()
            return .progress
        case .error:
            return .over
        }
    }
}
