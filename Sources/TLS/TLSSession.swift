import COpenSSL
import CSystem
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a non-blocking handshake.
public enum TLSHandshakeStatus: Equatable {
    case done
    /// Call again when the socket is readable.
    case wantRead
    /// Call again when the socket is writable.
    case wantWrite
    /// Server side: the client's first byte is an ASCII letter, not a TLS record: a plain HTTP
    /// request to the TLS port (answer `400` in plain text and close, as nginx does).
    case plainHTTP
    case failed(String)
}

/// One TLS connection over a non-blocking socket, driven by the reactor: every call returns at
/// once, and `.wouldBlock` / `.wantRead` / `.wantWrite` say which event to wait for. OpenSSL
/// reads and writes the descriptor itself; the descriptor stays the caller's to close.
///
/// Writes follow OpenSSL's rule: after `.wouldBlock`, write again with the same bytes (they may
/// have moved, and more may follow, but not fewer).
public final class TLSSession {
    @usableFromInline let ssl: OpaquePointer?
    private let server: TLSServerContext?
    private let client: TLSClientContext?
    private let fd: Int32
    /// Server side: whether the first byte has been checked for a TLS record.
    private var checkedFirstByte: Bool
    public private(set) var lastWantWrite = false
    /// The last `read` ended wanting to write (OpenSSL had to send, e.g. a KeyUpdate answer):
    /// reading resumes when the socket is writable.
    public private(set) var readWantsWrite = false
    /// The last `write` ended wanting to read: writing resumes when the socket is readable.
    public private(set) var writeWantsRead = false
    /// Server side: set by a callback on OpenSSL's socket BIO after each read(2) it makes — 1 when
    /// that read returned less than asked for, so the kernel's queue was empty (see `drained`).
    private let socketDrained: UnsafeMutablePointer<UInt8>?

