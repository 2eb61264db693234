// WebSocket through the proxy (RFC 6455): the Upgrade is forwarded, the 101 comes back, and from
// then on bytes are tunnelled both ways; the echo backend sends every frame back.

import Foundation
import XCTest

final class WebSocketTests: XCTestCase {
    struct State {
        var server: PorticoServer
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("ws")
        let m = try fx.dir.write("ws.yaml", Manifest.join([
            Manifest.service("svc-ws", endpoints: [echo.address]),
            Manifest.ingress("ws", rules: [.init(host: "ws.test", [.init("/", "Prefix", "svc-ws")])]),
        ]))
        return State(server: try fx.serve([m]))
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    /// The key and accept value from RFC 6455 §1.3.
    private let key = "dGhlIHNhbXBsZSBub25jZQ=="
    private let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    private func handshake() throws -> RawClient {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort, timeout: 5)
        try c.send("GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 101, r.rawHead + r.bodyText)
        XCTAssertEqual(r.header("upgrade")?.lowercased(), "websocket", r.rawHead)
        XCTAssertTrue(r.header("connection")?.lowercased().contains("upgrade") ?? false, r.rawHead)
        XCTAssertEqual(r.header("sec-websocket-accept"), accept, r.rawHead)
        return c
    }

    /// A client frame: FIN set, masked (RFC 6455 §5.3).
    private func frame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            f.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            f.append(0x80 | 126)
            f += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            f.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { f.append(UInt8((payload.count >> shift) & 0xFF)) }
        }
        let mask: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        f += mask
        for (i, b) in payload.enumerated() { f.append(b ^ mask[i % 4]) }
        return f
    }

    /// Reads one server frame; server frames are never masked (RFC 6455 §5.1).
    private func readFrame(_ c: RawClient) throws -> (fin: Bool, opcode: UInt8, payload: [UInt8]) {
        let h = try c.readExactly(2)
        XCTAssertEqual(h[1] & 0x80, 0, "server frames are not masked")
        var len = Int(h[1] & 0x7F)
        if len == 126 {
            let e = try c.readExactly(2)
            len = Int(e[0]) << 8 | Int(e[1])
        } else if len == 127 {
            len = try c.readExactly(8).reduce(0) { $0 << 8 | Int($1) }
        }
        return (h[0] & 0x80 != 0, h[0] & 0x0F, try c.readExactly(len))
    }

    func testTextFrameIsEchoed() throws {
        let c = try handshake()
        try c.send(frame(opcode: 1, Array("hello, portico".utf8)))
        let f = try readFrame(c)
        XCTAssertTrue(f.fin)
        XCTAssertEqual(f.opcode, 1)
        XCTAssertEqual(String(decoding: f.payload, as: UTF8.self), "hello, portico")
    }

    func testLargeBinaryFramesAreEchoedInOrder() throws {
        let c = try handshake()
        let medium = (0..<300).map { UInt8($0 & 0xFF) }
        let large = (0..<70_000).map { UInt8(($0 * 7) & 0xFF) }
        // Two frames in one write: the tunnel keeps them in order.
        try c.send(frame(opcode: 2, medium) + frame(opcode: 2, large))
        let f1 = try readFrame(c)
        XCTAssertEqual(f1.opcode, 2)
        XCTAssertEqual(f1.payload, medium)
        let f2 = try readFrame(c)
        XCTAssertEqual(f2.opcode, 2)
        XCTAssertEqual(f2.payload.count, large.count)
        XCTAssertTrue(f2.payload == large, "70000-byte payload echoed intact")
    }

    func testManyMessagesOnOneConnection() throws {
        let c = try handshake()
        for i in 0..<50 {
            try c.send(frame(opcode: 1, Array("message \(i)".utf8)))
            let f = try readFrame(c)
            XCTAssertEqual(String(decoding: f.payload, as: UTF8.self), "message \(i)")
        }
    }

    func testCloseFrameIsEchoedAndConnectionEnds() throws {
        let c = try handshake()
        try c.send(frame(opcode: 8, [0x03, 0xE8]))  // 1000 normal closure
        let f = try readFrame(c)
        XCTAssertEqual(f.opcode, 8)
        XCTAssertTrue(c.isClosedByPeer(within: 5), "after the close handshake the tunnel closes")
    }

    func testUpgradeWithoutWebSocketGoesThroughAsPlainRequest() throws {
        let st = try Self.shared.get()
        let r = try RawClient.exchange(port: st.server.httpPort, "GET /plain HTTP/1.1\r\nHost: ws.test\r\n\r\n")
        XCTAssertEqual(r.status, 200)
        XCTAssertNil(try EchoReply(r.body).headers["upgrade"])
    }
}
