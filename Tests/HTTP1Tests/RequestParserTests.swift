import XCTest
@testable import HTTP1

final class RequestParserValidTests: XCTestCase {
    func testOriginFormWithQuery() {
        let r = parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.method, .get)
        XCTAssertEqual(r.methodText, "GET")
        XCTAssertEqual(r.target, "/a/b?x=1&y=2")
        XCTAssertEqual(r.path, "/a/b")
        XCTAssertEqual(r.query, "x=1&y=2")
        XCTAssertEqual(r.host, "example.com")
        XCTAssertEqual(r.versionMinor, 1)
        XCTAssertEqual(r.framing, BodyFraming.none)
        XCTAssertTrue(r.keepAlive)
        XCTAssertEqual(r.fields, ["Host=example.com|host|e2e", "User-Agent=t|other|e2e"])
    }

    func testOriginFormWithoutQueryHasEmptyQuery() {
        let r = parse("GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(r.path, "/index.html")
        XCTAssertEqual(r.query, "")
    }

    func testHeadLengthCountsTheFinalEmptyLine() {
        let s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        XCTAssertEqual(parse(s).headLength, s.utf8.count)
    }

    func testMethodsAreCaseSensitive() {
        XCTAssertEqual(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n").method, .other)
        XCTAssertEqual(parse("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n").method, .other)
        let methods: [(String, HTTPMethod)] = [("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put),
            ("DELETE", .delete), ("OPTIONS", .options), ("PATCH", .patch), ("TRACE", .trace)]
        for (text, m) in methods {
            XCTAssertEqual(parse("\(text) / HTTP/1.1\r\nHost: h\r\n\r\n").method, m, text)
        }
    }

    func testAbsoluteFormSetsHostFromAuthority() {
        let r = parse("GET http://Example.com:8080/p/q?z HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.host, "Example.com:8080")
        XCTAssertEqual(r.path, "/p/q")
        XCTAssertEqual(r.query, "z")
    }

    func testAbsoluteFormSchemeIsCaseInsensitiveAndHttpsAllowed() {
        XCTAssertEqual(parse("GET HTTPS://h/ HTTP/1.1\r\nHost: h\r\n\r\n").status, .complete)
        XCTAssertEqual(parse("GET hTTp://h/ HTTP/1.1\r\nHost: h\r\n\r\n").status, .complete)
    }

    func testAbsoluteFormWithEmptyPathGivesEmptyPathRange() {
        let r = parse("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.path, "")
        XCTAssertEqual(r.host, "h")
        let q = parse("GET http://h?a=b HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(q.path, "")
        XCTAssertEqual(q.query, "a=b")
    }

    func testAbsoluteFormInHTTP10WithoutHostUsesAuthority() {
        let r = parse("GET http://h:81/x HTTP/1.0\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.host, "h:81")
    }

    func testAuthorityFormForConnect() {
        let r = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.method, .connect)
        XCTAssertEqual(r.target, "example.com:443")
        XCTAssertEqual(r.path, "")
        XCTAssertEqual(r.host, "example.com:443")
        XCTAssertEqual(parse("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n").status, .complete)
    }

    func testAsteriskFormForOptions() {
        let r = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.path, "*")
        XCTAssertEqual(r.query, "")
    }

    func testOptionsWithOriginFormIsFine() {
        XCTAssertEqual(parse("OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n").status, .complete)
    }

    func testHTTP10DefaultsToCloseAndKeepAliveOptionKeepsItOpen() {
        let plain = parse("GET / HTTP/1.0\r\n\r\n")
        XCTAssertEqual(plain.status, .complete)
        XCTAssertEqual(plain.versionMinor, 0)
        XCTAssertNil(plain.host)
        XCTAssertFalse(plain.keepAlive)
        let ka = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        XCTAssertTrue(ka.keepAlive)
        XCTAssertEqual(ka.host, nil)
        XCTAssertFalse(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keepAlive)
    }

    func testConnectionCloseEndsKeepAliveInHTTP11() {
        XCTAssertFalse(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n").keepAlive)
        XCTAssertFalse(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo,, close ,\r\n\r\n").keepAlive)
        XCTAssertTrue(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n").keepAlive)
    }

    func testUpgradeNeedsConnectionOptionAndUpgradeField() {
        XCTAssertTrue(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade)
        XCTAssertFalse(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgrade)
        XCTAssertFalse(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n").upgrade)
    }

    func testExpectContinue() {
        XCTAssertTrue(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n").expectContinue)
        XCTAssertFalse(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n").expectContinue)
        XCTAssertFalse(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expectContinue, "ignored in HTTP/1.0")
    }

    func testHopByHopFieldsAndConnectionOptions() {
        let r = parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Foo, host, content-length, keep-alive\r\nx-foo: 1\r\n"
            + "Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x\r\nProxy-Connection: k\r\nContent-Length: 0\r\nX-Bar: 2\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.fields, [
            "Host=h|host|e2e",
            "Connection=X-Foo, host, content-length, keep-alive|connection|hop",
            "x-foo=1|other|hop",
            "Keep-Alive=timeout=5|keepAlive|hop",
            "TE=trailers|te|hop",
            "Trailer=x|trailer|hop",
            "Proxy-Connection=k|proxyConnection|hop",
            "Content-Length=0|contentLength|e2e",
            "X-Bar=2|other|e2e",
        ])
    }

    func testFieldKindsAreCaseInsensitive() {
        let r = parse("GET / HTTP/1.1\r\nHOST: h\r\ncOOKIE: a\r\nx-forwarded-FOR: 1\r\nX-Forwarded-Proto: http\r\n"
            + "X-Forwarded-Host: h\r\nX-Forwarded-Port: 80\r\nX-Real-IP: 1\r\nX-Request-ID: r\r\nDate: d\r\nServer: s\r\nSet-Cookie: c\r\nExpect: e\r\nUpgrade: u\r\n\r\n")
        XCTAssertEqual(r.fields.map { $0.split(separator: "|")[1] },
            ["host", "cookie", "xForwardedFor", "xForwardedProto", "xForwardedHost", "xForwardedPort", "xRealIP",
             "xRequestID", "date", "server", "setCookie", "expect", "upgrade"])
    }

    func testValueWhitespaceIsTrimmedAndInnerWhitespaceKept() {
        let r = parse("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-Empty:\r\nX-Obs: caf\u{e9}\r\n\r\n")
        XCTAssertEqual(r.fields, ["Host=h|host|e2e", "X-A=a  b|other|e2e", "X-Empty=|other|e2e", "X-Obs=caf\u{e9}|other|e2e"])
    }

    func testLeadingEmptyLinesAreIgnored() {
        let r = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.target, "/")
        XCTAssertEqual(r.headLength, 31)
    }

    func testContentLengthFraming() {
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n").framing, .contentLength(42))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").framing, .contentLength(0))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n").framing, .contentLength(7))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n").framing, BodyFraming.none)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387904\r\n\r\n").framing,
                       .contentLength(1 << 62))
    }

    func testIdenticalContentLengthsAreAccepted() {
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n").framing, .contentLength(5))
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").framing,
                       .contentLength(5))
    }

    func testChunkedFraming() {
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip ,chunked\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip;level=\"9, x\", chunked\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: x-gzip, deflate, compress, x-compress, chunked\r\n\r\n").framing, .chunked)
    }

    func testHostWithPortAndIPLiterals() {
        for host in ["a.b.c", "a:1", "127.0.0.1:65535", "[::1]", "[2001:db8::7]:8080", "xn--bcher-kva.ch", "a%41b", "~a_b-c!$&'()*+,;="] {
            XCTAssertEqual(parse("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n").host, host, host)
        }
    }

    func testPipelinedRequestsParseOneAfterAnother() {
        let s = "GET /one HTTP/1.1\r\nHost: h\r\n\r\nPOST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: h\r\n\r\n"
        let bytes = b(s)
        var parser = RequestParser()
        var head = RequestHead()
        var offset = 0
        var seen: [String] = []
        bytes.withUnsafeBytes { all in
            while offset < all.count {
                let buf = UnsafeRawBufferPointer(rebasing: all[offset...])
                XCTAssertEqual(parser.parse(buf, into: &head), .complete)
                seen.append(String(decoding: buf[head.path], as: UTF8.self))
                var used = head.headLength
                if case .contentLength(let n) = head.framing { used += Int(n) }
                offset += used
                parser.reset()
            }
        }
        XCTAssertEqual(seen, ["/one", "/two", "/three"])
        XCTAssertEqual(offset, bytes.count)
    }

    func testHeadIsReusedAndClearedAfterReset() {
        var parser = RequestParser()
        var head = RequestHead()
        let first = b("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nConnection: close\r\n\r\n")
        let second = b("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        first.withUnsafeBytes { XCTAssertEqual(parser.parse($0, into: &head), .complete) }
        parser.reset()
        second.withUnsafeBytes { XCTAssertEqual(parser.parse($0, into: &head), .complete) }
        XCTAssertEqual(head.fields.count, 1)
        XCTAssertEqual(head.framing, BodyFraming.none)
        XCTAssertTrue(head.keepAlive)
        XCTAssertEqual(head.method, .get)
    }

    func testIncompleteHeadsAskForMore() {
        for s in ["", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: h\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r"] {
            XCTAssertEqual(parseWhole(b(s)).status, .incomplete, s.debugDescription)
        }
    }

    func testStatusIsStickyUntilReset() {
        var parser = RequestParser()
        var head = RequestHead()
        let bad = b("GET / HTTP/1.1\r\nHost : h\r\n\r\n")
        bad.withUnsafeBytes { XCTAssertEqual(parser.parse($0, into: &head), .failed(.whitespaceBeforeColon)) }
        bad.withUnsafeBytes { XCTAssertEqual(parser.parse($0, into: &head), .failed(.whitespaceBeforeColon)) }
        parser.reset()
        b("GET / HTTP/1.1\r\nHost: h\r\n\r\n").withUnsafeBytes { XCTAssertEqual(parser.parse($0, into: &head), .complete) }
    }
}