    public init(server: TLSServerContext, fd: Int32) {
        self.server = server
        self.client = nil
        self.fd = fd
        checkedFirstByte = false
        OpenSSLErrors.clear()
        ssl = SSL_new(server.baseContext)
        let flag = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        flag.initialize(to: 0)
        socketDrained = flag
        if let ssl {
            SSL_set_fd(ssl, fd)
            portico_watch_socket_reads(ssl, flag)
            SSL_set_accept_state(ssl)
            // The callbacks find the context here (unretained: this session holds it).
            SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(server).toOpaque())
        }
        OpenSSLErrors.clear()
    }

    /// `serverName` is sent as SNI and, with verification on, must match the certificate (an IP
    /// address is matched against the certificate's IP addresses and not sent as SNI).
    public init(client: TLSClientContext, fd: Int32, serverName: String?) {
        self.server = nil
        self.client = client
        self.fd = fd
        checkedFirstByte = true
        socketDrained = nil
        OpenSSLErrors.clear()
        ssl = SSL_new(client.context)
        if let ssl {
            SSL_set_fd(ssl, fd)
            SSL_set_connect_state(ssl)
            if let name = serverName, !name.isEmpty {
                if TLSSession.isIPAddress(name) {
                    if client.verify { X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) }
                } else {
                    portico_SSL_set_tlsext_host_name(ssl, name)
                    if client.verify { SSL_set1_host(ssl, name) }
                }
            }
        }
        OpenSSLErrors.clear()
    }

    deinit {
        if let ssl {
            // A connection closed without close_notify (client EOF, timeout) would otherwise make
            // OpenSSL drop its session from the cache: mark it shut down, as nginx does, so a
            // TLS 1.2 client without tickets can still resume.
            if SSL_is_init_finished(ssl) == 1 { SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN) }
            SSL_free(ssl)
        }
        socketDrained?.deallocate()
    }

    static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    // MARK: Handshake

    public func handshake() -> TLSHandshakeStatus {
        guard let ssl else { return .failed("SSL_new failed") }
        if !checkedFirstByte {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { lastWantWrite = false; return .wantRead }
                return .failed("client vanished before the handshake: \(String(cString: strerror(e)))")
            }
            if n == 0 { return .failed("client closed the connection before the handshake") }
            if byte != 0x16 {
                if (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) { return .plainHTTP }
                return .failed("not a TLS handshake (first byte 0x\(String(byte, radix: 16)))")
            }
            checkedFirstByte = true
        }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .done }
        let savedErrno = errno
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ:
            ERR_clear_error()
            lastWantWrite = false
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            ERR_clear_error()
            lastWantWrite = true
            return .wantWrite
        case SSL_ERROR_SYSCALL:
            let reason = OpenSSLErrors.drain()
            if !reason.isEmpty { return .failed(reason) }
            return .failed(savedErrno == 0 ? "peer closed the connection during the handshake"
                           : "handshake: \(String(cString: strerror(savedErrno)))")
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .failed("peer closed the connection during the handshake")
        default:
            var reason = OpenSSLErrors.drain()
            if client != nil {
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK, let text = X509_verify_cert_error_string(verify) {
                    reason += (reason.isEmpty ? "" : ": ") + String(cString: text)
                }
            }
            return .failed(reason.isEmpty ? "handshake failed" : reason)
        }
    }

    // MARK: Data

    /// Reads decrypted bytes into the free space of `buffer` (growing it to at least `minSpace`).
    /// A clean close (close_notify) and a plain EOF are both `.eof`.
    ///
    /// One call returns at most one TLS record (up to 16 KiB); what did not fit stays decrypted
    /// inside OpenSSL, where epoll cannot see it: read again until `.wouldBlock`, or check
    /// `hasBufferedData`, before waiting for the socket to become readable.
    public func read(into buffer: Buffer, minSpace: Int = 4096) -> IOResult {
        guard let ssl else { return .error(EBADF) }
        if buffer.writableCount < minSpace { buffer.reserve(minSpace) }
        let space = buffer.writable
        var n = 0
        OpenSSLErrors.clearIfAny()
        if SSL_read_ex(ssl, space.baseAddress, space.count, &n) == 1 {
            buffer.didWrite(n)
            readWantsWrite = false
            return .bytes(n)
        }
        let result = failure(ssl, ret: 0, errno: errno)
        readWantsWrite = result == .wouldBlock && lastWantWrite
        return result
    }

    /// After a `read` that returned bytes: whether reading again now would only block — OpenSSL
    /// holds no further record and its last read(2) found the socket empty. With an
    /// edge-triggered descriptor the caller can then wait for the next event instead of making
    /// a read(2) that returns EAGAIN (as a short read on a plain socket tells). Always false for
    /// a client-side session (not tracked).
    public var drained: Bool {
        guard let ssl, let flag = socketDrained, flag.pointee != 0 else { return false }
        return SSL_has_pending(ssl) == 0
    }

    /// Encrypts and sends bytes; partial writes return the count taken.
    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        guard let ssl else { return .error(EBADF) }
        if bytes.isEmpty { return .bytes(0) }
        var n = 0
        OpenSSLErrors.clearIfAny()
        if SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &n) == 1 { writeWantsRead = false; return .bytes(n) }
        let result = failure(ssl, ret: 0, errno: errno)
        writeWantsRead = result == .wouldBlock && !lastWantWrite
        return result
    }

    /// Writes `a` then `b` (a generated head, then pass-through bytes); the count is of both
    /// together, `a` first. Up to one TLS record (16 KiB) of the two is copied into a per-thread
    /// scratch buffer and written with one SSL_write: one record and one send instead of two.
    public func write(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult {
        if a.isEmpty { return write(b) }
        if b.isEmpty { return write(a) }
        // The same bytes are copied again when the caller retries after .wouldBlock, so the
        // retry rule (same bytes, not fewer) holds for the scratch buffer too.
        let total = min(a.count + b.count, TLSSession.scratchSize)
        let scratch = TLSSession.scratch()
        let fromA = min(a.count, total)
        scratch.copyMemory(from: a.baseAddress!, byteCount: fromA)
        if total > fromA { (scratch + fromA).copyMemory(from: b.baseAddress!, byteCount: total - fromA) }
        return write(UnsafeRawBufferPointer(start: scratch, count: total))
    }

    static let scratchSize = 16384

    private static let scratchKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    /// This thread's scratch buffer for coalescing writes (freed when the thread ends).
    private static func scratch() -> UnsafeMutableRawPointer {
        if let p = pthread_getspecific(scratchKey) { return p }
        let p = malloc(scratchSize)!
        pthread_setspecific(scratchKey, p)
        return p
    }

    /// Maps an SSL_read/SSL_write failure to IOResult.
    private func failure(_ ssl: OpaquePointer, ret: Int32, errno savedErrno: Int32) -> IOResult {
        let code = SSL_get_error(ssl, ret)
        OpenSSLErrors.clearIfAny()
        switch code {
        case SSL_ERROR_WANT_READ: lastWantWrite = false; return .wouldBlock
        case SSL_ERROR_WANT_WRITE: lastWantWrite = true; return .wouldBlock
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            if savedErrno == 0 { return .eof }
            if savedErrno == EAGAIN || savedErrno == EWOULDBLOCK || savedErrno == EINTR { return .wouldBlock }
            return .error(savedErrno)
        default: return .error(EPROTO)
        }
    }

    // MARK: State

    /// Whether OpenSSL holds received bytes not yet returned by `read` (a record that did not
    /// fit the buffer, or more records already read from the socket).
    public var hasBufferedData: Bool {
        guard let ssl else { return false }
        return SSL_has_pending(ssl) == 1
    }

    /// The ALPN protocol agreed on, if any.
    public var negotiatedProtocol: String? {
        guard let ssl else { return nil }
        var data: UnsafePointer<UInt8>? = nil
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// Server side: the SNI name the client sent; client side: the name this session sent.
    public var serverName: String? {
        guard let ssl, let name = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)) else { return nil }
        return String(cString: name)
    }

    public var isResumed: Bool {
        guard let ssl else { return false }
        return SSL_session_reused(ssl) == 1
    }

    /// `TLSv1.3`, `TLSv1.2`.
    public var protocolVersion: String {
        guard let ssl, let v = SSL_get_version(ssl) else { return "" }
        return String(cString: v)
    }

    /// Sends close_notify if the handshake finished (best effort, never waits).
    public func shutdown() {
        guard let ssl, SSL_is_init_finished(ssl) == 1 else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }
}
