// Bodies through the proxy: Content-Length and chunked (RFC 9112 §6, §7.1) in both directions,
// Expect: 100-continue, no-body statuses, and 1 GiB each way streamed with bounded memory.

import Foundation
import XCTest

final class BodyTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var dir: TempDir
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("body")
        let m = try fx.dir.write("body.yaml", Manifest.join([
            Manifest.service("svc-body", endpoints: [echo.address]),
            Manifest.ingress("body", rules: [.init(host: "body.test", [.init("/", "Prefix", "svc-body")])]),
        ]))
        return State(server: try fx.serve([m], ["--max-body-size", "2g"]), dir: fx.dir)
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    /// Size of the big transfers; PORTICO_IT_BIG_BYTES overrides the 1 GiB for quick local runs.
    static let bigBytes: Int = Int(ProcessInfo.processInfo.environment["PORTICO_IT_BIG_BYTES"] ?? "") ?? (1 << 30)
    static let rssLimit = 50 << 20

    func testContentLengthRequestBody() throws {
        let st = try Self.shared.get()
        let r = try Curl.request(st.server.base + "/upload", host: "body.test", extra: ["--data-binary", "hello, world"])
        XCTAssertEqual(r.status, 200, r.stderr)
        let e = try EchoReply(r.body)
        XCTAssertEqual(e.method, "POST")
        XCTAssertEqual(e.bodyLength, 12)
    }

    func testChunkedRequestBodyFromCurl() throws {
        let st = try Self.shared.get()
        let payload = try st.dir.write("chunked-payload.bin", String(repeating: "x", count: 100_000))
        let r = try Curl.request(st.server.base + "/chunked", host: "body.test",
                                 headers: ["Transfer-Encoding: chunked"], extra: ["--data-binary", "@" + payload])
        XCTAssertEqual(r.status, 200, r.stderr)
        XCTAssertEqual(try EchoReply(r.body).bodyLength, 100_000)
    }

    func testChunkedRequestBodyRawWithExtensionsAndTrailer() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("POST /raw HTTP/1.1\r\nHost: body.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n1;ext=1\r\n,\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200, r.bodyText)
        XCTAssertEqual(try EchoReply(r.body).bodyLength, 16)
        // The connection stays usable after a chunked body.
        try c.send("GET /after HTTP/1.1\r\nHost: body.test\r\n\r\n")
        XCTAssertEqual(try EchoReply(try c.readResponse().body).path, "/after")
    }

    func testChunkedResponseBody() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("GET /cr HTTP/1.1\r\nHost: body.test\r\nX-Echo-Chunked: 1\r\nX-Echo-Bytes: 300000\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body.count, 300_000)
        XCTAssertTrue(r.isChunked || r.header("content-length") == "300000", r.rawHead)
        try c.send("GET /next HTTP/1.1\r\nHost: body.test\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200, "keep-alive after a chunked response")
    }

    func testContentLengthResponseBodyByCurl() throws {
        let st = try Self.shared.get()
        let r = try Curl.request(st.server.base + "/bytes", host: "body.test", headers: ["X-Echo-Bytes: 1048576"])
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body.count, 1_048_576)
    }

    func testExpect100Continue() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort, timeout: 5)
        try c.send("POST /expect HTTP/1.1\r\nHost: body.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = try c.readResponse()
        XCTAssertEqual(interim.status, 100, "100 Continue before the body is sent")
        try c.send("hello")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try EchoReply(r.body).bodyLength, 5)
    }

    func testNoBodyStatuses() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("GET /nc HTTP/1.1\r\nHost: body.test\r\nX-Echo-Status: 204\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 204)
        try c.send("GET /nm HTTP/1.1\r\nHost: body.test\r\nX-Echo-Status: 304\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 304)
        try c.send("GET /after HTTP/1.1\r\nHost: body.test\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200, "204 and 304 carry no body, so the stream stays in step")
        XCTAssertEqual(try EchoReply(r.body).path, "/after")
    }

    // MARK: big transfers

    func testOneGiBUploadStreamsWithBoundedMemory() throws {
        let st = try Self.shared.get()
        // Warm up (buffers, pools) so the baseline is the steady state.
        _ = try Curl.request(st.server.base + "/warm", host: "body.test", extra: ["--data-binary", "x"])
        let path = st.dir.file("big-upload.bin")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try fh.truncate(atOffset: UInt64(Self.bigBytes))  // sparse: no disk used
        try fh.close()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var result: CurlResult?
        let growth = try peakResidentGrowth(pid: st.server.process.pid) {
            // -T streams the file (--data-binary @file would load it into curl's memory).
            result = try Curl.request(st.server.base + "/big", host: "body.test", method: "POST",
                                      headers: ["Content-Type: application/octet-stream"],
                                      extra: ["-T", path], maxTime: 240)
        }
        let r = try XCTUnwrap(result)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try EchoReply(r.body).bodyLength, Self.bigBytes)
        XCTAssertLessThan(growth, Self.rssLimit, "RSS grew by \(growth >> 20) MiB during the upload")
    }

    func testOneGiBDownloadStreamsWithBoundedMemory() throws {
        let st = try Self.shared.get()
        _ = try Curl.request(st.server.base + "/warm", host: "body.test", headers: ["X-Echo-Bytes: 65536"])
        var result: CurlResult?
        let growth = try peakResidentGrowth(pid: st.server.process.pid) {
            result = try Curl.request(st.server.base + "/big", host: "body.test",
                                      headers: ["X-Echo-Bytes: \(Self.bigBytes)"],
                                      extra: ["-o", "/dev/null", "-w", "%{size_download}\n"], maxTime: 240)
        }
        let r = try XCTUnwrap(result)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyText.trimmingCharacters(in: .whitespacesAndNewlines), String(Self.bigBytes))
        XCTAssertLessThan(growth, Self.rssLimit, "RSS grew by \(growth >> 20) MiB during the download")
    }

    func testChunkedOneGiBDownload() throws {
        let st = try Self.shared.get()
        let size = Self.bigBytes / 4
        let r = try Curl.request(st.server.base + "/bigchunked", host: "body.test",
                                 headers: ["X-Echo-Bytes: \(size)", "X-Echo-Chunked: 1"],
                                 extra: ["-o", "/dev/null", "-w", "%{size_download}\n"], maxTime: 120)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyText.trimmingCharacters(in: .whitespacesAndNewlines), String(size))
    }
}
