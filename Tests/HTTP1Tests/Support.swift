import XCTest
@testable import HTTP1

/// Bytes of a string (test vectors are written with explicit \r\n).
func b(_ s: String) -> [UInt8] { Array(s.utf8) }

func text(_ bytes: [UInt8], _ r: Range<Int>?) -> String? {
    guard let r = r else { return nil }
    return String(decoding: bytes[r], as: UTF8.self)
}

/// Everything a parsed request head says, as one comparable value.
struct RequestSummary: Equatable, CustomStringConvertible {
    var status: ParseStatus
    var method: HTTPMethod = .get
    var methodText = "", target = "", path = "", query = ""
    var versionMinor: UInt8 = 1
    var fields: [String] = []
    var host: String? = nil
    var framing: BodyFraming = .none
    var keepAlive = true, expectContinue = false, upgrade = false
    var headLength = 0

    init(_ status: ParseStatus, _ head: RequestHead, _ bytes: [UInt8]) {
        self.status = status
        guard status == .complete else { return }
        method = head.method
        methodText = text(bytes, head.methodRange)!
        target = text(bytes, head.target)!
        path = text(bytes, head.path)!
        query = text(bytes, head.query)!
        versionMinor = head.versionMinor
        fields = head.fields.map { "\(text(bytes, $0.name)!)=\(text(bytes, $0.value)!)|\($0.kind)|\($0.hopByHop ? "hop" : "e2e")" }
        host = text(bytes, head.host)
        framing = head.framing
        keepAlive = head.keepAlive
        expectContinue = head.expectContinue
        upgrade = head.upgrade
        headLength = head.headLength
    }

    var description: String {
        "\(status) \(method) \(target) path=\(path) query=\(query) 1.\(versionMinor) host=\(host ?? "nil") \(framing) keepAlive=\(keepAlive) \(fields)"
    }
}

/// Parses the whole buffer in one call.
func parseWhole(_ bytes: [UInt8], limits: ParseLimits = ParseLimits()) -> RequestSummary {
    var parser = RequestParser(limits: limits)
    var head = RequestHead()
    let status = bytes.withUnsafeBytes { parser.parse($0, into: &head) }
    return RequestSummary(status, head, bytes)
}

/// Feeds the buffer one byte more at a time (the same parser and head across calls), as a
/// connection reading one byte per read would.
func parseByteAtATime(_ bytes: [UInt8], limits: ParseLimits = ParseLimits()) -> RequestSummary {
    var parser = RequestParser(limits: limits)
    var head = RequestHead()
    var status = ParseStatus.incomplete
    bytes.withUnsafeBytes { all in
        for k in 0...all.count {
            status = parser.parse(UnsafeRawBufferPointer(rebasing: all[0..<k]), into: &head)
            if status != .incomplete { break }
        }
    }
    return RequestSummary(status, head, bytes)
}

/// Parses whole and byte-at-a-time, asserts both agree, returns the result.
func parse(_ s: String, limits: ParseLimits = ParseLimits(), file: StaticString = #filePath, line: UInt = #line) -> RequestSummary {
    let bytes = b(s)
    let whole = parseWhole(bytes, limits: limits)
    let split = parseByteAtATime(bytes, limits: limits)
    XCTAssertEqual(whole, split, "byte-at-a-time differs from whole for \(s.debugDescription)", file: file, line: line)
    return whole
}

struct ResponseSummary: Equatable {
    var status: ParseStatus
    var code = 0
    var reason = ""
    var framing: BodyFraming = .none
    var keepAlive = true
    var upgrade = false
    var headLength = 0
    var fields: [String] = []
}

func parseResponse(_ s: String, method: HTTPMethod = .get, file: StaticString = #filePath, line: UInt = #line) -> ResponseSummary {
    let bytes = b(s)
    func summarize(_ st: ParseStatus, _ h: ResponseHead) -> ResponseSummary {
        var r = ResponseSummary(status: st)
        guard st == .complete else { return r }
        r.code = h.status; r.reason = text(bytes, h.reason)!; r.framing = h.framing
        r.keepAlive = h.keepAlive; r.upgrade = h.upgrade; r.headLength = h.headLength
        r.fields = h.fields.map { "\(text(bytes, $0.name)!)=\(text(bytes, $0.value)!)|\($0.hopByHop ? "hop" : "e2e")" }
        return r
    }
    var p = ResponseParser()
    var h = ResponseHead()
    let whole = summarize(bytes.withUnsafeBytes { p.parse($0, requestMethod: method, into: &h) }, h)
    var p2 = ResponseParser()
    var h2 = ResponseHead()
    var st = ParseStatus.incomplete
    bytes.withUnsafeBytes { all in
        for k in 0...all.count {
            st = p2.parse(UnsafeRawBufferPointer(rebasing: all[0..<k]), requestMethod: method, into: &h2)
            if st != .incomplete { break }
        }
    }
    XCTAssertEqual(whole, summarize(st, h2), "byte-at-a-time differs for \(s.debugDescription)", file: file, line: line)
    return whole
}
