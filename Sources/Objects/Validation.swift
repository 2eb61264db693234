import Foundation

/// Kubernetes' name and value formats (`k8s.io/apimachinery/pkg/util/validation`).
public enum NameValidation {
    static let subdomainMessage = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    static let labelMessage = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
    static let dns1035Message = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
    }

    public static func isDNS1123Label(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard !b.isEmpty, b.count <= 63, isLowerAlnum(b.first!), isLowerAlnum(b.last!) else { return false }
        return b.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    public static func isDNS1123Subdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy {
            let b = Array($0.utf8)
            guard !b.isEmpty, isLowerAlnum(b.first!), isLowerAlnum(b.last!) else { return false }
            return b.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    public static func isDNS1035Label(_ s: String) -> Bool {
        guard isDNS1123Label(s), let f = s.utf8.first else { return false }
        return f >= 0x61 && f <= 0x7a
    }

    /// IANA service name (a named port): 1-15 characters, lower case letters, digits and '-',
    /// at least one letter, no leading, trailing or double '-'.
    public static func isIANASvcName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard !b.isEmpty, b.count <= 15, b.first != UInt8(ascii: "-"), b.last != UInt8(ascii: "-"),
              !s.contains("--") else { return false }
        guard b.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") }) else { return false }
        return b.contains { $0 >= 0x61 && $0 <= 0x7a }
    }

    public static func isIPv4(_ s: String) -> Bool {
        var a = in_addr()
        return inet_pton(AF_INET, s, &a) == 1
    }

    public static func isIPv6(_ s: String) -> Bool {
        var a = in6_addr()
        return inet_pton(AF_INET6, s, &a) == 1
    }

    public static func isIP(_ s: String) -> Bool { isIPv4(s) || isIPv6(s) }

    /// Keys of Secret and ConfigMap data: `[-._a-zA-Z0-9]+`, at most 253 characters.
    public static func isConfigMapKey(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253, s != ".", s != ".." else { return false }
        return s.utf8.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39)
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }
}

/// Collects `FieldError`s with Kubernetes-style messages.
struct FieldErrors {
    var errors: [FieldError] = []

    mutating func required(_ field: String, _ detail: String? = nil) {
        errors.append(FieldError(field, detail.map { "required value: \($0)" } ?? "required value"))
    }

    mutating func invalid(_ field: String, _ value: String, _ detail: String) {
        errors.append(FieldError(field, "invalid value \(NameValidation.quoted(value)): \(detail)"))
    }

    mutating func invalid(_ field: String, _ value: Int, _ detail: String) {
        errors.append(FieldError(field, "invalid value \(value): \(detail)"))
    }

    mutating func unsupported(_ field: String, _ value: String, _ allowed: [String]) {
        let list: String
        if allowed.count <= 1 {
            list = allowed.first ?? ""
        } else {
            list = allowed.dropLast().joined(separator: ", ") + " or " + allowed.last!
        }
        errors.append(FieldError(field, "unsupported value \(NameValidation.quoted(value)): must be \(list)"))
    }

    mutating func duplicate(_ field: String, _ value: String) {
        errors.append(FieldError(field, "duplicate value \(NameValidation.quoted(value))"))
    }

    mutating func forbidden(_ field: String, _ detail: String) {
        errors.append(FieldError(field, "forbidden: \(detail)"))
    }

    mutating func port(_ field: String, _ value: Int) {
        if !(1...65535).contains(value) { invalid(field, value, "must be between 1 and 65535, inclusive") }
    }

    /// `metadata.name` (required, a DNS-1123 subdomain or, with `dns1035`, a DNS-1035 label)
    /// and `metadata.namespace` (a DNS-1123 label).
    mutating func metadata(_ meta: ObjectMeta, dns1035: Bool = false) {
        if let name = meta.name, !name.isEmpty {
            if dns1035 {
                if !NameValidation.isDNS1035Label(name) {
                    invalid("metadata.name", name, NameValidation.dns1035Message)
                }
            } else if !NameValidation.isDNS1123Subdomain(name) {
                invalid("metadata.name", name, NameValidation.subdomainMessage)
            }
        } else {
            required("metadata.name", "name or generateName is required")
        }
        if !NameValidation.isDNS1123Label(meta.namespace) {
            invalid("metadata.namespace", meta.namespace, NameValidation.labelMessage)
        }
    }

