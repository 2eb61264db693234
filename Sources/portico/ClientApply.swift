import ArgumentParser
import ControlPlane
import Foundation
import Objects

/// One object of a manifest, as JSON to send, with where it came from.
struct ManifestObject {
    var json: JSONValue
    var type: ResourceType
    var file: String
    var document: Int
}

/// Reads manifests for `apply -f` and `delete -f`: every file is validated by `ManifestLoader`
/// (strict decoding and the same rules the API server applies) plus the workload checks below,
/// and any problem is reported with its file, object and field before anything is sent.
enum ClientManifests {
    /// `-` reads standard input.
    static func load(_ paths: [String]) throws -> [ManifestObject] {
        var loaded = ManifestLoader.load(paths: paths.filter { $0 != "-" })
        if paths.contains("-") {
            let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let fromStdin = ManifestLoader.load(yaml: text, file: "<stdin>")
            loaded.objects += fromStdin.objects
            loaded.problems += fromStdin.problems
        }
        var problems = loaded.problems
        var objects: [ManifestObject] = []
        for l in loaded.objects {
            guard let item = l.raw else {
                problems.append(ManifestProblem(file: l.file, document: l.document, kind: l.object.kind, name: l.object.name,
                                                message: "cannot be converted to JSON"))
                continue
            }
            let apiVersion = l.object.apiVersion, kind = l.object.kind
            guard let type = ResourceType.find(apiVersion: apiVersion, kind: kind) else {
                problems.append(ManifestProblem(file: l.file, document: l.document, kind: kind, name: item.name, field: "kind",
                    message: "no matches for kind \"\(kind)\" in version \"\(apiVersion)\" (Portico serves: \(ResourceType.all.map(\.kind).joined(separator: ", ")))"))
                continue
            }
            var found = workloadProblems(type, item)
            if found.isEmpty && item.name.isEmpty { found.append(FieldError("metadata.name", "required value")) }
            problems += found.map {
                ManifestProblem(file: l.file, document: l.document, kind: kind,
                                namespace: type.namespaced ? (item.namespace.isEmpty ? "default" : item.namespace) : nil,
                                name: item.name, field: (l.item.map { "items[\($0)]." } ?? "") + $0.field, message: $0.message)
            }
            objects.append(ManifestObject(json: item, type: type, file: l.file, document: l.document))
        }
        if !problems.isEmpty {
            problems.sort { ($0.file, $0.document ?? 0) < ($1.file, $1.document ?? 0) }
            throw ClientFailure(message: problems.map { "error: \($0.description)" }.joined(separator: "\n"), exitCode: 1)
        }
        if objects.isEmpty { throw ClientFailure.failed("no objects passed to apply") }
        return objects
    }

    /// Deployments, ReplicaSets and StatefulSets, which module Objects does not model: a
    /// selector, one that matches the template's labels, and named containers with a command.
    static func workloadProblems(_ type: ResourceType, _ o: JSONValue) -> [FieldError] {
        guard [ResourceType.deployments, .replicaSets, .statefulSets, .pods].contains(type) else { return [] }
        var out: [FieldError] = []
        if o.name.isEmpty { out.append(FieldError("metadata.name", "required value")) }
        let podSpec: JSONValue?, prefix: String
        if type == .pods {
            podSpec = o["spec"]; prefix = "spec"
        } else {
            podSpec = o[path: ["spec", "template", "spec"]]; prefix = "spec.template.spec"
            if let r = o[path: ["spec", "replicas"]], r != .null, (r.intValue ?? -1) < 0 {
                out.append(FieldError("spec.replicas", "invalid value: must be a non-negative integer"))
            }
            let match = o[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:]
            let exprs = o[path: ["spec", "selector", "matchExpressions"]]?.arrayValue ?? []
            let labels = o[path: ["spec", "template", "metadata", "labels"]]?.stringMap ?? [:]
            if match.isEmpty && exprs.isEmpty {
                out.append(FieldError("spec.selector", "required value: a label selector matching spec.template.metadata.labels"))
            } else if match.contains(where: { labels[$0.key] != $0.value }) {
                out.append(FieldError("spec.template.metadata.labels", "invalid value: `selector` does not match template `labels`"))
            }
        }
        let containers = podSpec?["containers"]?.arrayValue ?? []
        if containers.isEmpty { out.append(FieldError("\(prefix).containers", "required value")) }
        for (i, c) in containers.enumerated() {
            if (c["name"]?.stringValue ?? "").isEmpty { out.append(FieldError("\(prefix).containers[\(i)].name", "required value")) }
            if (c["command"]?.arrayValue ?? []).isEmpty {
                out.append(FieldError("\(prefix).containers[\(i)].command", "required value: Portico runs each container as a local process from its command (the image is only recorded)"))
            }
        }
        return out
    }
}

/// The JSON merge patch that takes `current` to `modified`, deleting what `original` (the last
/// applied configuration) had and `modified` no longer has: kubectl's three-way apply for
/// types without a strategic-merge schema. Lists are replaced whole, and only when the file
/// changed them since the last apply: a list the server filled in with defaults (a Service
/// port's `protocol`) would otherwise differ from the file on every apply.
enum ApplyPatch {
    static func threeWay(original: JSONValue?, modified: JSONValue, current: JSONValue?) -> JSONValue? {
        guard case .object(let m) = modified else { return modified == current ? nil : modified }
        let o = original?.objectValue ?? [:]
        let c = current?.objectValue ?? [:]
        var patch: [String: JSONValue] = [:]
        for (k, mv) in m {
            if case .object = mv, let cv = c[k], case .object = cv {
                if let sub = threeWay(original: o[k], modified: mv, current: cv) { patch[k] = sub }
            } else if c[k] != mv {
                if case .array = mv, c[k] != nil, o[k] == mv { continue }
                patch[k] = mv
            }
        }
        for k in o.keys where m[k] == nil && c[k] != nil { patch[k] = .null }
        return patch.isEmpty ? nil : .object(patch)
    }
}

let lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update objects from manifest files.",
        discussion: """
        Each object is read from the server: a missing one is created (POST); an existing one is \
        updated with a JSON merge patch computed as kubectl does (three-way, from the \
        kubectl.kubernetes.io/last-applied-configuration annotation, the file and the live object), \
        so fields the server fills in (clusterIP, status) are kept and fields removed from the file \
        are removed from the object. Files are validated before anything is sent.
        """)

    @OptionGroup var options: ClientOptions

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or folder (repeatable; - reads standard input).")
    var files: [String] = []

    func run() throws {
        try runClient {
            guard !files.isEmpty else { throw ClientFailure.usage("apply: -f FILE is required") }
            let objects = try ClientManifests.load(files)
            let api = try options.client()
            var failed = false
            for o in objects {
                do {
                    let verb = try apply(o, api)
                    writeOut("\(o.type.singularGroup)/\(o.json.name) \(verb)\n")
                } catch let f as ClientFailure {
                    if f.unreachable { throw f }
                    writeErr(f.message + "\n")
                    failed = true
                }
            }
            if failed { throw ClientFailure(message: "", exitCode: 1) }
        }
    }

    func apply(_ o: ManifestObject, _ api: APIClient) throws -> String {
        let ns = o.type.namespaced ? (o.json.namespace.isEmpty ? options.namespace : o.json.namespace) : nil
        // The annotation records the object as kubectl does (compact JSON with sorted keys, the
        // namespace filled in, an empty annotations map kept), so each sees the other's applies
        // of the same file as unchanged.
        var modified = o.json
        if let ns { modified[path: ["metadata", "namespace"]] = .string(ns) }
        var annotations = modified[path: ["metadata", "annotations"]]?.objectValue ?? [:]
        annotations[lastAppliedAnnotation] = nil
        var recorded = modified
        recorded[path: ["metadata", "annotations"]] = .object(annotations)
        annotations[lastAppliedAnnotation] = .string(recorded.jsonString + "\n")
        modified[path: ["metadata", "annotations"]] = .object(annotations)

        let path = o.type.path(namespace: ns, name: o.json.name)
        let live = try api.request("GET", path)
        if live.status == 404 {
            _ = try api.json("POST", o.type.path(namespace: ns), body: modified)
            return "created"
        }
        guard live.ok else { throw ClientFailure.server(live.status, live.body) }
        let current = try live.json()
        let liveRecord = current[path: ["metadata", "annotations", lastAppliedAnnotation]]?.stringValue
        let original = liveRecord.flatMap { try? JSONValue.parse($0) }
        if let liveRecord, original == recorded {
            // The same object written by another client's serializer: not a change.
            modified[path: ["metadata", "annotations", lastAppliedAnnotation]] = .string(liveRecord)
        }
        guard let patch = ApplyPatch.threeWay(original: original, modified: modified, current: current) else { return "unchanged" }
        _ = try api.json("PATCH", path, body: patch, contentType: "application/merge-patch+json")
        return "configured"
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete objects by kind and name, or those of manifest files.",
        discussion: "Owned objects (a Deployment's ReplicaSets and Pods) are deleted by the server through their ownerReferences.")

    @OptionGroup var options: ClientOptions

    @Option(name: [.customShort("f"), .customLong("filename")], help: "Delete the objects of a manifest file or folder (repeatable).")
    var files: [String] = []

    @Flag(name: .customLong("ignore-not-found"), help: "Treat a missing object as deleted.")
    var ignoreNotFound = false

    @Argument(help: "KIND NAME [NAME...] or KIND/NAME [KIND/NAME...]")
    var args: [String] = []

    func run() throws {
        try runClient {
            var targets: [(ResourceType, String?, String)] = []
            if !files.isEmpty {
                guard args.isEmpty else { throw ClientFailure.usage("delete: give either -f or KIND NAME, not both") }
                for o in try ClientManifests.load(files) {
                    targets.append((o.type, o.json.namespace.isEmpty ? nil : o.json.namespace, o.json.name))
                }
            } else if !args.isEmpty && args.allSatisfy({ $0.contains("/") }) {
                for a in args { let (t, n) = try kindAndName([a], command: "delete"); targets.append((t, nil, n)) }
            } else if args.count >= 2 {
                let t = try ResourceType.require(args[0])
                for n in args.dropFirst() { targets.append((t, nil, n)) }
            } else {
                throw ClientFailure.usage("delete: expected KIND NAME, KIND/NAME or -f FILE")
            }
            let api = try options.client()
            var failed = false
            for (type, ns, name) in targets {
                let r = try api.request("DELETE", type.path(namespace: ns ?? options.namespace, name: name))
                if r.ok {
                    writeOut("\(type.singularGroup) \"\(name)\" deleted\n")
                } else if r.status == 404 && ignoreNotFound {
                    continue
                } else {
                    writeErr(ClientFailure.server(r.status, r.body).message + "\n")
                    failed = true
                }
            }
            if failed { throw ClientFailure(message: "", exitCode: 1) }
        }
    }
}
