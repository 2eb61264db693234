/// Strict chunked body decoder (RFC 9112 §7.1) used for pass-through: the proxy forwards the
/// exact bytes this consumed, so it accepts only unambiguous framing.
///
/// - chunk-size: 1*HEXDIG; leading zeros allowed, but more than 16 digits or a value over 2^62 is
///   `.chunkSizeOverflow`; a sign, "0x", whitespace not followed by ";" or any other byte is
///   `.invalidChunkSize`.
/// - chunk-ext: *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ), validated
///   (`.invalidChunkFraming` when malformed); longer than `maxExtension` bytes (from the end of
///   the size to the CR) is `.chunkExtensionTooLong`.
/// - The CRLF after the size line and after the data must be exactly CRLF (`.invalidChunkFraming`;
///   also for bare CR or LF anywhere, trailers included).
/// - Trailer fields after the last chunk are checked like header fields (token ":" field-value;
///   no obs-fold) and limited to 64 KiB in total (`.invalidTrailer`).
///
/// After a failure every call returns the same failure; after completion, `.success(0)`.
public struct ChunkedDecoder {
    public var maxExtension: Int
    public private(set) var isComplete: Bool = false
    /// Total chunk-data bytes seen so far.
    public private(set) var payloadBytes: UInt64 = 0

    enum State: UInt8 {
        case sizeStart, size, extWS, extBeforeName, extName, extAfterName, extBeforeValue, extToken
        case extQuoted, extQuotedEscape, extAfterQuoted, sizeLF, data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, endLF, done
    }

    static let maxTrailerBytes = 65536

    var state: State = .sizeStart
    var size: UInt64 = 0
    var digits = 0
    var extLength = 0
    var remaining: UInt64 = 0
    var trailerBytes = 0
    var failure: ParseFailure? = nil

    public init(maxExtension: Int = 4096) {
        self.maxExtension = maxExtension
    }

    public mutating func reset() {
        isComplete = false
        payloadBytes = 0
        state = .sizeStart
        size = 0
        digits = 0
        extLength = 0
        remaining = 0
        trailerBytes = 0
        failure = nil
    }