    /// A map of data keys; `base64` also checks that the values decode.
    mutating func dataKeys(_ field: String, _ map: [String: String]?, base64: Bool) {
        for (key, value) in (map ?? [:]).sorted(by: { $0.key < $1.key }) {
            if !NameValidation.isConfigMapKey(key) {
                invalid("\(field)[\(key)]", key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
            }
            if base64 && Data(base64Encoded: value) == nil {
                errors.append(FieldError("\(field)[\(key)]", "Invalid value: illegal base64 data"))
            }
        }
    }
}

extension Ingress {
    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata)
        guard let spec else {
            e.required("spec")
            return e.errors
        }
        if (spec.rules ?? []).isEmpty && spec.defaultBackend == nil {
            e.required("spec", "either `defaultBackend` or `rules` must be specified")
        }
        if let className = spec.ingressClassName, !NameValidation.isDNS1123Subdomain(className) {
            e.invalid("spec.ingressClassName", className, NameValidation.subdomainMessage)
        }
        if let b = spec.defaultBackend { Ingress.validate(backend: b, "spec.defaultBackend", &e) }
        for (i, tls) in (spec.tls ?? []).enumerated() {
            for (j, host) in (tls.hosts ?? []).enumerated() {
                Ingress.validate(host: host, "spec.tls[\(i)].hosts[\(j)]", &e)
            }
            if let s = tls.secretName, !s.isEmpty, !NameValidation.isDNS1123Subdomain(s) {
                e.invalid("spec.tls[\(i)].secretName", s, NameValidation.subdomainMessage)
            }
        }
        for (i, rule) in (spec.rules ?? []).enumerated() {
            let r = "spec.rules[\(i)]"
            if let host = rule.host, !host.isEmpty { Ingress.validate(host: host, "\(r).host", &e) }
            guard let http = rule.http else { continue }
            if http.paths.isEmpty { e.required("\(r).http.paths") }
            for (j, path) in http.paths.enumerated() {
                let p = "\(r).http.paths[\(j)]"
                if let typeText = path.pathType {
                    if let type = PathType(rawValue: typeText) {
                        if type != .implementationSpecific {
                            if let value = path.path, !value.isEmpty {
                                if !value.hasPrefix("/") { e.invalid("\(p).path", value, "must be an absolute path") }
                            } else {
                                e.required("\(p).path", "must be an absolute path for pathType \(typeText)")
                            }
                        } else if let value = path.path, !value.isEmpty, !value.hasPrefix("/") {
                            e.invalid("\(p).path", value, "must be an absolute path")
                        }
                    } else {
                        e.unsupported("\(p).pathType", typeText, PathType.allCases.map(\.rawValue))
                    }
                } else {
                    e.required("\(p).pathType", "must be Exact, Prefix or ImplementationSpecific")
                }
                Ingress.validate(backend: path.backend, "\(p).backend", &e)
            }
        }
        return e.errors
    }

    static func validate(host: String, _ field: String, _ e: inout FieldErrors) {
        if NameValidation.isIP(host) {
            e.invalid(field, host, "must be a DNS name, not an IP address")
            return
        }
        var rest = host
        if host.contains("*") {
            guard host.hasPrefix("*."), !host.dropFirst(2).contains("*") else {
                e.invalid(field, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character")
                return
            }
            rest = String(host.dropFirst(2))
        }
        if !NameValidation.isDNS1123Subdomain(rest) {
            e.invalid(field, host, NameValidation.subdomainMessage)
        }
    }

    static func validate(backend: Backend, _ field: String, _ e: inout FieldErrors) {
        switch (backend.service, backend.resource) {
        case (nil, nil):
            e.required(field, "one of `service` or `resource` must be specified")
        case (.some, .some):
            e.forbidden(field, "cannot set both `service` and `resource`")
        case (nil, .some):
            break
        case let (.some(service), nil):
            if let name = service.name, !name.isEmpty {
                if !NameValidation.isDNS1035Label(name) {
                    e.invalid("\(field).service.name", name, NameValidation.dns1035Message)
                }
            } else {
                e.required("\(field).service.name")
            }
            guard let port = service.port else {
                e.required("\(field).service.port", "one of `number` or `name` must be specified")
                return
            }
            switch (port.number, port.name) {
            case (nil, nil), (.some, .some):
                e.errors.append(FieldError("\(field).service.port", "exactly one of `number` or `name` must be specified"))
            case let (.some(n), nil):
                e.port("\(field).service.port.number", n)
            case let (nil, .some(n)):
                if !NameValidation.isIANASvcName(n) {
                    e.invalid("\(field).service.port.name", n, "must be a valid port name (IANA_SVC_NAME): at most 15 lower case alphanumeric characters or '-', with at least one letter")
                }
            }
        }
    }
}

