/// Pieces shared by the request and response parsers: field-line syntax (RFC 9112 §5, RFC 9110
/// §5.5), field classification, and the list syntax of Content-Length, Transfer-Encoding and
/// Connection (RFC 9110 §5.6.1). Everything works on offsets into the caller's buffer.
let CR: UInt8 = 0x0D
let LF: UInt8 = 0x0A
let SP: UInt8 = 0x20
let HTAB: UInt8 = 0x09
let COLON: UInt8 = 0x3A
let COMMA: UInt8 = 0x2C
let SEMI: UInt8 = 0x3B
let DQUOTE: UInt8 = 0x22
let BACKSLASH: UInt8 = 0x5C

enum FieldLine {
    /// Parses the field line `[ls, le)` (`le` is the offset of its CR) into `field`.
    /// Failures: `.obsFold` (line starts with SP/HTAB), `.whitespaceBeforeColon`,
    /// `.missingColon`, `.invalidHeaderName`, `.bareCR`, `.invalidHeaderValue`.
    @inline(__always)
    static func parse(_ base: UnsafeRawPointer, _ ls: Int, _ le: Int, into field: inout HeaderField) -> ParseFailure? {
        var i = ls
        let first = loadByte(base, i)
        if ByteClass.isOWS(first) { return .obsFold }
        // Eight name bytes at a time up to the first byte that is not a letter or "-" (for
        // almost every name, the colon), then byte by byte over any other tchars.
        while i &+ 8 <= le {
            let other = SWAR.notLetterOrDash(SWAR.load(base, i))
            if other == 0 { i &+= 8; continue }
            i &+= other.trailingZeroBitCount &>> 3
            break
        }
        while i < le && ByteClass.isTchar(loadByte(base, i)) { i &+= 1 }
        let nameEnd = i
        if i == le { return .missingColon }
        let c = loadByte(base, i)
        if c != COLON {
            if ByteClass.isOWS(c) {
                var j = i
                while j < le && ByteClass.isOWS(loadByte(base, j)) { j &+= 1 }
                if j < le && loadByte(base, j) == COLON && nameEnd > ls { return .whitespaceBeforeColon }
            }
            // Not "name:": tell a bare CR, a bad name character and a missing colon apart.
            var sawColon = false
            var j = i
            while j < le {
                let b = loadByte(base, j)
                if b == CR { return .bareCR }
                if b == COLON { sawColon = true }
                j &+= 1
            }
            return sawColon ? .invalidHeaderName : .missingColon
        }
        if nameEnd == ls { return .invalidHeaderName }
        i &+= 1
        while i < le && ByteClass.isOWS(loadByte(base, i)) { i &+= 1 }
        let vs = i
        // field-value bytes: eight at a time when none is a CTL or DEL; a word with one is
        // checked byte by byte (HTAB is allowed; the first bad byte decides the failure).
        while i < le {
            if i &+ 8 <= le {
                if SWAR.noControlOrDEL(SWAR.load(base, i)) { i &+= 8; continue }
            } else if le &- 8 >= ls && SWAR.noControlOrDEL(SWAR.load(base, le &- 8)) {
                break  // the last word of the line covers the rest: [i, le) is inside [le - 8, le)
            }
            let b = loadByte(base, i)
            if (b < 0x20 && b != HTAB) || b == 0x7F { return b == CR ? .bareCR : .invalidHeaderValue }
            i &+= 1
        }
        // Every byte is valid, so the value ends after its last byte that is not SP or HTAB.
        var ve = le
        while ve > vs && ByteClass.isOWS(loadByte(base, ve &- 1)) { ve &-= 1 }
        let kind = classify(base, ls, nameEnd)
        field = HeaderField(name: ls..<nameEnd, value: vs..<ve, kind: kind, hopByHop: isHopByHop(kind))
        return nil
    }

    @inline(__always)
    static func isHopByHop(_ kind: FieldKind) -> Bool {
        switch kind {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade: return true
        default: return false
        }
    }

    @inline(__always)
    static func eq(_ base: UnsafeRawPointer, _ at: Int, _ lower: StaticString) -> Bool {
        return Bytes.equalsIgnoringCase(base, at, lower.utf8Start, lower.utf8CodeUnitCount)
    }

