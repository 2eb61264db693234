import Reactor
#if canImport(Glibc)
import Glibc
#endif

public enum AccessLogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// One request as the access log sees it. The byte fields point into the connection's buffers and
/// only need to stay valid for the duration of `AccessLog.append` (nothing is copied before
/// formatting). Use an empty buffer for an absent value.
public struct AccessLogEntry {
    /// Wall-clock time the request finished: seconds since the Unix epoch and milliseconds.
    public var epochSeconds: Int64
    public var milliseconds: Int
    public var client: SocketAddress?
    public var method: UnsafeRawBufferPointer
    /// The request target as received (path and query).
    public var target: UnsafeRawBufferPointer
    /// HTTP/1.x minor version.
    public var versionMinor: UInt8
    public var host: UnsafeRawBufferPointer
    public var status: Int
    public var bytesSent: UInt64
    /// The endpoint that answered (its name), nil when no upstream was used.
    public var upstream: String?
    public var upstreamNanos: UInt64?
    public var totalNanos: UInt64
    public var requestID: UnsafeRawBufferPointer

    public static let noBytes = UnsafeRawBufferPointer(start: nil, count: 0)

    public init(epochSeconds: Int64, milliseconds: Int = 0, client: SocketAddress?,
                method: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer, versionMinor: UInt8 = 1,
                host: UnsafeRawBufferPointer = AccessLogEntry.noBytes, status: Int, bytesSent: UInt64,
                upstream: String? = nil, upstreamNanos: UInt64? = nil, totalNanos: UInt64,
                requestID: UnsafeRawBufferPointer = AccessLogEntry.noBytes) {
        self.epochSeconds = epochSeconds; self.milliseconds = milliseconds; self.client = client
        self.method = method; self.target = target; self.versionMinor = versionMinor; self.host = host
        self.status = status; self.bytesSent = bytesSent; self.upstream = upstream
        self.upstreamNanos = upstreamNanos; self.totalNanos = totalNanos; self.requestID = requestID
    }
}

/// A worker's access log: lines are formatted straight into a byte buffer (no `String` building)
/// and written with write(2) on an `O_APPEND` descriptor by `flush()`, whole lines at a time, so
/// lines of different workers sharing the file never interleave (for regular files).
///
/// Text format (nginx "combined"-like, then extras):
/// `127.0.0.1 - - [25/Nov/2026:03:30:00 +0000] "GET /path HTTP/1.1" 200 123 host="demo.localhost"
/// upstream="127.0.0.1:9001" upstream_time=0.001 request_time=0.002 request_id="..."`
/// with `"`, `\`, control bytes and bytes ≥ 0x7f written as `\xHH` (nginx's escaping), and `-` for
/// absent values.
///
/// JSON format: one object per line, keys `time` (RFC 3339, UTC, milliseconds), `client`,
/// `client_port`, `method`, `path`, `protocol`, `host`, `status`, `bytes_sent`, `upstream`,
/// `upstream_time`, `request_time` (seconds) and `request_id`; absent values are `null`. Strings
/// escape `"`, `\` and control bytes; valid UTF-8 passes through; any byte that is not part of
/// valid UTF-8 is written as `\u00XX` (its Latin-1 reading), so every line is valid JSON.
///
/// The descriptor is not closed by this class. A negative descriptor discards everything.
public final class AccessLog {
    public let fd: Int32
    public let format: AccessLogFormat
    public let flushThreshold: Int
    @usableFromInline var buffer: [UInt8] = []
    /// Bytes dropped because write(2) failed (disk full, closed descriptor …).
    public private(set) var droppedBytes: UInt64 = 0

    // Per-second cache of the formatted date.
    var cachedSecond: Int64 = .min
    var cachedText: [UInt8] = []   // 25/Nov/2026:03:30:00 +0000
    var cachedISO: [UInt8] = []    // 2026-11-25T03:30:00