extension Service {
    static let types = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
    static let protocols = ["TCP", "UDP", "SCTP"]

    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata, dns1035: true)
        guard let spec else {
            e.required("spec")
            return e.errors
        }
        let type = spec.type ?? "ClusterIP"
        if !Service.types.contains(type) { e.unsupported("spec.type", type, Service.types) }
        if let a = spec.sessionAffinity, a != "None", a != "ClientIP" {
            e.unsupported("spec.sessionAffinity", a, ["ClientIP", "None"])
        }
        if let ip = spec.clusterIP, !ip.isEmpty, ip != "None", !NameValidation.isIP(ip) {
            e.invalid("spec.clusterIP", ip, "must be empty, 'None', or a valid IP address")
        }
        let ports = spec.ports ?? []
        if ports.isEmpty && type != "ExternalName" && spec.clusterIP != "None" {
            e.required("spec.ports")
        }
        var names = Set<String>()
        for (i, port) in ports.enumerated() {
            let p = "spec.ports[\(i)]"
            if let name = port.name, !name.isEmpty {
                if !NameValidation.isDNS1123Label(name) { e.invalid("\(p).name", name, NameValidation.labelMessage) }
                if !names.insert(name).inserted { e.duplicate("\(p).name", name) }
            } else if ports.count > 1 {
                e.required("\(p).name", "every port of a multi-port Service must have a name")
            }
            e.port("\(p).port", port.port)
            if let proto = port.protocol, !Service.protocols.contains(proto) {
                e.unsupported("\(p).protocol", proto, Service.protocols)
            }
            switch port.targetPort {
            case .int(let n)?: e.port("\(p).targetPort", n)
            case .string(let s)?:
                if !NameValidation.isIANASvcName(s) {
                    e.invalid("\(p).targetPort", s, "must be a port number between 1 and 65535 or a valid port name (IANA_SVC_NAME)")
                }
            case nil: break
            }
            if let n = port.nodePort { e.port("\(p).nodePort", n) }
        }
        return e.errors
    }
}

extension Endpoints {
    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata)
        for (i, subset) in (subsets ?? []).enumerated() {
            let s = "subsets[\(i)]"
            for (j, a) in (subset.addresses ?? []).enumerated() where !NameValidation.isIP(a.ip) {
                e.invalid("\(s).addresses[\(j)].ip", a.ip, "must be a valid IP address")
            }
            for (j, a) in (subset.notReadyAddresses ?? []).enumerated() where !NameValidation.isIP(a.ip) {
                e.invalid("\(s).notReadyAddresses[\(j)].ip", a.ip, "must be a valid IP address")
            }
            let ports = subset.ports ?? []
            for (k, port) in ports.enumerated() {
                e.port("\(s).ports[\(k)].port", port.port)
                if ports.count > 1 && (port.name ?? "").isEmpty {
                    e.required("\(s).ports[\(k)].name", "every port of a multi-port subset must have a name")
                }
                if let proto = port.protocol, !Service.protocols.contains(proto) {
                    e.unsupported("\(s).ports[\(k)].protocol", proto, Service.protocols)
                }
            }
        }
        return e.errors
    }
}

extension EndpointSlice {
    static let addressTypes = ["IPv4", "IPv6", "FQDN"]

    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata)
        if !EndpointSlice.addressTypes.contains(addressType) {
            e.unsupported("addressType", addressType, EndpointSlice.addressTypes)
        }
        for (i, endpoint) in endpoints.enumerated() {
            if endpoint.addresses.isEmpty { e.required("endpoints[\(i)].addresses") }
            for (j, a) in endpoint.addresses.enumerated() {
                let field = "endpoints[\(i)].addresses[\(j)]"
                switch addressType {
                case "IPv4": if !NameValidation.isIPv4(a) { e.invalid(field, a, "must be a valid IPv4 address") }
                case "IPv6": if !NameValidation.isIPv6(a) { e.invalid(field, a, "must be a valid IPv6 address") }
                case "FQDN": if !NameValidation.isDNS1123Subdomain(a) { e.invalid(field, a, NameValidation.subdomainMessage) }
                default: break
                }
            }
        }
        for (k, port) in (ports ?? []).enumerated() {
            if let n = port.port { e.port("ports[\(k)].port", n) }
        }
        return e.errors
    }
}

extension Secret {
    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata)
        e.dataKeys("data", data, base64: true)
        // stringData is merged into data on write, so Kubernetes reports its keys as data[key].
        e.dataKeys("data", stringData, base64: false)
        if type == Secret.tlsType {
            let keys = Set((data ?? [:]).keys).union((stringData ?? [:]).keys)
            for key in ["tls.crt", "tls.key"] where !keys.contains(key) {
                e.required("data[\(key)]", "a kubernetes.io/tls Secret needs tls.crt and tls.key")
            }
        }
        return e.errors
    }
}

extension ConfigMap {
    public func validate() -> [FieldError] {
        var e = FieldErrors()
        e.metadata(metadata)
        e.dataKeys("data", data, base64: false)
        e.dataKeys("binaryData", binaryData, base64: true)
        for key in Set((data ?? [:]).keys).intersection((binaryData ?? [:]).keys).sorted() {
            e.duplicate("binaryData[\(key)]", key)
        }
        return e.errors
    }
}