    /// Compares a field name (tchars only, as `parse` checked) of `lower`'s length with `lower`
    /// (lowercase letters and "-") ignoring case, a word at a time: OR-ing 0x20 into a tchar
    /// gives a lowercase letter only from that letter in either case, and "-" only from "-".
    @inline(__always)
    static func nameIs(_ base: UnsafeRawPointer, _ s: Int, _ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        let p = base + s
        let q = UnsafeRawPointer(lower.utf8Start)
        if n >= 8 {
            var i = 0
            while i &+ 8 < n {
                if p.loadUnaligned(fromByteOffset: i, as: UInt64.self) | SWAR.fold64 != q.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                i &+= 8
            }
            return p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) | SWAR.fold64 == q.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        }
        if n >= 4 {
            return p.loadUnaligned(as: UInt32.self) | 0x2020_2020 == q.loadUnaligned(as: UInt32.self)
                && p.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self) | 0x2020_2020 == q.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
        }
        return p.loadUnaligned(as: UInt16.self) | 0x2020 == q.loadUnaligned(as: UInt16.self)
            && p.loadUnaligned(fromByteOffset: n &- 2, as: UInt16.self) | 0x2020 == q.loadUnaligned(fromByteOffset: n &- 2, as: UInt16.self)
    }

    /// Classifies a field name (case-insensitively) by length, then first letter, then bytes.
    /// The name must be tchars (see `nameIs`).
    static func classify(_ base: UnsafeRawPointer, _ s: Int, _ e: Int) -> FieldKind {
        let n = e &- s
        let f = ByteClass.lower(loadByte(base, s))
        switch n {
        case 2: if nameIs(base, s, "te") { return .te }
        case 4:
            if f == 0x68 { if nameIs(base, s, "host") { return .host } }  // h
            else if f == 0x64 { if nameIs(base, s, "date") { return .date } }  // d
        case 6:
            if f == 0x65 { if nameIs(base, s, "expect") { return .expect } }  // e
            else if f == 0x63 { if nameIs(base, s, "cookie") { return .cookie } }  // c
            else if f == 0x73 { if nameIs(base, s, "server") { return .server } }  // s
        case 7:
            if f == 0x74 { if nameIs(base, s, "trailer") { return .trailer } }  // t
            else if f == 0x75 { if nameIs(base, s, "upgrade") { return .upgrade } }  // u
        case 9: if nameIs(base, s, "x-real-ip") { return .xRealIP }
        case 10:
            if f == 0x63 { if nameIs(base, s, "connection") { return .connection } }
            else if f == 0x6B { if nameIs(base, s, "keep-alive") { return .keepAlive } }  // k
            else if f == 0x73 { if nameIs(base, s, "set-cookie") { return .setCookie } }
        case 12: if nameIs(base, s, "x-request-id") { return .xRequestID }
        case 14: if nameIs(base, s, "content-length") { return .contentLength }
        case 15: if nameIs(base, s, "x-forwarded-for") { return .xForwardedFor }
        case 16:
            if f == 0x70 { if nameIs(base, s, "proxy-connection") { return .proxyConnection } }  // p
            else if f == 0x78 {
                if nameIs(base, s, "x-forwarded-host") { return .xForwardedHost }
                if nameIs(base, s, "x-forwarded-port") { return .xForwardedPort }
            }
        case 17:
            if f == 0x74 { if nameIs(base, s, "transfer-encoding") { return .transferEncoding } }
            else if f == 0x78 { if nameIs(base, s, "x-forwarded-proto") { return .xForwardedProto } }
        default: break
        }
        return .other
    }
}

/// Splits `[start, end)` at commas (outside quoted strings) into OWS-trimmed elements. Empty
/// elements are returned (as empty ranges) so callers can decide whether to allow them;
/// an empty input yields one empty element.
struct ListScanner {
    let base: UnsafeRawPointer
    var pos: Int
    let end: Int
    var done = false

    @inline(__always)
    init(_ base: UnsafeRawPointer, _ range: Range<Int>) {
        self.base = base; self.pos = range.lowerBound; self.end = range.upperBound
    }