    public init(fd: Int32, format: AccessLogFormat, flushThreshold: Int = 64 * 1024) {
        self.fd = fd
        self.format = format
        self.flushThreshold = max(flushThreshold, 0)
        buffer.reserveCapacity(self.flushThreshold + 4096)
        cachedText.reserveCapacity(32)
        cachedISO.reserveCapacity(32)
    }

    deinit { flush() }

    /// Bytes formatted but not yet written.
    public var pendingBytes: Int { buffer.count }

    public func append(_ e: AccessLogEntry) {
        switch format {
        case .text: appendText(e)
        case .json: appendJSON(e)
        }
        if buffer.count >= flushThreshold { flush() }
    }

    /// Writes everything buffered. Called by the worker at the end of each event-loop iteration
    /// and on exit.
    public func flush() {
        guard !buffer.isEmpty else { return }
        guard fd >= 0 else { buffer.removeAll(keepingCapacity: true); return }
        var written = 0
        let total = buffer.count
        var keep = false
        buffer.withUnsafeBytes { raw in
            while written < total {
                let n = write(fd, raw.baseAddress! + written, total - written)
                if n > 0 { written += n; continue }
                if n < 0 && errno == EINTR { continue }
                // EAGAIN on a non-blocking pipe: keep the rest for the next flush, within bounds.
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && total - written <= 4 * max(flushThreshold, 65536) {
                    keep = true
                }
                break
            }
        }
        if written == total {
            buffer.removeAll(keepingCapacity: true)
        } else if keep {
            buffer.removeFirst(written)
        } else {
            droppedBytes &+= UInt64(total - written)
            buffer.removeAll(keepingCapacity: true)
        }
    }

    // MARK: text

    func appendText(_ e: AccessLogEntry) {
        appendClientIP(e.client)
        appendASCII(" - - [")
        refreshDate(e.epochSeconds)
        buffer.append(contentsOf: cachedText)
        appendASCII("] \"")
        if e.method.isEmpty && e.target.isEmpty {
            buffer.append(UInt8(ascii: "-"))
        } else {
            appendTextEscaped(e.method)
            buffer.append(UInt8(ascii: " "))
            appendTextEscaped(e.target)
            appendASCII(" HTTP/1.")
            appendDecimal(UInt64(e.versionMinor))
        }
        appendASCII("\" ")
        appendDecimal(UInt64(clamping: max(e.status, 0)))
        buffer.append(UInt8(ascii: " "))
        appendDecimal(e.bytesSent)
        appendASCII(" host=\"")
        if e.host.isEmpty { buffer.append(UInt8(ascii: "-")) } else { appendTextEscaped(e.host) }
        appendASCII("\" upstream=\"")
        if let u = e.upstream { appendTextEscaped(u) } else { buffer.append(UInt8(ascii: "-")) }
        appendASCII("\" upstream_time=")
        if let n = e.upstreamNanos { appendSeconds(n) } else { buffer.append(UInt8(ascii: "-")) }
        appendASCII(" request_time=")
        appendSeconds(e.totalNanos)
        appendASCII(" request_id=\"")
        if e.requestID.isEmpty { buffer.append(UInt8(ascii: "-")) } else { appendTextEscaped(e.requestID) }
        appendASCII("\"\n")
    }