    /// Consumes as many bytes as belong to the body (sizes, extensions, data, CRLFs, trailer
    /// section) and returns the count; stops exactly at the end of the message (after the final
    /// CRLF of the trailer section), leaving pipelined bytes unconsumed. Keeps state between
    /// calls, so any split of the input works.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Result<Int, ParseFailure> {
        if let f = failure { return .failure(f) }
        if state == .done { return .success(0) }
        guard let base = bytes.baseAddress else { return .success(0) }
        let n = bytes.count
        var i = 0
        while i < n {
            if state == .data {
                let take = Swift.min(UInt64(n &- i), remaining)
                i &+= Int(take)
                remaining &-= take
                payloadBytes &+= take
                if remaining == 0 { state = .dataCR }
                continue
            }
            let b = loadByte(base, i)
            i &+= 1
            switch state {
            case .sizeStart:
                guard let h = ByteClass.hexValue(b) else { return fail(b == LF || b == CR ? .invalidChunkFraming : .invalidChunkSize) }
                size = UInt64(h)
                digits = 1
                state = .size
            case .size:
                if let h = ByteClass.hexValue(b) {
                    digits &+= 1
                    if digits > 16 { return fail(.chunkSizeOverflow) }
                    size = size << 4 | UInt64(h)
                    if size > (1 << 62) { return fail(.chunkSizeOverflow) }
                } else if b == CR {
                    state = .sizeLF
                } else if b == SEMI {
                    extLength = 1
                    state = .extBeforeName
                } else if ByteClass.isOWS(b) {
                    extLength = 1
                    state = .extWS
                } else if b == LF {
                    return fail(.invalidChunkFraming)
                } else {
                    return fail(.invalidChunkSize)
                }
            case .extWS, .extBeforeName, .extName, .extAfterName, .extBeforeValue, .extToken,
                 .extQuoted, .extQuotedEscape, .extAfterQuoted:
                if b != CR {
                    extLength &+= 1
                    if extLength > maxExtension { return fail(.chunkExtensionTooLong) }
                }
                if let f = extensionByte(b) { return fail(f) }
            case .sizeLF:
                guard b == LF else { return fail(.invalidChunkFraming) }
                if size == 0 {
                    state = .trailerLineStart
                } else {
                    remaining = size
                    state = .data
                }
            case .data:
                break  // handled above
            case .dataCR:
                guard b == CR else { return fail(.invalidChunkFraming) }
                state = .dataLF
            case .dataLF:
                guard b == LF else { return fail(.invalidChunkFraming) }
                state = .sizeStart
            case .trailerLineStart, .trailerName, .trailerValue, .trailerLF:
                trailerBytes &+= 1
                if trailerBytes > ChunkedDecoder.maxTrailerBytes { return fail(.invalidTrailer) }
                if let f = trailer(b) { return fail(f) }
            case .endLF:
                guard b == LF else { return fail(.invalidChunkFraming) }
                state = .done
                isComplete = true
                return .success(i)
            case .done:
                return .success(i &- 1)
            }
        }
        return .success(n)
    }

    @inline(__always)
    mutating func fail(_ f: ParseFailure) -> Result<Int, ParseFailure> {
        failure = f
        return .failure(f)
    }

    /// One byte of chunk-ext (or the CR ending the size line).
    @inline(__always)
    mutating func extensionByte(_ b: UInt8) -> ParseFailure? {
        let ows = ByteClass.isOWS(b)
        switch state {
        case .extWS:  // BWS, which must lead to ";"
            if ows { return nil }
            if b == SEMI { state = .extBeforeName; return nil }
        case .extBeforeName:
            if ows { return nil }
            if ByteClass.isTchar(b) { state = .extName; return nil }
        case .extName:
            if ByteClass.isTchar(b) { return nil }
            if b == 0x3D { state = .extBeforeValue; return nil }
            if b == SEMI { state = .extBeforeName; return nil }
            if ows { state = .extAfterName; return nil }
            if b == CR { state = .sizeLF; return nil }
        case .extAfterName:
            if ows { return nil }
            if b == 0x3D { state = .extBeforeValue; return nil }
            if b == SEMI { state = .extBeforeName; return nil }
        case .extBeforeValue:
            if ows { return nil }
            if b == DQUOTE { state = .extQuoted; return nil }
            if ByteClass.isTchar(b) { state = .extToken; return nil }
        case .extToken:
            if ByteClass.isTchar(b) { return nil }
            if b == SEMI { state = .extBeforeName; return nil }
            if ows { state = .extWS; return nil }
            if b == CR { state = .sizeLF; return nil }
        case .extQuoted:
            if b == DQUOTE { state = .extAfterQuoted; return nil }
            if b == BACKSLASH { state = .extQuotedEscape; return nil }
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            if b == HTAB || (b >= 0x20 && b != 0x7F) { return nil }
        case .extQuotedEscape:
            if b == HTAB || (b >= 0x20 && b != 0x7F) { state = .extQuoted; return nil }
        case .extAfterQuoted:
            if b == SEMI { state = .extBeforeName; return nil }
            if ows { state = .extWS; return nil }
            if b == CR { state = .sizeLF; return nil }
        default:
            break
        }
        return .invalidChunkFraming
    }

    /// One byte of the trailer section.
    @inline(__always)
    mutating func trailer(_ b: UInt8) -> ParseFailure? {
        switch state {
        case .trailerLineStart:
            if b == CR { state = .endLF; return nil }
            if ByteClass.isTchar(b) { state = .trailerName; return nil }
            if b == LF { return .invalidChunkFraming }
            return .invalidTrailer
        case .trailerName:
            if ByteClass.isTchar(b) { return nil }
            if b == COLON { state = .trailerValue; return nil }
            if b == LF { return .invalidChunkFraming }
            return .invalidTrailer
        case .trailerValue:
            if b == CR { state = .trailerLF; return nil }
            if ByteClass.isFieldValueByte(b) { return nil }
            if b == LF { return .invalidChunkFraming }
            return .invalidTrailer
        case .trailerLF:
            if b == LF { state = .trailerLineStart; return nil }
            return .invalidChunkFraming
        default:
            return .invalidChunkFraming
        }
    }
}