    @inline(__always)
    mutating func next() -> Range<Int>? {
        if done { return nil }
        var i = pos
        var inQuote = false
        while i < end {
            let b = loadByte(base, i)
            if inQuote {
                if b == BACKSLASH { i &+= 1 } else if b == DQUOTE { inQuote = false }
            } else if b == COMMA {
                break
            } else if b == DQUOTE {
                inQuote = true
            }
            i &+= 1
        }
        var s = pos
        var e = Swift.min(i, end)
        if i >= end { done = true } else { pos = i &+ 1 }
        while s < e && ByteClass.isOWS(loadByte(base, s)) { s &+= 1 }
        while e > s && ByteClass.isOWS(loadByte(base, e &- 1)) { e &-= 1 }
        return s..<e
    }
}

/// What a head's fields say about framing and the connection, gathered field by field as the
/// parsers read them (no second pass over the fields). The first failure stops the gathering;
/// the parsers report it when the head is complete, after any syntax or size failure.
struct FieldSemantics {
    var contentLength: UInt64? = nil
    var transferEncoding = false
    var teCodings = 0
    var chunkedCount = 0
    var lastIsChunked = false
    var chunkedWithParameters = false
    var unknownCoding = false
    var hasConnection = false
    var close = false
    var keepAlive = false
    var connectionUpgrade = false
    var upgradeField = false
    var expectContinue = false
    var hostCount = 0
    var host: Range<Int>? = nil
    /// Bit `min(n, 63)` is set when some field a Connection option could name (not already
    /// hop-by-hop, not Host or Content-Length) has an `n`-byte name: options of other lengths
    /// name no field, so `markConnectionOptions` skips them without looking at the fields.
    var optionableNameLengths: UInt64 = 0
    /// The same bits for the lengths of the (non-empty) Connection options.
    var optionLengths: UInt64 = 0
    /// The first semantic failure (conflicting Content-Length, a second Host …), if any.
    var failure: ParseFailure? = nil

    init() {}

    /// Reads one field (Content-Length and Transfer-Encoding only with `examineFraming`, Host
    /// only for requests); records a malformed or conflicting Content-Length, a malformed
    /// Transfer-Encoding list (`.invalidHeaderValue`), or a second Host in `failure`, after
    /// which later fields are not looked at.
    @inline(__always)
    mutating func add(_ base: UnsafeRawPointer, _ f: HeaderField, isRequest: Bool, examineFraming: Bool) {
        if failure != nil { return }
        if f.kind == .other {
            optionableNameLengths |= FieldSemantics.lengthBit(f.name.count)
            return
        }
        if !f.hopByHop && f.kind != .host && f.kind != .contentLength {
            optionableNameLengths |= FieldSemantics.lengthBit(f.name.count)
        }
        failure = addKnown(base, f, isRequest: isRequest, examineFraming: examineFraming)
    }

    @inline(__always)
    static func lengthBit(_ n: Int) -> UInt64 { 1 << UInt64(Swift.min(n, 63)) }