    @inline(__always)
    func appendTextByte(_ b: UInt8) {
        if b < 0x20 || b >= 0x7f || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            buffer.append(UInt8(ascii: "\\")); buffer.append(UInt8(ascii: "x"))
            buffer.append(AccessLog.hex[Int(b >> 4)]); buffer.append(AccessLog.hex[Int(b & 15)])
        } else {
            buffer.append(b)
        }
    }

    func appendTextEscaped(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes { appendTextByte(b) }
    }

    func appendTextEscaped(_ s: String) {
        for b in s.utf8 { appendTextByte(b) }
    }

    // MARK: JSON

    func appendJSON(_ e: AccessLogEntry) {
        appendASCII("{\"time\":\"")
        refreshDate(e.epochSeconds)
        buffer.append(contentsOf: cachedISO)
        buffer.append(UInt8(ascii: "."))
        let ms = UInt64(min(max(e.milliseconds, 0), 999))
        buffer.append(UInt8(ascii: "0") + UInt8(ms / 100))
        buffer.append(UInt8(ascii: "0") + UInt8(ms / 10 % 10))
        buffer.append(UInt8(ascii: "0") + UInt8(ms % 10))
        appendASCII("Z\",\"client\":")
        if let c = e.client {
            buffer.append(UInt8(ascii: "\"")); appendClientIP(c); appendASCII("\",\"client_port\":")
            appendDecimal(UInt64(c.port))
        } else {
            appendASCII("null,\"client_port\":null")
        }
        appendASCII(",\"method\":"); appendJSONString(e.method)
        appendASCII(",\"path\":"); appendJSONString(e.target)
        appendASCII(",\"protocol\":\"HTTP/1."); appendDecimal(UInt64(e.versionMinor))
        appendASCII("\",\"host\":"); appendJSONString(e.host)
        appendASCII(",\"status\":"); appendDecimal(UInt64(clamping: max(e.status, 0)))
        appendASCII(",\"bytes_sent\":"); appendDecimal(e.bytesSent)
        appendASCII(",\"upstream\":")
        if let u = e.upstream {
            var u = u
            u.withUTF8 { appendJSONString(UnsafeRawBufferPointer($0)) }
        } else {
            appendASCII("null")
        }
        appendASCII(",\"upstream_time\":")
        if let n = e.upstreamNanos { appendSeconds(n) } else { appendASCII("null") }
        appendASCII(",\"request_time\":"); appendSeconds(e.totalNanos)
        appendASCII(",\"request_id\":"); appendJSONString(e.requestID)
        appendASCII("}\n")
    }

    @inline(__always)
    func appendUnicodeEscape(_ b: UInt8) {
        appendASCII("\\u00")
        buffer.append(AccessLog.hex[Int(b >> 4)]); buffer.append(AccessLog.hex[Int(b & 15)])
    }

    /// A JSON string literal of `bytes`, quotes included.
    func appendJSONString(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(UInt8(ascii: "\""))
        let n = bytes.count
        var i = 0
        while i < n {
            let b = bytes[i]
            if b < 0x80 {
                switch b {
                case UInt8(ascii: "\""): appendASCII("\\\"")
                case UInt8(ascii: "\\"): appendASCII("\\\\")
                case 0x0a: appendASCII("\\n")
                case 0x0d: appendASCII("\\r")
                case 0x09: appendASCII("\\t")
                case 0x00..<0x20, 0x7f: appendUnicodeEscape(b)
                default: buffer.append(b)
                }
                i += 1
                continue
            }
            let len = AccessLog.utf8SequenceLength(bytes, at: i)
            if len == 0 {
                appendUnicodeEscape(b)
                i += 1
            } else {
                for k in 0..<len { buffer.append(bytes[i + k]) }
                i += len
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// The length of the well-formed UTF-8 sequence starting at `i` (a byte ≥ 0x80), or 0 when
    /// it is not one (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
    static func utf8SequenceLength(_ s: UnsafeRawBufferPointer, at i: Int) -> Int {
        let b0 = s[i]
        let n = s.count - i
        @inline(__always) func cont(_ k: Int) -> Bool { k < n && s[i + k] & 0xc0 == 0x80 }
        switch b0 {
        case 0xc2...0xdf:
            return cont(1) ? 2 : 0
        case 0xe0...0xef:
            guard n >= 3, cont(1), cont(2) else { return 0 }
            let b1 = s[i + 1]
            if b0 == 0xe0 && b1 < 0xa0 { return 0 }
            if b0 == 0xed && b1 > 0x9f { return 0 }
            return 3
        case 0xf0...0xf4:
            guard n >= 4, cont(1), cont(2), cont(3) else { return 0 }
            let b1 = s[i + 1]
            if b0 == 0xf0 && b1 < 0x90 { return 0 }
            if b0 == 0xf4 && b1 > 0x8f { return 0 }
            return 4
        default:
            return 0
        }
    }

    // MARK: pieces

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)
    static let months: [UInt8] = Array("JanFebMarAprMayJunJulAugSepOctNovDec".utf8)

    @inline(__always)
    func appendASCII(_ s: StaticString) {
        s.withUTF8Buffer { buffer.append(contentsOf: $0) }
    }

    func appendDecimal(_ v: UInt64) {
        var d: UInt64 = 1
        while v / d >= 10 { d &*= 10 }
        while d > 0 {
            buffer.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v / d % 10))
            d /= 10
        }
    }

    /// Seconds with millisecond resolution (truncated), like nginx's `$request_time`: `0.002`.
    func appendSeconds(_ nanos: UInt64) {
        let ms = nanos / 1_000_000
        appendDecimal(ms / 1000)
        buffer.append(UInt8(ascii: "."))
        let f = ms % 1000
        buffer.append(UInt8(ascii: "0") + UInt8(f / 100))
        buffer.append(UInt8(ascii: "0") + UInt8(f / 10 % 10))
        buffer.append(UInt8(ascii: "0") + UInt8(f % 10))
    }

    /// The client's IP address without the port (`-` when unknown).
    func appendClientIP(_ client: SocketAddress?) {
        guard let c = client else { buffer.append(UInt8(ascii: "-")); return }
        c.bytes.withUnsafeBytes { raw in
            if !c.isIPv6 {
                guard raw.count >= 8 else { buffer.append(UInt8(ascii: "-")); return }
                for k in 4..<8 {
                    if k > 4 { buffer.append(UInt8(ascii: ".")) }
                    appendDecimal(UInt64(raw[k]))
                }
                return
            }
            withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { out in
                guard inet_ntop(AF_INET6, raw.baseAddress! + 8, out.baseAddress!, 64) != nil else {
                    buffer.append(UInt8(ascii: "-")); return
                }
                var k = 0
                while k < 64 && out[k] != 0 { buffer.append(UInt8(bitPattern: out[k])); k += 1 }
            }
        }
    }

    func append2(_ v: Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + UInt8(v / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(v % 10))
    }

    /// Formats the cached dates for `seconds` when it is not the cached second.
    func refreshDate(_ seconds: Int64) {
        if seconds == cachedSecond { return }
        cachedSecond = seconds
        let (y, m, d, hh, mm, ss) = AccessLog.civil(seconds)
        cachedText.removeAll(keepingCapacity: true)
        append2(d, to: &cachedText)
        cachedText.append(UInt8(ascii: "/"))
        cachedText.append(contentsOf: AccessLog.months[(m - 1) * 3 ..< m * 3])
        cachedText.append(UInt8(ascii: "/"))
        append2(y / 100, to: &cachedText); append2(y, to: &cachedText)
        cachedText.append(UInt8(ascii: ":")); append2(hh, to: &cachedText)
        cachedText.append(UInt8(ascii: ":")); append2(mm, to: &cachedText)
        cachedText.append(UInt8(ascii: ":")); append2(ss, to: &cachedText)
        (" +0000" as StaticString).withUTF8Buffer { cachedText.append(contentsOf: $0) }
        cachedISO.removeAll(keepingCapacity: true)
        append2(y / 100, to: &cachedISO); append2(y, to: &cachedISO)
        cachedISO.append(UInt8(ascii: "-")); append2(m, to: &cachedISO)
        cachedISO.append(UInt8(ascii: "-")); append2(d, to: &cachedISO)
        cachedISO.append(UInt8(ascii: "T")); append2(hh, to: &cachedISO)
        cachedISO.append(UInt8(ascii: ":")); append2(mm, to: &cachedISO)
        cachedISO.append(UInt8(ascii: ":")); append2(ss, to: &cachedISO)
    }

    /// UTC civil date and time of a Unix time (Howard Hinnant's days_from_civil inverse).
    static func civil(_ t: Int64) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var days = t / 86_400
        var rem = t % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d), Int(rem / 3600), Int(rem / 60 % 60), Int(rem % 60))
    }
}
