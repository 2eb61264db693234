// libFuzzer target for the chunked decoder (Sources/HTTP1/ChunkedDecoder.swift). Two modes,
// chosen by the first byte:
// - raw (even): the rest is a chunked body as received. Invariants: the bytes consumed and the
//   payload counted are the same whole, in two pieces and byte by byte; an accepted body, walked
//   again by a simple reference reader, has chunk sizes summing to the payload count and ends
//   exactly where the decoder stopped.
// - generated (odd): the rest gives chunk sizes, extensions and trailers; a valid body is encoded
//   from them and split where the input says. Invariants: the decoder accepts it, consumes it to
//   its last byte (leaving the pipelined bytes after it alone), and the payload equals the sum
//   of the chunk sizes.
import FuzzSupport
import HTTP1

struct Run: Equatable {
    var consumed = 0
    var failure: ParseFailure? = nil
    var complete = false
    var payload: UInt64 = 0
}

/// Feeds `pieces` of `buf` in turn, stopping at completion or failure.
func feed(_ buf: UnsafeRawBufferPointer, cuts: [Int]) -> Run {
    var d = ChunkedDecoder(maxExtension: 64)
    var r = Run()
    var start = 0
    for end in cuts + [buf.count] where end >= start {
        let piece = UnsafeRawBufferPointer(rebasing: buf[start..<end])
        switch d.consume(piece) {
        case .success(let n):
            check(n >= 0 && n <= piece.count, "consume within the piece")
            r.consumed += n
            if !d.isComplete { check(n == piece.count, "an incomplete body consumes the whole piece") }
        case .failure(let f):
            r.failure = f
            r.consumed = -1  // where a failure is noticed inside a piece is not reported
            r.complete = d.isComplete
            r.payload = d.payloadBytes
            return r
        }
        if d.isComplete { break }
        start = end
    }
    r.complete = d.isComplete
    r.payload = d.payloadBytes
    // Once done (or failed) the decoder stays so.
    if d.isComplete, case .success(let n) = d.consume(buf) { check(n == 0, "nothing consumed after completion") }
    return r
}

/// A deliberately simple reader of an accepted chunked body: sizes, data, the final chunk and
/// trailer lines; returns the sum of chunk sizes and where the body ends.
func referenceWalk(_ b: UnsafeRawBufferPointer) -> (sum: UInt64, end: Int)? {
    var i = 0
    var sum: UInt64 = 0
    func line() -> Int? {  // index of the CR of the next CRLF
        var j = i
        while j + 1 < b.count { if b[j] == 0x0D && b[j + 1] == 0x0A { return j }; j += 1 }
        return nil
    }
    while true {
        guard let cr = line() else { return nil }
        var size: UInt64 = 0
        var j = i
        while j < cr, let h = hex(b[j]) { size = size &* 16 &+ UInt64(h); j += 1 }
        check(j > i, "every accepted size line starts with a hex digit")
        i = cr + 2
        if size == 0 { break }
        guard size <= UInt64(b.count - i) else { return nil }
        i += Int(size)
        sum += size
        guard i + 1 < b.count, b[i] == 0x0D, b[i + 1] == 0x0A else { return nil }
        i += 2
    }
    while true {  // trailer section up to the empty line
        guard let cr = line() else { return nil }
        let empty = cr == i
        i = cr + 2
        if empty { return (sum, i) }
    }
}

func hex(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
}

func fuzzRaw(_ buf: UnsafeRawBufferPointer) {
    let split = splitPoint(buf)
    let whole = feed(buf, cuts: [])
    check(feed(buf, cuts: [split]) == whole, "two pieces equal whole")
    check(feed(buf, cuts: Array(0..<buf.count)) == whole, "byte by byte equals whole")
    if whole.complete {
        check(whole.failure == nil, "complete is not failed")
        guard let ref = referenceWalk(UnsafeRawBufferPointer(rebasing: buf[0..<whole.consumed])) else {
            check(false, "the reference reader can walk every accepted body")
            return
        }
        check(ref.end == whole.consumed, "the body ends where the decoder stopped")
        check(ref.sum == whole.payload, "payload \(whole.payload) is the sum of chunk sizes \(ref.sum)")
    } else if whole.failure == nil {
        check(whole.consumed == buf.count, "an unfinished body consumes all bytes")
    }
}

func fuzzGenerated(_ input: UnsafeRawBufferPointer) {
    var body: [UInt8] = []
    var sum: UInt64 = 0
    var i = 0
    func next() -> UInt8 { defer { i += 1 }; return i < input.count ? input[i] : 0 }
    let chunks = Int(next() % 8)
    for _ in 0..<chunks {
        let size = Int(next() % 64) + 1
        let style = next()
        var sizeText = String(size, radix: 16, uppercase: style & 1 == 1)
        if style & 2 != 0 { sizeText = "00" + sizeText }  // leading zeros are allowed
        body += Array(sizeText.utf8)
        if style & 4 != 0 { body += Array(";ext=\"v\\\"x\"".utf8) }
        if style & 8 != 0 { body += Array(" ; a ; b=c".utf8) }
        body += [0x0D, 0x0A]
        for k in 0..<size { body.append(UInt8(truncatingIfNeeded: k &+ Int(style))) }
        body += [0x0D, 0x0A]
        sum += UInt64(size)
    }
    body += Array("0\r\n".utf8)
    if next() & 1 == 1 { body += Array("Trailer-One: v\r\nX: \r\n".utf8) }
    body += [0x0D, 0x0A]
    let end = body.count
    body += Array("GET /next HTTP/1.1\r\n".utf8)  // a pipelined request that must stay unconsumed
    var cuts: [Int] = []
    while i < input.count && cuts.count < 16 { cuts.append(Int(next()) % (body.count + 1)) }
    cuts.sort()
    body.withUnsafeBytes { b in
        let r = feed(b, cuts: cuts)
        check(r.failure == nil && r.complete, "a valid generated body is accepted (cuts \(cuts))")
        check(r.consumed == end, "consumed up to the end of the body, not into the next request")
        check(r.payload == sum, "payload equals the sum of chunk sizes")
    }
}

@main
enum Main {
    static func main() {
        runFuzzer { data, size in data.map { testOneInput($0, size) } ?? 0 }
    }
}

func testOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 { fuzzRaw(rest) } else { fuzzGenerated(rest) }
    return 0
}
