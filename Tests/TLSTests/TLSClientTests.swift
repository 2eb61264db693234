import Foundation
import Reactor
@testable import TLS
import XCTest

/// TLSClientContext + TLSSession(client:) against the TLS test server.
final class TLSClientTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }
    var server: TestTLSServer!

    override func setUpWithError() throws {
        let context = try TLSServerContext(defaultCertificate: certs.source("default", hosts: []), warn: { _ in })
        XCTAssertEqual(context.update([certs.source("demo", hosts: ["demo.localhost"]),
                                       certs.source("chained", hosts: ["chained.localhost"], withChain: true)]), [])
        server = try TestTLSServer(context: context)
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    /// Handshake, one request, the whole response; the handshake status when it did not finish.
    func exchange(_ client: TLSClientContext, serverName: String?) -> (status: TLSHandshakeStatus, response: String, session: TLSSession?) {
        guard let fd = try? Socket.connect(to: SocketAddress(ip: "127.0.0.1", port: server.port)!) else {
            return (.failed("connect"), "", nil)
        }
        defer { close(fd) }
        let deadline = Date().addingTimeInterval(5)
        func wait(write: Bool) -> Bool {
            var p = pollfd(fd: fd, events: Int16(write ? POLLOUT : POLLIN), revents: 0)
            return poll(&p, 1, Int32(max(0, deadline.timeIntervalSinceNow * 1000))) > 0
        }
        let session = TLSSession(client: client, fd: fd, serverName: serverName)
        while true {
            let status = session.handshake()
            switch status {
            case .done: break
            case .wantRead, .wantWrite:
                if !wait(write: status == .wantWrite) { return (.failed("timeout"), "", session) }
                continue
            default: return (status, "", session)
            }
            break
        }
        let request = Array("GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            switch request.withUnsafeBytes({ session.write(UnsafeRawBufferPointer(rebasing: $0[sent...])) }) {
            case .bytes(let n): sent += n
            case .wouldBlock: _ = wait(write: session.lastWantWrite)
            default: return (.done, "", session)
            }
        }
        let buffer = Buffer(capacity: 4096)
        reading: while Date() < deadline {
            switch session.read(into: buffer, minSpace: 1024) {
            case .bytes: continue
            case .wouldBlock: _ = wait(write: session.lastWantWrite)
            case .eof, .error: break reading
            }
        }
        return (.done, String(decoding: buffer.readable, as: UTF8.self), session)
    }

    func testVerifiedConnectionWithTestCA() throws {
        let client = try TLSClientContext(verify: true, caPEM: certs.bytes("ca.crt"))
        let (status, response, session) = exchange(client, serverName: "demo.localhost")
        XCTAssertEqual(status, .done)
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
        XCTAssertTrue(response.hasSuffix("ok"), response)
        XCTAssertEqual(session?.negotiatedProtocol, "http/1.1")
        XCTAssertEqual(session?.protocolVersion, "TLSv1.3")
        XCTAssertEqual(session?.serverName, "demo.localhost")
        XCTAssertEqual(server.served.last?.serverName, "demo.localhost")
    }

    /// The intermediate is only in the server's tls.crt: verification needs the chain sent.
    func testVerifiedConnectionThroughIntermediate() throws {
        let client = try TLSClientContext(verify: true, caPEM: certs.bytes("ca.crt"))
        let (status, response, _) = exchange(client, serverName: "chained.localhost")
        XCTAssertEqual(status, .done)
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
    }

    func testWrongCAFails() throws {
        let client = try TLSClientContext(verify: true, caPEM: certs.bytes("other-ca.crt"))
        let (status, _, _) = exchange(client, serverName: "demo.localhost")
        guard case .failed(let reason) = status else { return XCTFail("expected failure, got \(status)") }
        XCTAssertTrue(reason.contains("certificate verify failed"), reason)
    }

    func testWrongHostNameFails() throws {
        let client = try TLSClientContext(verify: true, caPEM: certs.bytes("ca.crt"))
        // The server serves its default certificate (CN test default) for this name.
        let (status, _, _) = exchange(client, serverName: "nothere.localhost")
        guard case .failed(let reason) = status else { return XCTFail("expected failure, got \(status)") }
        XCTAssertTrue(reason.contains("certificate verify failed"), reason)
    }

    func testVerifyOffAcceptsAnyCertificate() throws {
        let client = try TLSClientContext(verify: false, caPEM: nil)
        let (status, response, _) = exchange(client, serverName: "127.0.0.1")
        XCTAssertEqual(status, .done)
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK"), response)
        XCTAssertNil(server.served.last?.serverName, "an IP address is not sent as SNI")
    }

    func testSystemStoreDoesNotTrustTestCA() throws {
        let client = try TLSClientContext(verify: true, caPEM: nil)
        let (status, _, _) = exchange(client, serverName: "demo.localhost")
        guard case .failed = status else { return XCTFail("expected failure, got \(status)") }
    }

    func testBadCAPEMThrows() {
        XCTAssertThrowsError(try TLSClientContext(verify: true, caPEM: Array("not a certificate".utf8)))
    }
}
