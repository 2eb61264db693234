/// Builds Prometheus text exposition format 0.0.4. Cold path (scrapes).
struct PrometheusWriter {
    var text = ""

    /// `# HELP` and `# TYPE` lines for a metric family.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(PrometheusWriter.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: UInt64) {
        sample(name, labels, String(value))
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            for (k, (label, v)) in labels.enumerated() {
                if k > 0 { text += "," }
                text += label
                text += "=\""
                text += PrometheusWriter.escapeLabelValue(v)
                text += "\""
            }
            text += "}"
        }
        text += " "
        text += value
        text += "\n"
    }

    /// Label values: backslash, double quote and line feed are escaped.
    static func escapeLabelValue(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// HELP text: backslash and line feed are escaped.
    static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Nanoseconds as decimal seconds with exactly nine fraction digits trimmed of trailing zeros
    /// (exact, no floating-point rounding): 1_500_000 → `0.0015`.
    static func seconds(nanos: UInt64) -> String {
        let whole = nanos / 1_000_000_000
        var frac = nanos % 1_000_000_000
        if frac == 0 { return String(whole) }
        var digits = 9
        while frac % 10 == 0 { frac /= 10; digits -= 1 }
        let f = String(frac)
        return "\(whole)." + String(repeating: "0", count: digits - f.count) + f
    }
}
