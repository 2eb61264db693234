import Foundation
import Objects

extension ControllerManager {
    /// The contents of a ConfigMap or Secret (`kind`) as bytes, nil when it does not exist: what
    /// the node agent's `configContents` hook asks for `configMap` and `secret` volumes
    /// (`agent.configContents = manager.configContents`). ConfigMap `data` (UTF-8) and
    /// `binaryData` (base64); Secret `data` decoded from base64, `stringData` merged over it.
    public func configContents(namespace: String, kind: String, name: String) -> ConfigContents? {
        let type: ResourceType = kind == "Secret" ? .secrets : .configMaps
        guard let o = try? store.get(type, namespace: namespace, name: name) else { return nil }
        var entries: [String: [UInt8]] = [:]
        func decoded(_ field: String) -> [String: [UInt8]] {
            var out: [String: [UInt8]] = [:]
            for (k, v) in o[field]?.stringMap ?? [:] {
                if let d = Data(base64Encoded: v) { out[k] = Array(d) }
            }
            return out
        }
        if type == .secrets {
            entries = decoded("data")
            for (k, v) in o["stringData"]?.stringMap ?? [:] { entries[k] = Array(v.utf8) }
        } else {
            for (k, v) in o["data"]?.stringMap ?? [:] { entries[k] = Array(v.utf8) }
            for (k, v) in decoded("binaryData") where entries[k] == nil { entries[k] = v }
        }
        return ConfigContents(entries: entries, resourceVersion: o.resourceVersion)
    }
}