    mutating func addKnown(_ base: UnsafeRawPointer, _ f: HeaderField, isRequest: Bool, examineFraming: Bool) -> ParseFailure? {
        switch f.kind {
        case .host where isRequest:
            hostCount &+= 1
            if hostCount > 1 { return .multipleHost }
            host = f.value
        case .contentLength where examineFraming:
            // The usual value is one number: the list of one element is the value itself.
            if let v = FieldSemantics.parseContentLength(base, f.value) {
                if let cl = contentLength, cl != v { return .conflictingContentLength }
                contentLength = v
                return nil
            }
            var list = ListScanner(base, f.value)
            while let el = list.next() {
                guard let v = FieldSemantics.parseContentLength(base, el) else { return .invalidContentLength }
                if let cl = contentLength, cl != v { return .conflictingContentLength }
                contentLength = v
            }
        case .transferEncoding where examineFraming:
            transferEncoding = true
            var list = ListScanner(base, f.value)
            while let el = list.next() {
                if el.isEmpty { continue }
                if let failure = addCoding(base, el) { return failure }
            }
        case .connection:
            hasConnection = true
            // The usual values, "keep-alive" and "close", are one-element lists (a field value
            // has no CTLs, so the folded compare of `nameIs` is exact here too).
            let n = f.value.count
            if n == 10 && FieldLine.nameIs(base, f.value.lowerBound, "keep-alive") {
                keepAlive = true
                optionLengths |= FieldSemantics.lengthBit(10)
                return nil
            }
            if n == 5 && FieldLine.nameIs(base, f.value.lowerBound, "close") {
                close = true
                optionLengths |= FieldSemantics.lengthBit(5)
                return nil
            }
            var list = ListScanner(base, f.value)
            while let el = list.next() {
                if !el.isEmpty { optionLengths |= FieldSemantics.lengthBit(el.count) }
                switch el.count {
                case 5: if FieldLine.eq(base, el.lowerBound, "close") { close = true }
                case 7: if FieldLine.eq(base, el.lowerBound, "upgrade") { connectionUpgrade = true }
                case 10: if FieldLine.eq(base, el.lowerBound, "keep-alive") { keepAlive = true }
                default: break
                }
            }
        case .upgrade:
            upgradeField = true
        case .expect:
            if f.value.count == 12 && FieldLine.eq(base, f.value.lowerBound, "100-continue") { expectContinue = true }
        default:
            break
        }
        return nil
    }

    /// At the end of a head without failure: marks the fields named by Connection options
    /// hop-by-hop (RFC 9110 §7.6.1).
    mutating func finish(_ base: UnsafeRawPointer, _ fields: inout [HeaderField]) {
        if optionLengths & optionableNameLengths != 0 && failure == nil {
            FieldSemantics.markConnectionOptions(base, &fields, optionableNameLengths)
        }
    }

    /// 1*DIGIT, at most 2^62.
    @inline(__always)
    static func parseContentLength(_ base: UnsafeRawPointer, _ r: Range<Int>) -> UInt64? {
        if r.isEmpty { return nil }
        var v: UInt64 = 0
        var i = r.lowerBound
        while i < r.upperBound {
            let d = loadByte(base, i) &- 0x30
            if d >= 10 { return nil }
            if v > 461_168_601_842_738_790 { return nil }
            v = v &* 10 &+ UInt64(d)
            if v > (1 << 62) { return nil }
            i &+= 1
        }
        return v
    }

    /// One transfer-coding: token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) ).
    /// Anything after "chunked" marks it as parameterised (refused by both parsers).
    mutating func addCoding(_ base: UnsafeRawPointer, _ r: Range<Int>) -> ParseFailure? {
        var i = r.lowerBound
        let e = r.upperBound
        while i < e && ByteClass.isTchar(loadByte(base, i)) { i &+= 1 }
        let nameEnd = i
        if nameEnd == r.lowerBound { return .invalidHeaderValue }
        let n = nameEnd &- r.lowerBound
        let s = r.lowerBound
        let isChunked = n == 7 && FieldLine.eq(base, s, "chunked")
        teCodings &+= 1
        if isChunked {
            chunkedCount &+= 1
            if i < e { chunkedWithParameters = true }
            lastIsChunked = i == e
            return nil
        }
        lastIsChunked = false
        let known = (n == 4 && FieldLine.eq(base, s, "gzip")) || (n == 6 && FieldLine.eq(base, s, "x-gzip"))
            || (n == 7 && FieldLine.eq(base, s, "deflate")) || (n == 8 && FieldLine.eq(base, s, "compress"))
            || (n == 10 && FieldLine.eq(base, s, "x-compress"))
        if !known { unknownCoding = true }
        // Parameters.
        while i < e {
            while i < e && ByteClass.isOWS(loadByte(base, i)) { i &+= 1 }
            guard i < e, loadByte(base, i) == SEMI else { return .invalidHeaderValue }
            i &+= 1
            while i < e && ByteClass.isOWS(loadByte(base, i)) { i &+= 1 }
            let ps = i
            while i < e && ByteClass.isTchar(loadByte(base, i)) { i &+= 1 }
            if i == ps { return .invalidHeaderValue }
            while i < e && ByteClass.isOWS(loadByte(base, i)) { i &+= 1 }
            guard i < e, loadByte(base, i) == 0x3D else { return .invalidHeaderValue }  // "="
            i &+= 1
            while i < e && ByteClass.isOWS(loadByte(base, i)) { i &+= 1 }
            guard i < e else { return .invalidHeaderValue }
            if loadByte(base, i) == DQUOTE {
                i &+= 1
                var closed = false
                while i < e {
                    let b = loadByte(base, i)
                    i &+= 1
                    if b == DQUOTE { closed = true; break }
                    if b == BACKSLASH { if i >= e { return .invalidHeaderValue }; i &+= 1 }
                }
                if !closed { return .invalidHeaderValue }
            } else {
                let vs = i
                while i < e && ByteClass.isTchar(loadByte(base, i)) { i &+= 1 }
                if i == vs { return .invalidHeaderValue }
            }
        }
        return nil
    }

