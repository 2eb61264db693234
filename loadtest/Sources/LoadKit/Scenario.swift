import Foundation
import Yams

/// A scenario file: several requests picked by weight, e.g.
///
/// ```yaml
/// target: http://127.0.0.1:8080      # base for entries that give only path (and host)
/// requests:
///   - name: home
///     path: /
///     host: www.example.local         # Host header (and SNI) for this entry
///     weight: 8
///   - name: create
///     method: POST
///     url: http://127.0.0.1:8080/api/items
///     headers: { Content-Type: application/json }
///     body: '{"name":"x"}'            # or body_file: item.json (relative to the scenario)
///     weight: 1
/// ```
public struct Scenario {
    struct File: Decodable {
        var target: String?
        var requests: [Entry]
    }

    struct Entry: Decodable {
        var name: String?
        var method: String?
        var url: String?
        var path: String?
        var host: String?
        var headers: [String: String]?
        var body: String?
        var body_file: String?
        var weight: Int?
    }

    /// Loads and checks a scenario; `baseURL` (the command line's URL) is the default target.
    public static func load(path: String, baseURL: LoadURL?) throws -> [RequestSpec] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw UsageError("cannot read scenario '\(path)'")
        }
        let dir = (path as NSString).deletingLastPathComponent
        return try parse(text, name: path, baseURL: baseURL, directory: dir)
    }

    public static func parse(_ text: String, name: String = "scenario", baseURL: LoadURL?, directory: String = ".") throws -> [RequestSpec] {
        let file: File
        do {
            try checkKeys(text, name: name)
            file = try YAMLDecoder().decode(File.self, from: text)
        } catch let e as UsageError {
            throw e
        } catch let e as YamlError {
            throw UsageError("scenario '\(name)': \(describe(e))")
        } catch let e as DecodingError {
            throw UsageError("scenario '\(name)': \(oneLine(describe(e)))")
        } catch {
            throw UsageError("scenario '\(name)': \(oneLine("\(error)"))")
        }
        guard !file.requests.isEmpty else { throw UsageError("scenario '\(name)': no requests") }
        var base = baseURL
        if let t = file.target { base = try LoadURL(parsing: t) }
        var specs: [RequestSpec] = []
        for (i, e) in file.requests.enumerated() {
            let label = "scenario '\(name)' request \(i + 1)\(e.name.map { " (\($0))" } ?? "")"
            var url: LoadURL
            if let u = e.url {
                guard e.path == nil else { throw UsageError("\(label): give either url or path, not both") }
                do { url = try LoadURL(parsing: u) } catch let err as UsageError { throw UsageError("\(label): \(err.message)") }
            } else if let p = e.path {
                guard let b = base else { throw UsageError("\(label): path without a target (set 'target:' or give a URL)") }
                guard p.hasPrefix("/") else { throw UsageError("\(label): path must start with '/'") }
                url = b
                url.target = p
            } else {
                throw UsageError("\(label): needs url or path")
            }
            let method = e.method?.uppercased() ?? (e.body != nil || e.body_file != nil ? "POST" : "GET")
            guard RequestTemplate.isValidMethod(method) else { throw UsageError("\(label): bad method '\(method)'") }
            var headers: [(String, String)] = []
            for (k, v) in (e.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
                do { headers.append(try Parse.header("\(k): \(v)")) } catch let err as UsageError { throw UsageError("\(label): \(err.message)") }
            }
            var body: [UInt8] = []
            if let b = e.body { body = Array(b.utf8) }
            if let f = e.body_file {
                let full = f.hasPrefix("/") ? f : (directory as NSString).appendingPathComponent(f)
                guard let d = FileManager.default.contents(atPath: full) else { throw UsageError("\(label): cannot read body_file '\(f)'") }
                body = Array(d)
            }
            let weight = e.weight ?? 1
            guard weight >= 1 else { throw UsageError("\(label): weight must be at least 1") }
            specs.append(RequestSpec(name: e.name ?? "request \(i + 1)", method: method, url: url, hostOverride: e.host,
                                     headers: headers, body: body, weight: weight))
        }
        return specs
    }

    static let fileKeys: Set<String> = ["target", "requests"]
    static let entryKeys: Set<String> = ["name", "method", "url", "path", "host", "headers", "body", "body_file", "weight"]

    /// Unknown keys are errors naming the key (a misspelt `wieght:` must not silently become 1).
    static func checkKeys(_ text: String, name: String) throws {
        guard let root = try Yams.load(yaml: text) else { throw UsageError("scenario '\(name)': empty file") }
        guard let top = root as? [String: Any] else { throw UsageError("scenario '\(name)': expected a mapping with 'requests:'") }
        for k in top.keys where !fileKeys.contains(k) {
            throw UsageError("scenario '\(name)': unknown key '\(k)' (expected \(fileKeys.sorted().joined(separator: ", ")))")
        }
        guard let list = top["requests"] as? [Any] else { return }
        for (i, item) in list.enumerated() {
            guard let entry = item as? [String: Any] else { throw UsageError("scenario '\(name)' request \(i + 1): expected a mapping") }
            for k in entry.keys where !entryKeys.contains(k) {
                throw UsageError("scenario '\(name)' request \(i + 1): unknown key '\(k)' (expected \(entryKeys.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// A YAML syntax error on one line (Yams' own text adds the source line and a caret below):
    /// `line 4, column 4: did not find expected '-' indicator (while parsing a block collection at line 3, column 3)`.
    static func describe(_ e: YamlError) -> String {
        func at(_ m: Mark) -> String { "line \(m.line), column \(m.column)" }
        func text(_ context: YamlError.Context?, _ problem: String, _ mark: Mark) -> String {
            "\(at(mark)): \(problem)" + (context.map { " (\($0.text) at \(at($0.mark)))" } ?? "")
        }
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return text(context, problem, mark)
        case .duplicatedKeysInMapping(let keys, let context):
            // context.text is the whole file; the mark is the key's first occurrence.
            return "\(at(context.mark)): duplicate key \(keys.sorted().map { "'\($0)'" }.joined(separator: ", "))"
        default:
            return oneLine("\(e)")
        }
    }

    /// Joins a multi-line message into one line (the CLI promises one line per usage error).
    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .joined(separator: "; ")
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String {
            c.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing '\(k.stringValue)' at \(path(ctx.codingPath))"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "wrong type at \(path(ctx.codingPath)): \(ctx.debugDescription)"
        case .dataCorrupted(let ctx): return "\(ctx.debugDescription) \(ctx.underlyingError.map { "\($0)" } ?? "")"
        @unknown default: return "\(e)"
        }
    }
}
