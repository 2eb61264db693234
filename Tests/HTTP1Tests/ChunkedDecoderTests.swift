import XCTest
@testable import HTTP1

/// Feeds `input` to a fresh decoder in the given pieces; returns total consumed or the failure.
func decode(_ input: [UInt8], splits: [Int] = [], maxExtension: Int = 4096) -> (Result<Int, ParseFailure>, ChunkedDecoder) {
    var d = ChunkedDecoder(maxExtension: maxExtension)
    var total = 0
    var start = 0
    let cuts = splits + [input.count]
    for cut in cuts {
        let piece = Array(input[start..<cut])
        let r = piece.withUnsafeBytes { d.consume($0) }
        switch r {
        case .failure(let f): return (.failure(f), d)
        case .success(let n):
            XCTAssertLessThanOrEqual(n, piece.count)
            total += n
            if d.isComplete { return (.success(total), d) }
            XCTAssertEqual(n, piece.count, "an incomplete body consumes everything it is given")
        }
        start = cut
    }
    return (.success(total), d)
}

final class ChunkedDecoderTests: XCTestCase {
    func testSimpleBodyStopsBeforePipelinedBytes() {
        let body = b("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        let input = body + b("GET / HTTP/1.1\r\n")
        let (r, d) = decode(input)
        XCTAssertEqual(try r.get(), body.count)
        XCTAssertTrue(d.isComplete)
        XCTAssertEqual(d.payloadBytes, 11)
    }

    func testEverySplitPositionGivesTheSameResult() {
        let body = b("a;name=value;flag ; q=\"x\\\"y\"\r\n0123456789\r\n001\r\nz\r\n0\r\nExpires: never\r\nX-Sum: abc \r\n\r\n")
        let input = body + b("NEXT")
        for i in 0...input.count {
            for j in i...input.count where j == i || j == i + 1 || j == input.count {
                let (r, d) = decode(input, splits: [i, j])
                XCTAssertEqual(try r.get(), body.count, "split \(i),\(j)")
                XCTAssertTrue(d.isComplete)
                XCTAssertEqual(d.payloadBytes, 11)
            }
        }
    }

    func testByteAtATime() {
        let body = b("3\r\nabc\r\n0;x=1\r\nT: v\r\n\r\n")
        var d = ChunkedDecoder()
        var total = 0
        for byte in body + b("X") {
            let n = try! [byte].withUnsafeBytes { d.consume($0) }.get()
            total += n
            if d.isComplete { break }
        }
        XCTAssertEqual(total, body.count)
        XCTAssertEqual(d.payloadBytes, 3)
        XCTAssertEqual(try! b("more").withUnsafeBytes { d.consume($0) }.get(), 0, "nothing more after the end")
    }

    func testIncompleteBodyConsumesAllAndIsNotComplete() {
        let (r, d) = decode(b("5\r\nhel"))
        XCTAssertEqual(try r.get(), 6)
        XCTAssertFalse(d.isComplete)
        XCTAssertEqual(d.payloadBytes, 3)
    }

    func testLeadingZerosAndUppercaseHex() {
        let (r, d) = decode(b("000A\r\n0123456789\r\n0000\r\n\r\n"))
        XCTAssertEqual(try r.get(), 26)
        XCTAssertEqual(d.payloadBytes, 10)
    }

    func testSixteenHexDigitsAreAllowedButSeventeenOverflow() {
        let (ok, d) = decode(b("0000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n"))
        XCTAssertTrue((try? ok.get()) != nil)
        XCTAssertEqual(d.payloadBytes, 16)
        XCTAssertEqual(decode(b("00000000000000010\r\n")).0, .failure(.chunkSizeOverflow))
        XCTAssertEqual(decode(b("ffffffffffffffff\r\n")).0, .failure(.chunkSizeOverflow))
        XCTAssertEqual(decode(b("4000000000000001\r\n")).0, .failure(.chunkSizeOverflow))
        XCTAssertEqual(decode(b("10000000000000000000\r\n")).0, .failure(.chunkSizeOverflow))
    }

    func testResetAllowsTheNextBody() {
        var d = ChunkedDecoder()
        _ = b("0\r\n\r\n").withUnsafeBytes { d.consume($0) }
        XCTAssertTrue(d.isComplete)
        d.reset()
        XCTAssertFalse(d.isComplete)
        XCTAssertEqual(try! b("1\r\nx\r\n0\r\n\r\n").withUnsafeBytes { d.consume($0) }.get(), 11)
        XCTAssertEqual(d.payloadBytes, 1)
    }

    func testExtensionLimit() {
        let ext = ";" + String(repeating: "e", count: 99)  // 100 bytes
        XCTAssertEqual(try decode(b("1\(ext)\r\nx\r\n0\r\n\r\n"), maxExtension: 100).0.get(), 111)
        XCTAssertEqual(decode(b("1\(ext)e\r\nx\r\n0\r\n\r\n"), maxExtension: 100).0, .failure(.chunkExtensionTooLong))
        // enforced before the line ends
        XCTAssertEqual(decode(b("1;" + String(repeating: "e", count: 200)), maxExtension: 100).0, .failure(.chunkExtensionTooLong))
    }

    static let valid: [String] = [
        "0\r\n\r\n",
        "1;a\r\nx\r\n0\r\n\r\n",
        "1;a=b\r\nx\r\n0\r\n\r\n",
        "1 ; a = b ;c\r\nx\r\n0\r\n\r\n",
        "1;a=\"q \\\" s\"\r\nx\r\n0\r\n\r\n",
        "1\r\nx\r\n0;last\r\n\r\n",
        "0\r\nTrailer-A: 1\r\nTrailer-B:\r\n\r\n",
    ]

    func testValidVectors() {
        for v in Self.valid {
            XCTAssertEqual(try decode(b(v)).0.get(), v.utf8.count, v.debugDescription)
        }
    }

    static let invalid: [(String, String, ParseFailure)] = [
        ("empty size", "\r\n", .invalidChunkFraming),
        ("empty size line", ";a\r\n", .invalidChunkSize),
        ("plus sign", "+1\r\nx\r\n0\r\n\r\n", .invalidChunkSize),
        ("minus sign", "-1\r\nx\r\n0\r\n\r\n", .invalidChunkSize),
        ("0x prefix", "0x1\r\nx\r\n0\r\n\r\n", .invalidChunkSize),
        ("leading space", " 1\r\nx\r\n0\r\n\r\n", .invalidChunkSize),
        ("non-hex", "g\r\n", .invalidChunkSize),
        ("space inside size", "1 1\r\n", .invalidChunkFraming),
        ("trailing space without extension", "1 \r\nx\r\n0\r\n\r\n", .invalidChunkFraming),
        ("bare LF after size", "1\nx\r\n0\r\n\r\n", .invalidChunkFraming),
        ("bare CR after size", "1\rx\r\n", .invalidChunkFraming),
        ("missing CRLF after data", "1\r\nxy\r\n0\r\n\r\n", .invalidChunkFraming),
        ("bare LF after data", "1\r\nx\n0\r\n\r\n", .invalidChunkFraming),
        ("bare CR after data", "1\r\nx\r0\r\n\r\n", .invalidChunkFraming),
        ("LF only ending body", "0\r\n\n", .invalidChunkFraming),
        ("CR only ending body", "0\r\n\rX", .invalidChunkFraming),
        ("empty extension name", "1;\r\nx\r\n0\r\n\r\n", .invalidChunkFraming),
        ("extension without value", "1;a=\r\nx\r\n0\r\n\r\n", .invalidChunkFraming),
        ("extension with bad char", "1;a@b\r\nx\r\n0\r\n\r\n", .invalidChunkFraming),
        ("unterminated quoted extension", "1;a=\"x\r\nx\r\n", .invalidChunkFraming),
        ("control in quoted extension", "1;a=\"\u{1}\"\r\nx\r\n", .invalidChunkFraming),
        ("trailing whitespace after extension", "1;a=b \r\nx\r\n", .invalidChunkFraming),
        ("trailer without colon", "0\r\nNoColon\r\n\r\n", .invalidTrailer),
        ("trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", .invalidTrailer),
        ("trailer space before colon", "0\r\nA : b\r\n\r\n", .invalidTrailer),
        ("trailer NUL", "0\r\nA: \u{0}\r\n\r\n", .invalidTrailer),
        ("trailer bare LF", "0\r\nA: b\n\r\n", .invalidChunkFraming),
        ("trailer bare CR", "0\r\nA: b\rc\r\n\r\n", .invalidChunkFraming),
    ]

    func testInvalidVectorsFailAtEverySplit() {
        for (what, v, failure) in Self.invalid {
            let bytes = b(v)
            for cut in 0...bytes.count {
                XCTAssertEqual(decode(bytes, splits: [cut]).0, .failure(failure), "\(what) split at \(cut)")
            }
        }
    }

    func testTrailerSectionIsLimitedTo64KiB() {
        let line = "X: " + String(repeating: "t", count: 1000) + "\r\n"
        let big = "0\r\n" + String(repeating: line, count: 70) + "\r\n"
        XCTAssertEqual(decode(b(big)).0, .failure(.invalidTrailer))
        let ok = "0\r\n" + String(repeating: line, count: 60) + "\r\n"
        XCTAssertEqual(try decode(b(ok)).0.get(), ok.utf8.count)
    }

    func testFailureIsSticky() {
        var d = ChunkedDecoder()
        XCTAssertEqual(b("z").withUnsafeBytes { d.consume($0) }, .failure(.invalidChunkSize))
        XCTAssertEqual(b("0\r\n\r\n").withUnsafeBytes { d.consume($0) }, .failure(.invalidChunkSize))
    }

    func testLargeChunkIsSkippedNotScanned() {
        var d = ChunkedDecoder()
        let size = 1 << 20
        let head = b(String(size, radix: 16) + "\r\n")
        XCTAssertEqual(try! head.withUnsafeBytes { d.consume($0) }.get(), head.count)
        let data = [UInt8](repeating: 0x0A, count: size)  // LFs in data are just data
        XCTAssertEqual(try! data.withUnsafeBytes { d.consume($0) }.get(), size)
        XCTAssertEqual(try! b("\r\n0\r\n\r\n").withUnsafeBytes { d.consume($0) }.get(), 7)
        XCTAssertTrue(d.isComplete)
        XCTAssertEqual(d.payloadBytes, UInt64(size))
    }
}