final class RequestParserRejectionTests: XCTestCase {
    /// (what, request, expected failure); each is also fed byte-at-a-time by `parse`.
    static let vectors: [(String, String, ParseFailure)] = [
        // request line
        ("lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", .invalidVersion),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", .invalidVersion),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", .invalidVersion),
        ("HTTP/1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", .invalidVersion),
        ("HTTP/0.9 without version", "GET /\r\n\r\n", .invalidRequestLine),
        ("double space after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", .invalidRequestLine),
        ("double space before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", .invalidRequestLine),
        ("space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", .invalidRequestLine),
        ("trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", .invalidRequestLine),
        ("tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", .invalidMethod),
        ("leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", .invalidRequestLine),
        ("method with bad char", "GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", .invalidMethod),
        ("method only", "GET\r\n\r\n", .invalidRequestLine),
        ("fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("control in target", "GET /a\u{1}b HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("DEL in target", "GET /a\u{7f} HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("relative target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("other scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("absolute form without authority", "GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("userinfo in absolute form", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("asterisk for GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("authority form for GET", "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("origin form for CONNECT", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        ("CONNECT without port", "CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n", .invalidTarget),
        // line endings
        ("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", .bareCR),
        ("bare CR in version", "GET / HTTP/1.1\rX\r\nHost: h\r\n\r\n", .bareCR),
        ("bare CR in field value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", .bareCR),
        ("bare CR in field name", "GET / HTTP/1.1\r\nHost: h\r\nX\rY: a\r\n\r\n", .bareCR),
        ("bare LF ending request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", .bareCR),
        ("bare LF ending field", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", .bareCR),
        ("bare LF ending head", "GET / HTTP/1.1\r\nHost: h\r\n\n", .bareCR),
        ("bare LF before request line", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", .bareCR),
        // field syntax
        ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", .obsFold),
        ("obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", .obsFold),
        ("whitespace first field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", .obsFold),
        ("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", .whitespaceBeforeColon),
        ("tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", .whitespaceBeforeColon),
        ("space in name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: 1\r\n\r\n", .invalidHeaderName),
        ("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", .invalidHeaderName),
        ("bad name char", "GET / HTTP/1.1\r\nHost: h\r\nX\"Y: 1\r\n\r\n", .invalidHeaderName),
        ("missing colon", "GET / HTTP/1.1\r\nHost: h\r\nJustAName\r\n\r\n", .missingColon),
        ("missing colon with space", "GET / HTTP/1.1\r\nHost: h\r\nJust a line\r\n\r\n", .missingColon),
        ("NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", .invalidHeaderValue),
        ("DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{7f}\r\n\r\n", .invalidHeaderValue),
        ("vertical tab in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\u{b}\r\n\r\n", .invalidHeaderValue),
        // Host
        ("missing Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", .missingHost),
        ("missing Host with absolute form", "GET http://h/ HTTP/1.1\r\n\r\n", .missingHost),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", .multipleHost),
        ("two Hosts in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", .multipleHost),
        ("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", .invalidHost),
        ("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", .invalidHost),
        ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", .invalidHost),
        ("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost),
        ("Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", .invalidHost),
        ("Host port not numeric", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", .invalidHost),
        ("Host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", .invalidHost),
        ("Host port too big", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", .invalidHost),
        ("Host bad pct-encoding", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", .invalidHost),
        ("Host unclosed bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", .invalidHost),
        ("Host vs absolute form", "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", .hostMismatch),
        ("Host vs absolute form port", "GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n", .hostMismatch),
        // Content-Length
        ("CL plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
        ("CL minus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", .invalidContentLength),
        ("CL inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", .invalidContentLength),
        ("CL trailing empty element", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5,\r\n\r\n", .invalidContentLength),
        ("CL leading empty element", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ,5\r\n\r\n", .invalidContentLength),
        ("CL empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", .invalidContentLength),
        ("CL hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", .invalidContentLength),
        ("CL over 2^62", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4611686018427387905\r\n\r\n", .invalidContentLength),
        ("CL overflows UInt64", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551617\r\n\r\n", .invalidContentLength),
        ("CL many digits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999999\r\n\r\n", .invalidContentLength),
        ("CL differing list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", .conflictingContentLength),
        ("CL differing fields", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .conflictingContentLength),
        ("CL leading zeros differ", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 05\r\nContent-Length: 6\r\n\r\n", .conflictingContentLength),
        // Transfer-Encoding
        ("CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding),
        ("TE and CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", .contentLengthWithTransferEncoding),
        ("TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10),
        ("chunked twice in one field", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .chunkedTwice),
        ("chunked twice across fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .chunkedTwice),
        ("chunked, identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", .chunkedNotFinal),
        ("chunked then gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", .chunkedNotFinal),
        ("gzip only", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", .chunkedNotFinal),
        ("xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", .chunkedNotFinal),
        ("chunked with parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;foo\r\n\r\n", .chunkedNotFinal),
        ("chunked with valued parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked ; q=1\r\n\r\n", .chunkedNotFinal),
        ("empty TE", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", .chunkedNotFinal),
        ("quoted chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", .invalidHeaderValue),
        ("unknown coding before chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br, chunked\r\n\r\n", .unknownTransferCoding),
        ("identity before chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n", .unknownTransferCoding),
    ]

    func testEveryRejectionGivesItsFailureWholeAndByteAtATime() {
        for (what, request, expected) in Self.vectors {
            let r = parse(request)
            XCTAssertEqual(r.status, .failed(expected), what)
        }
    }

    func testRejectionStatuses() {
        XCTAssertEqual(ParseFailure.contentLengthWithTransferEncoding.status, 400)
        XCTAssertEqual(ParseFailure.obsFold.status, 400)
        XCTAssertEqual(ParseFailure.bareCR.status, 400)
        XCTAssertEqual(ParseFailure.hostMismatch.status, 400)
        XCTAssertEqual(ParseFailure.requestLineTooLong.status, 414)
        XCTAssertEqual(ParseFailure.headerSectionTooLarge.status, 431)
        XCTAssertEqual(ParseFailure.tooManyHeaders.status, 431)
        XCTAssertEqual(ParseFailure.unknownTransferCoding.status, 501)
        XCTAssertEqual(ParseFailure.invalidResponse.status, 502)
        for (what, _, expected) in Self.vectors {
            XCTAssertEqual(expected.status, expected == .unknownTransferCoding ? 501 : 400, what)
        }
    }
}

final class RequestParserLimitTests: XCTestCase {
    func limits(line: Int = 8192, head: Int = 65536, fields: Int = 100) -> ParseLimits {
        var l = ParseLimits()
        l.maxRequestLine = line
        l.maxHeadBytes = head
        l.maxFields = fields
        return l
    }

    func testRequestLineAtTheLimitIsAccepted() {
        let line = "GET /" + String(repeating: "a", count: 100 - 14) + " HTTP/1.1"
        XCTAssertEqual(line.utf8.count, 100)
        XCTAssertEqual(parse(line + "\r\nHost: h\r\n\r\n", limits: limits(line: 100)).status, .complete)
        XCTAssertEqual(parse(line + "\r\nHost: h\r\n\r\n", limits: limits(line: 99)).status, .failed(.requestLineTooLong))
    }

    func testLongRequestLineFailsWhileIncomplete() {
        let partial = "GET /" + String(repeating: "a", count: 200)
        XCTAssertEqual(parseWhole(b(partial), limits: limits(line: 100)).status, .failed(.requestLineTooLong))
        XCTAssertEqual(parseByteAtATime(b(partial), limits: limits(line: 100)).status, .failed(.requestLineTooLong))
        XCTAssertEqual(ParseFailure.requestLineTooLong.status, 414)
    }

    func testLeadingEmptyLinesCountTowardsTheLineLimit() {
        let s = String(repeating: "\r\n", count: 60) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        XCTAssertEqual(parse(s, limits: limits(line: 100)).status, .failed(.requestLineTooLong))
        XCTAssertEqual(parseWhole(b(String(repeating: "\r\n", count: 1000)), limits: limits(line: 100)).status,
                       .failed(.requestLineTooLong))
    }

    func testHeadAtTheLimitIsAcceptedAndOneMoreByteIsNot() {
        let base = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n"
        let s = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "v", count: 200 - base.utf8.count) + "\r\n\r\n"
        XCTAssertEqual(s.utf8.count, 200)
        XCTAssertEqual(parse(s, limits: limits(head: 200)).status, .complete)
        XCTAssertEqual(parse(s, limits: limits(head: 199)).status, .failed(.headerSectionTooLarge))
    }

    func testLargeHeadFailsWhileIncomplete() {
        let partial = "GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "v", count: 1000)
        XCTAssertEqual(parseWhole(b(partial), limits: limits(head: 500)).status, .failed(.headerSectionTooLarge))
        XCTAssertEqual(parseByteAtATime(b(partial), limits: limits(head: 500)).status, .failed(.headerSectionTooLarge))
        let manyLines = "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 200)
        XCTAssertEqual(parseWhole(b(manyLines), limits: limits(head: 500, fields: 1000)).status, .failed(.headerSectionTooLarge))
        XCTAssertEqual(ParseFailure.headerSectionTooLarge.status, 431)
    }

    func testTooManyFields() {
        let ok = "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X: y\r\n", count: 9) + "\r\n"
        XCTAssertEqual(parse(ok, limits: limits(fields: 10)).status, .complete)
        let tooMany = "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X: y\r\n", count: 10) + "\r\n"
        XCTAssertEqual(parse(tooMany, limits: limits(fields: 10)).status, .failed(.tooManyHeaders))
        // also before the head is complete
        let partial = "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 11)
        XCTAssertEqual(parseWhole(b(partial), limits: limits(fields: 10)).status, .failed(.tooManyHeaders))
        XCTAssertEqual(ParseFailure.tooManyHeaders.status, 431)
    }

    func testBodyBytesAfterTheHeadDoNotCountTowardsLimits() {
        let s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "z", count: 1000)
        let r = parseWhole(b(s), limits: limits(line: 50, head: 100))
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.headLength, s.utf8.count - 1000)
    }

    func testByteAtATimeFeedingOfALargeHeadIsLinear() {
        // 60 KB head fed one byte per call: quadratic rescanning would take ~1.8e9 byte visits.
        let s = "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-Long: " + String(repeating: "v", count: 590) + "\r\n", count: 99) + "\r\n"
        let start = ContinuousClock.now
        XCTAssertEqual(parseByteAtATime(b(s)).status, .complete)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
    }
}
