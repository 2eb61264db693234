/// Hand-built JSON for the admin `/routes` endpoint (the Dataplane module has no Foundation).
extension RouteTable {
    public func jsonDescription() -> String {
        var out = "{\"generation\":\(generation),\"ingresses\":["
        for (i, name) in ingresses.enumerated() {
            if i > 0 { out += "," }
            RouterJSON.appendString(name, to: &out)
        }
        out += "],\"backends\":["
        for (i, backend) in backends.enumerated() {
            if i > 0 { out += "," }
            out += "{\"index\":\(i),\"namespace\":"
            RouterJSON.appendString(backend.namespace, to: &out)
            out += ",\"service\":"
            RouterJSON.appendString(backend.service, to: &out)
            out += ",\"port\":"
            RouterJSON.appendString(backend.port, to: &out)
            out += ",\"policy\":"
            RouterJSON.appendString(backend.policy.rawValue, to: &out)
            out += ",\"affinity\":"
            switch backend.affinity {
            case .none: out += "null"
            case .clientIP: out += "{\"type\":\"ClientIP\"}"
            case let .cookie(name, maxAge):
                out += "{\"type\":\"cookie\",\"name\":"
                RouterJSON.appendString(name, to: &out)
                out += ",\"maxAgeSeconds\":\(maxAge)}"
            }
            out += ",\"endpoints\":["
            for (j, endpoint) in backend.endpoints.enumerated() {
                if j > 0 { out += "," }
                out += "{\"address\":"
                RouterJSON.appendString(endpoint.address.description, to: &out)
                out += ",\"weight\":\(endpoint.weight),\"name\":"
                RouterJSON.appendString(endpoint.name, to: &out)
                out += "}"
            }
            out += "]}"
        }
        out += "],\"rules\":["
        for (i, rule) in rules.enumerated() {
            if i > 0 { out += "," }
            RouterJSON.appendRule(rule, to: &out)
        }
        out += "],\"shadowedRules\":["
        for (i, rule) in shadowedRules.enumerated() {
            if i > 0 { out += "," }
            RouterJSON.appendRule(rule, to: &out)
        }
        out += "],\"defaultBackend\":"
        if defaultMatch.isFound {
            out += "{\"backend\":\(defaultMatch.backend),\"ingress\":\(defaultMatch.ingress)}"
        } else {
            out += "null"
        }
        out += "}"
        return out
    }
}

enum RouterJSON {
    static func appendRule(_ rule: RouteRule, to out: inout String) {
        out += "{\"host\":"
        if let host = rule.host { appendString(host, to: &out) } else { out += "null" }
        out += ",\"path\":"
        appendString(rule.path, to: &out)
        out += ",\"pathType\":\"\(rule.pathType.rawValue)\",\"backend\":\(rule.match.backend),\"ingress\":\(rule.match.ingress)}"
    }

    /// Appends `s` as a JSON string literal (RFC 8259 escaping).
    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = Array("0123456789abcdef")
                    out += "\\u00"
                    out.append(hex[Int(scalar.value >> 4)])
                    out.append(hex[Int(scalar.value & 0xf)])
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
