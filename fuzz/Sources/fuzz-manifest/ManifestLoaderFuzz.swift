// libFuzzer target for the manifest loader (Sources/Objects/ManifestLoader.swift: Yams' YAML
// parser, strict decoding, unknown-field detection, validation). Invariants: loading is
// deterministic; every problem names the file and a document that exists; every object loaded
// passes validation; a loaded object written back as JSON (as `portico get -o json` would) loads
// again to the same object with no problem.
import Foundation
import FuzzSupport
import Objects

let file = "fuzz.yaml"

@main
enum Main {
    static func main() {
        runFuzzer { data, size in data.map { testOneInput($0, size) } ?? 0 }
    }
}

func testOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let r = ManifestLoader.load(yaml: text, file: file)
    let again = ManifestLoader.load(yaml: text, file: file)
    // Yams reports a duplicated-key error at the position of whichever duplicate its hash-ordered
    // set yields first, which differs between two loads of the same text: compare the problems
    // without positions (found by this target; the message and the document are stable).
    func stable(_ p: ManifestProblem) -> String {
        var q = p
        q.line = nil; q.column = nil
        if p.message.contains("duplicated key") { q.message = String(p.message.prefix { $0 != "\n" }) }
        return q.description
    }
    check(r.objects == again.objects && r.problems.map(stable) == again.problems.map(stable),
          "loading is deterministic: \(r.problems.map(\.description)) vs \(again.problems.map(\.description))")

    let documents = r.objects.map(\.document).max() ?? 0
    for p in r.problems {
        check(p.file == file, "problem names the file")
        if let d = p.document { check(d >= 1 && d <= size + 1, "problem document index \(d) in range") }
        check(!p.message.isEmpty, "problem has a message")
        check(p.description.hasPrefix(file), "description starts with the file")
    }
    for o in r.objects {
        check(o.file == file && o.document >= 1 && o.document >= 1 && documents >= o.document, "object position")
        if case .unknown = o.object { continue }
        let errors = o.object.validate()
        check(errors.isEmpty, "a loaded object is valid: \(errors)")
        guard let json = try? JSONEncoder().encode(o.object) else {
            check(false, "a loaded object encodes as JSON")
            continue
        }
        let back = ManifestLoader.load(yaml: String(decoding: json, as: UTF8.self), file: "roundtrip.json")
        check(back.problems.isEmpty, "the JSON of a loaded object loads without problems: \(back.problems) \(String(decoding: json, as: UTF8.self))")
        check(back.kubeObjects == [o.object], "the JSON of a loaded object loads to the same object: \(String(decoding: json, as: UTF8.self))")
    }
    return 0
}
