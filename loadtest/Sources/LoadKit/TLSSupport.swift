import Reactor

/// The load tester's view of client TLS. Until the TLS module lands, https is refused with a
/// clear error instead of being faked.
final class TLSClient {
    init(_ options: TLSOptions) throws {
        throw UsageError("https is not available in this build: the TLS module has not landed yet (use http://)")
    }

    func session(fd: Int32) -> ClientTLSSession { ClientTLSSession() }
}

enum HandshakeStep: Equatable {
    case done, wantRead, wantWrite
    case failed(String)
}

final class ClientTLSSession {
    func handshake() -> HandshakeStep { .failed("TLS not available") }
    func read(into buffer: Buffer, minSpace: Int) -> IOResult { .error(95) }
    func write(_ bytes: UnsafeRawBufferPointer) -> IOResult { .error(95) }
    var lastWantWrite: Bool { false }
}
