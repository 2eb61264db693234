import Foundation
import TLS

/// Client TLS for https targets: one context for the run (shared read-only by the workers, as
/// OpenSSL allows), one `TLSSession` per connection with its request's name as SNI.
final class TLSClient: @unchecked Sendable {
    let context: TLSClientContext

    init(_ options: TLSOptions) throws {
        var ca: [UInt8]? = nil
        if let path = options.caFile {
            guard let data = FileManager.default.contents(atPath: path) else { throw UsageError("cannot read --cacert '\(path)'") }
            ca = Array(data)
        }
        do {
            context = try TLSClientContext(verify: !options.insecure, caPEM: ca, caFile: options.caFile.map { "--cacert '\($0)'" },
                                           alpn: ["http/1.1"])
        } catch {
            throw UsageError("TLS setup: \(error)")
        }
    }

    /// A handshake failure's reason for the report. OpenSSL says "wrong version number" when the
    /// answer is not a TLS record at all, which nearly always means a plain-HTTP port.
    static func explain(handshakeFailure why: String) -> String {
        if why.contains("wrong version number") { return "the server did not answer with TLS, is it plain HTTP? (\(why))" }
        return why
    }

    func session(fd: Int32, serverName: String) -> TLSSession {
        TLSSession(client: context, fd: fd, serverName: serverName)
    }
}
