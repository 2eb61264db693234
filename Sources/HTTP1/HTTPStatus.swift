/// Reason phrases for the status codes the proxy sends or commonly relays (RFC 9110 §15).
public enum HTTPStatus {
    /// The standard reason phrase for `code`, or "" when there is none.
    public static func reasonPhrase(_ code: Int) -> StaticString {
        switch code {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 103: return "Early Hints"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 203: return "Non-Authoritative Information"
        case 204: return "No Content"
        case 205: return "Reset Content"
        case 206: return "Partial Content"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 402: return "Payment Required"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 407: return "Proxy Authentication Required"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 425: return "Too Early"
        case 426: return "Upgrade Required"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 451: return "Unavailable For Legal Reasons"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return ""
        }
    }
}

/// HTTP dates (RFC 9110 §5.6.7), by arithmetic only.
public enum HTTPDate {
    /// IMF-fixdate for a Unix time, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes). Works for
    /// any time from year 0 to 9999; years outside that are clamped to 4 digits modulo 10000.
    public static func imfFixdate(epochSeconds: Int64) -> [UInt8] {
        var days = epochSeconds / 86400
        var secs = epochSeconds % 86400
        if secs < 0 { secs += 86400; days -= 1 }
        // 1970-01-01 was a Thursday.
        var wday = (days + 4) % 7
        if wday < 0 { wday += 7 }
        // Howard Hinnant's civil_from_days.
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        var year = yoe + era * 400
        if month <= 2 { year += 1 }
        let hour = secs / 3600, minute = (secs / 60) % 60, second = secs % 60

        let dayNames: StaticString = "SunMonTueWedThuFriSat"
        let monthNames: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"
        var out = [UInt8]()
        out.reserveCapacity(29)
        let d = dayNames.utf8Start + Int(wday) * 3
        out.append(d[0]); out.append(d[1]); out.append(d[2])
        out.append(0x2C); out.append(0x20)  // ", "
        func two(_ v: Int64) { out.append(UInt8(0x30 + v / 10)); out.append(UInt8(0x30 + v % 10)) }
        two(day)
        out.append(0x20)
        let m = monthNames.utf8Start + Int(month - 1) * 3
        out.append(m[0]); out.append(m[1]); out.append(m[2])
        out.append(0x20)
        var y = year % 10000
        if y < 0 { y += 10000 }
        two(y / 100); two(y % 100)
        out.append(0x20)
        two(hour); out.append(0x3A); two(minute); out.append(0x3A); two(second)
        out.append(0x20); out.append(0x47); out.append(0x4D); out.append(0x54)  // " GMT"
        return out
    }
}
