import ArgumentParser
import ControlPlane
import Foundation
import Objects

/// Flags every client command shares: where the API server is and which namespace.
struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("server"), help: "The API server's URL (default: $PORTICO_SERVER, else http://127.0.0.1:8001).")
    var server: String?

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "The namespace.")
    var namespace: String = "default"

    func client() throws -> APIClient {
        let env = ProcessInfo.processInfo.environment["PORTICO_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        return try APIClient(server: server ?? env ?? "http://127.0.0.1:8001")
    }
}

// MARK: - Kinds

extension ResourceType {
    /// Finds the kind a user names: `pods`, `pod`, `po`, `Pod`, `deployments.apps`, `deploy` …
    static func named(_ text: String) -> ResourceType? {
        let t = text.lowercased()
        return all.first { r in
            r.resource == t || r.kind.lowercased() == t || r.shortNames.contains(t) || r.groupResource == t
                || (!r.group.isEmpty && "\(r.kind.lowercased()).\(r.group)" == t)
        }
    }

    static func require(_ text: String) throws -> ResourceType {
        guard let r = named(text) else {
            throw ClientFailure(message: "error: the server doesn't have a resource type \"\(text)\"", exitCode: 1)
        }
        return r
    }

    /// `deployment.apps` / `pod`: how kubectl names a kind in `KIND/NAME` output.
    var singularGroup: String { group.isEmpty ? kind.lowercased() : "\(kind.lowercased()).\(group)" }

    /// The REST path of the collection (`namespace` ignored for cluster-scoped kinds; nil for
    /// every namespace) or of one object.
    func path(namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var p = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let ns = namespace { p += "/namespaces/\(percentEncode(ns))" }
        p += "/\(resource)"
        if let name { p += "/\(percentEncode(name))" }
        if let subresource { p += "/\(subresource)" }
        return p
    }
}

func percentEncode(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

/// Splits `KIND/NAME` or `KIND NAME` arguments into a kind and a name.
func kindAndName(_ args: [String], command: String) throws -> (ResourceType, String) {
    if args.count == 1, let slash = args[0].firstIndex(of: "/") {
        let name = String(args[0][args[0].index(after: slash)...])
        guard !name.isEmpty else { throw ClientFailure.usage("\(command): expected KIND/NAME, got \(args[0])") }
        return (try ResourceType.require(String(args[0][..<slash])), name)
    }
    guard args.count == 2 else { throw ClientFailure.usage("\(command): expected KIND NAME or KIND/NAME") }
    return (try ResourceType.require(args[0]), args[1])
}

// MARK: - Time

enum ClientTime {
    static func parse(_ s: String?) -> Date? {
        guard let s, !s.isEmpty else { return nil }
        let f = ISO8601DateFormatter()
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }

    /// kubectl's short human durations: `42s`, `3m12s`, `25m`, `5h10m`, `3d`.
    static func human(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s)s" }
        let m = s / 60
        if m < 10 { return s % 60 == 0 ? "\(m)m" : "\(m)m\(s % 60)s" }
        if m < 180 { return "\(m)m" }
        let h = s / 3600
        if h < 8 { return m % 60 == 0 ? "\(h)h" : "\(h)h\(m % 60)m" }
        if h < 48 { return "\(h)h" }
        let d = h / 24
        if h < 24 * 8 { return h % 24 == 0 ? "\(d)d" : "\(d)d\(h % 24)h" }
        if d < 365 * 2 { return "\(d)d" }
        return "\(d / 365)y"
    }

    /// The age of a timestamp, `<unknown>` when absent.
    static func age(_ timestamp: String?) -> String {
        guard let d = parse(timestamp) else { return "<unknown>" }
        return human(Date().timeIntervalSince(d))
    }
}

// MARK: - YAML and JSON

enum ClientYAML {
    /// Block-style YAML with sorted keys, as `kubectl get -o yaml` prints.
    static func emit(_ v: JSONValue) -> String {
        var out = ""
        emit(v, indent: 0, into: &out, inline: false)
        return out
    }

    private static func emit(_ v: JSONValue, indent: Int, into out: inout String, inline: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case .object(let o) where !o.isEmpty:
            var first = true
            for k in o.keys.sorted() {
                let value = o[k]!
                if !(first && inline) { out += pad }
                first = false
                out += scalarText(.string(k)) + ":"
                switch value {
                case .object(let c) where !c.isEmpty:
                    out += "\n"; emit(value, indent: indent + 2, into: &out, inline: false)
                case .array(let a) where !a.isEmpty:
                    out += "\n"; emit(value, indent: indent, into: &out, inline: false)
                default:
                    out += " " + scalarText(value) + "\n"
                }
            }
        case .array(let a) where !a.isEmpty:
            for item in a {
                out += pad + "- "
                switch item {
                case .object(let c) where !c.isEmpty:
                    emit(item, indent: indent + 2, into: &out, inline: true)
                case .array(let inner) where !inner.isEmpty:
                    out += "\n"; emit(item, indent: indent + 2, into: &out, inline: false)
                default:
                    out += scalarText(item) + "\n"
                }
            }
        default:
            out += (inline ? "" : pad) + scalarText(v) + "\n"
        }
    }

    private static let reserved: Set<String> = ["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n", ""]

    static func scalarText(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .object: return "{}"
        case .array: return "[]"
        case .string(let s):
            let plainFirst = CharacterSet.letters.union(CharacterSet(charactersIn: "_/."))
            let plainRest = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_/.-: "))
            let looksPlain = s.unicodeScalars.first.map { plainFirst.contains($0) } == true
                && s.unicodeScalars.allSatisfy { plainRest.contains($0) && $0.isASCII }
                && !s.hasSuffix(" ") && !s.hasSuffix(":") && !s.contains(": ")
                && !reserved.contains(s.lowercased()) && Double(s) == nil
            if looksPlain { return s }
            // Dotted numbers (addresses, versions) are strings to every YAML reader; print them plain.
            if s.split(separator: ".", omittingEmptySubsequences: false).count >= 3,
               s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), !s.hasPrefix("."), !s.hasSuffix(".") { return s }
            return JSONValue.string(s).jsonString   // a JSON string is a YAML double-quoted scalar
        }
    }
}

// MARK: - Tables

/// Columns padded like kubectl's printer: each as wide as its widest cell, three spaces apart.
/// `minWidths` keeps later rows (a watch's) aligned with a table printed before.
func formatTable(_ rows: [[String]], minWidths: [Int] = []) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = (0..<width).map { $0 < minWidths.count ? minWidths[$0] : 0 }
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return rows.map { r in
        r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0) }
            .joined()
    }.joined(separator: "\n") + "\n"
}

func writeOut(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}

func writeErr(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}

/// The column widths `formatTable` gives `rows`.
func tableWidths(_ rows: [[String]]) -> [Int] {
    guard let width = rows.map(\.count).max() else { return [] }
    var widths = [Int](repeating: 0, count: width)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return widths
}