    /// RFC 9110 §7.6.1: fields named by a Connection option are hop-by-hop. Host and
    /// Content-Length are never marked (a Connection field must not strip them).
    /// `lengths`: see `optionableNameLengths` (all ones looks at every option).
    static func markConnectionOptions(_ base: UnsafeRawPointer, _ fields: inout [HeaderField], _ lengths: UInt64 = ~0) {
        for ci in fields.indices where fields[ci].kind == .connection {
            var list = ListScanner(base, fields[ci].value)
            while let el = list.next() {
                if el.isEmpty || lengths & lengthBit(el.count) == 0 { continue }
                for j in fields.indices {
                    let f = fields[j]
                    if f.hopByHop || f.kind == .host || f.kind == .contentLength { continue }
                    if f.name.count == el.count
                        && Bytes.rangesEqualIgnoringCase(base, f.name.lowerBound, el.lowerBound, el.count) {
                        fields[j].hopByHop = true
                    }
                }
            }
        }
    }
}

enum HostSyntax {
    /// uri-host [ ":" port ] (RFC 3986): reg-name (unreserved / pct-encoded / sub-delims, which
    /// covers IPv4) or an IP-literal in brackets; port is 1 to 5 digits, at most 65535.
    /// `requirePort` for CONNECT's authority-form. Empty hosts and userinfo are refused.
    static func isValid(_ base: UnsafeRawPointer, _ r: Range<Int>, requirePort: Bool = false) -> Bool {
        var i = r.lowerBound
        let e = r.upperBound
        if i >= e { return false }
        if loadByte(base, i) == 0x5B {  // "["
            i &+= 1
            let s = i
            while i < e {
                let b = loadByte(base, i)
                if b == 0x5D { break }  // "]"
                if !(ByteClass.isRegName(b) || b == COLON) { return false }
                i &+= 1
            }
            if i >= e || i == s { return false }
            i &+= 1
        } else {
            let s = i
            // Eight bytes at a time up to the first that is not a letter, digit, "." or "-"
            // (all reg-name bytes, none a ":" or "%"), then byte by byte.
            while i &+ 8 <= e {
                let other = SWAR.notHostNameByte(SWAR.load(base, i))
                if other == 0 { i &+= 8; continue }
                i &+= other.trailingZeroBitCount &>> 3
                break
            }
            while i < e {
                let b = loadByte(base, i)
                if b == COLON { break }
                if b == 0x25 {  // "%" HEXDIG HEXDIG
                    guard i &+ 2 < e, ByteClass.hexValue(loadByte(base, i &+ 1)) != nil,
                          ByteClass.hexValue(loadByte(base, i &+ 2)) != nil else { return false }
                    i &+= 3
                    continue
                }
                if !ByteClass.isRegName(b) { return false }
                i &+= 1
            }
            if i == s { return false }
        }
        if i == e { return !requirePort }
        guard loadByte(base, i) == COLON else { return false }
        i &+= 1
        let digits = e &- i
        if digits < 1 || digits > 5 { return false }
        var port = 0
        while i < e {
            let d = loadByte(base, i) &- 0x30
            if d >= 10 { return false }
            port = port &* 10 &+ Int(d)
            i &+= 1
        }
        return port <= 65535
    }
}
