import XCTest
import Foundation
import Reactor
@testable import Dataplane

final class AccessLogTests: XCTestCase {
    /// Runs `body` with a log writing into a pipe and returns what reached the pipe after `flush()`.
    func capture(_ format: AccessLogFormat, threshold: Int = 64 * 1024, _ body: (AccessLog) -> Void) -> [UInt8] {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let log = AccessLog(fd: fds[1], format: format, flushThreshold: threshold)
        body(log)
        log.flush()
        XCTAssertEqual(log.pendingBytes, 0)
        close(fds[1])
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// 2026-11-25T03:30:00Z
    let when: Int64 = 1_795_577_400

    func entry(_ log: AccessLog, method: [UInt8], target: [UInt8], host: [UInt8], requestID: [UInt8],
               client: SocketAddress? = SocketAddress(ip: "127.0.0.1", port: 51234),
               upstream: String? = "127.0.0.1:9001", upstreamNanos: UInt64? = 1_200_000) {
        method.withUnsafeBytes { m in
            target.withUnsafeBytes { t in
                host.withUnsafeBytes { h in
                    requestID.withUnsafeBytes { r in
                        log.append(AccessLogEntry(epochSeconds: when, milliseconds: 7, client: client,
                                                  method: m, target: t, versionMinor: 1, host: h,
                                                  status: 200, bytesSent: 123, upstream: upstream,
                                                  upstreamNanos: upstreamNanos, totalNanos: 2_500_000,
                                                  requestID: r))
                    }
                }
            }
        }
    }

    func testCivilDate() {
        XCTAssertTrue(AccessLog.civil(0) == (1970, 1, 1, 0, 0, 0))
        XCTAssertTrue(AccessLog.civil(when) == (2026, 11, 25, 3, 30, 0))
        XCTAssertTrue(AccessLog.civil(951_782_400) == (2000, 2, 29, 0, 0, 0))
        XCTAssertTrue(AccessLog.civil(-1) == (1969, 12, 31, 23, 59, 59))
    }

    func testTextLine() {
        let out = capture(.text) { log in
            entry(log, method: Array("GET".utf8), target: Array("/path?q=1".utf8), host: Array("demo.localhost".utf8),
                  requestID: Array("abc123".utf8))
        }
        XCTAssertEqual(String(decoding: out, as: UTF8.self),
                       #"127.0.0.1 - - [25/Nov/2026:03:30:00 +0000] "GET /path?q=1 HTTP/1.1" 200 123 host="demo.localhost" upstream="127.0.0.1:9001" upstream_time=0.001 request_time=0.002 request_id="abc123""# + "\n")
    }

    func testTextLineWithoutUpstreamAndIPv6Client() {
        let out = capture(.text) { log in
            entry(log, method: [], target: [], host: [], requestID: [],
                  client: SocketAddress(ip: "::1", port: 80), upstream: nil, upstreamNanos: nil)
        }
        XCTAssertEqual(String(decoding: out, as: UTF8.self),
                       #"::1 - - [25/Nov/2026:03:30:00 +0000] "-" 200 123 host="-" upstream="-" upstream_time=- request_time=0.002 request_id="-""# + "\n")
    }

    let hostilePath: [UInt8] = Array("/a\"b\\c\nd\re".utf8) + [0x00, 0xff, 0x7f, 0x1b] + Array("é€😀".utf8) + [0xc3]
    let hostileHost: [UInt8] = Array("evil\"\n".utf8) + [0xed, 0xa0, 0x80, 0xe0, 0x80, 0x80, 0xf4, 0x90, 0x80, 0x80]

    func testTextLineWithHostileBytesStaysOneLine() {
        let out = capture(.text) { log in
            entry(log, method: Array("G\"T".utf8), target: hostilePath, host: hostileHost, requestID: [0x0a, 0x22])
        }
        XCTAssertEqual(out.filter { $0 == 0x0a }.count, 1)
        XCTAssertEqual(out.last, 0x0a)
        XCTAssertTrue(out.dropLast().allSatisfy { $0 >= 0x20 && $0 < 0x7f }, "only printable ASCII")
        let line = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(line.contains(#""G\x22T /a\x22b\x5cc\x0ad\x0de\x00\xff\x7f\x1b\xc3\xa9"#), line)
        XCTAssertTrue(line.contains(#"host="evil\x22\x0a\xed"#), line)
        XCTAssertTrue(line.contains(#"request_id="\x0a\x22""#), line)
    }

    func jsonObject(_ line: ArraySlice<UInt8>, file: StaticString = #filePath, line l: UInt = #line) -> [String: Any] {
        do {
            let obj = try JSONSerialization.jsonObject(with: Data(line))
            guard let dict = obj as? [String: Any] else { XCTFail("not an object", file: file, line: l); return [:] }
            return dict
        } catch {
            XCTFail("invalid JSON: \(error): \(String(decoding: line, as: UTF8.self))", file: file, line: l)
            return [:]
        }
    }

    func testJSONLine() {
        let out = capture(.json) { log in
            entry(log, method: Array("GET".utf8), target: Array("/path".utf8), host: Array("demo.localhost".utf8),
                  requestID: Array("abc123".utf8))
            entry(log, method: Array("POST".utf8), target: Array("/x".utf8), host: [], requestID: [],
                  client: nil, upstream: nil, upstreamNanos: nil)
        }
        let lines = out.split(separator: 0x0a)
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(out.last, 0x0a)
        let a = jsonObject(lines[0])
        XCTAssertEqual(a["time"] as? String, "2026-11-25T03:30:00.007Z")
        XCTAssertEqual(a["client"] as? String, "127.0.0.1")
        XCTAssertEqual((a["client_port"] as? NSNumber)?.intValue, 51234)
        XCTAssertEqual(a["method"] as? String, "GET")
        XCTAssertEqual(a["path"] as? String, "/path")
        XCTAssertEqual(a["protocol"] as? String, "HTTP/1.1")
        XCTAssertEqual(a["host"] as? String, "demo.localhost")
        XCTAssertEqual((a["status"] as? NSNumber)?.intValue, 200)
        XCTAssertEqual((a["bytes_sent"] as? NSNumber)?.intValue, 123)
        XCTAssertEqual(a["upstream"] as? String, "127.0.0.1:9001")
        XCTAssertEqual((a["upstream_time"] as? NSNumber)?.doubleValue ?? -1, 0.001, accuracy: 1e-9)
        XCTAssertEqual((a["request_time"] as? NSNumber)?.doubleValue ?? -1, 0.002, accuracy: 1e-9)
        XCTAssertEqual(a["request_id"] as? String, "abc123")
        let b = jsonObject(lines[1])
        XCTAssertTrue(b["upstream"] is NSNull)
        XCTAssertTrue(b["upstream_time"] is NSNull)
        XCTAssertTrue(b["client"] is NSNull)
        XCTAssertEqual(b["host"] as? String, "")
    }

    func testJSONLineWithHostileBytes() {
        let out = capture(.json) { log in
            entry(log, method: Array("G\"T".utf8), target: hostilePath, host: hostileHost, requestID: [0x5c, 0x0a])
        }
        XCTAssertEqual(out.filter { $0 == 0x0a }.count, 1)
        XCTAssertEqual(out.last, 0x0a)
        let o = jsonObject(out.dropLast())
        // Valid UTF-8 passes through; each stray byte reads as its Latin-1 character.
        XCTAssertEqual(o["path"] as? String, "/a\"b\\c\nd\re\u{0}\u{ff}\u{7f}\u{1b}é€😀\u{c3}")
        XCTAssertEqual(o["host"] as? String, "evil\"\n\u{ed}\u{a0}\u{80}\u{e0}\u{80}\u{80}\u{f4}\u{90}\u{80}\u{80}")
        XCTAssertEqual(o["method"] as? String, "G\"T")
        XCTAssertEqual(o["request_id"] as? String, "\\\n")
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(text.contains(#"\u0000\u00ff\u007f\u001b"#), text)
    }

    func testBufferingAndThreshold() {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let log = AccessLog(fd: fds[1], format: .text, flushThreshold: 400)  // one line is ~157 bytes
        entry(log, method: Array("GET".utf8), target: Array("/".utf8), host: [], requestID: [])
        XCTAssertGreaterThan(log.pendingBytes, 0, "lines wait for flush()")
        entry(log, method: Array("GET".utf8), target: Array("/".utf8), host: [], requestID: [])
        XCTAssertGreaterThan(log.pendingBytes, 0)
        entry(log, method: Array("GET".utf8), target: Array("/".utf8), host: [], requestID: [])
        XCTAssertEqual(log.pendingBytes, 0, "the threshold flushes whole lines")
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = read(fds[0], &chunk, chunk.count)
        XCTAssertGreaterThan(n, 0)
        XCTAssertEqual(chunk[n - 1], 0x0a)
        XCTAssertEqual(chunk[0..<n].filter { $0 == 0x0a }.count, 3)
    }

    func testWriteFailureDropsAndCounts() {
        let log = AccessLog(fd: 999_999, format: .json)
        entry(log, method: Array("GET".utf8), target: Array("/".utf8), host: [], requestID: [])
        log.flush()
        XCTAssertEqual(log.pendingBytes, 0)
        XCTAssertGreaterThan(log.droppedBytes, 0)
    }

    func testAppendToFileWithAppendMode() throws {
        let path = NSTemporaryDirectory() + "portico-access-\(getpid()).log"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let a = AccessLog(fd: fd, format: .json), b = AccessLog(fd: fd, format: .json)
        for k in 0..<200 {
            entry(k % 2 == 0 ? a : b, method: Array("GET".utf8), target: Array("/\(k)".utf8), host: [], requestID: [])
            if k % 7 == 0 { a.flush() }
            if k % 11 == 0 { b.flush() }
        }
        a.flush(); b.flush()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let lines = Array(data).split(separator: 0x0a)
        XCTAssertEqual(lines.count, 200)
        for l in lines { XCTAssertNotNil(jsonObject(l)["path"]) }
    }
}
