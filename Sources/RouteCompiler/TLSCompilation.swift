import Dataplane
import Foundation
import Objects
import TLS

/// `spec.tls` (certificates from `kubernetes.io/tls` Secrets, redirect and HSTS per host) and
/// the upstream TLS annotations.
extension Compilation {
    /// Adds the Ingress's TLS hosts with their policy and the certificates of the Secrets they
    /// name. A Secret that is missing or unusable is reported; its hosts still redirect to
    /// https and are served the default certificate (what ingress-nginx does).
    mutating func compileTLS(_ ingress: Ingress, object: String) {
        guard let entries = ingress.spec?.tls, !entries.isEmpty else { return }
        let namespace = ingress.metadata.namespace
        let policy = tlsPolicy(ingress, object: object)
        // Kubernetes leaves an entry without hosts to the controller: use the Ingress's rule hosts.
        let ruleHosts = (ingress.spec?.rules ?? []).compactMap { ($0.host?.isEmpty ?? true) ? nil : $0.host }
        for (i, entry) in entries.enumerated() {
            let hosts = (entry.hosts ?? []).filter { !$0.isEmpty }
            let effectiveHosts = hosts.isEmpty ? ruleHosts : hosts
            for host in effectiveHosts { tlsHosts.append(HostTLSRule(host: host, policy: policy)) }
            guard let secretName = entry.secretName, !secretName.isEmpty else { continue }
            let field = "spec.tls[\(i)].secretName"
            let key = "\(namespace)/\(secretName)"
            if let existing = certificateIndex[key] {
                for host in effectiveHosts where !certificates[existing].hosts.contains(host) {
                    certificates[existing].hosts.append(host)
                }
                continue
            }
            guard let pem = tlsSecretPEM(key, object: object, field: field) else { continue }
            certificateIndex[key] = certificates.count
            certificates.append(CertificateSource(name: key, hosts: effectiveHosts, certPEM: pem.cert, keyPEM: pem.key))
        }
    }

    /// tls.crt and tls.key of a `kubernetes.io/tls` Secret, or nil with a problem.
    private mutating func tlsSecretPEM(_ key: String, object: String, field: String) -> (cert: [UInt8], key: [UInt8])? {
        let fallback = "its hosts get the default certificate"
        guard let secret = secrets[key] else {
            problems.append(CompileProblem(object: object, field: field, message: "Secret \(key) not found; \(fallback)"))
            return nil
        }
        guard secret.type == Secret.tlsType else {
            problems.append(CompileProblem(object: object, field: field,
                message: "Secret \(key) has type \(secret.type ?? "Opaque"), not \(Secret.tlsType); \(fallback)"))
            return nil
        }
        let data = secret.decodedData
        var missing: [String] = []
        for name in ["tls.crt", "tls.key"] where (data[name]?.isEmpty ?? true) {
            missing.append(secret.data?[name] != nil && data[name] == nil ? "\(name) (not valid base64)" : name)
        }
        if !missing.isEmpty {
            problems.append(CompileProblem(object: object, field: field,
                message: "Secret \(key) has no \(missing.joined(separator: " and ")); \(fallback)"))
            return nil
        }
        return (Array(data["tls.crt"]!), Array(data["tls.key"]!))
    }

    /// `portico.io/ssl-redirect` (default true), `portico.io/hsts`, `-max-age`, `-include-subdomains`.
    private mutating func tlsPolicy(_ ingress: Ingress, object: String) -> HostTLSPolicy {
        let a = ingress.metadata.annotations ?? [:]
        var policy = HostTLSPolicy(redirectToHTTPS: true)
        policy.redirectToHTTPS = bool(a, RouteCompiler.sslRedirectAnnotation, default: true, object: object)
        if bool(a, RouteCompiler.hstsAnnotation, default: false, object: object) {
            var maxAge = RouteCompiler.defaultHSTSMaxAge
            if let text = a[RouteCompiler.hstsMaxAgeAnnotation] {
                if let v = Int(text.trimmingCharacters(in: .whitespaces)), v >= 0 {
                    maxAge = v
                } else {
                    problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.hstsMaxAgeAnnotation)]",
                        message: "invalid value \"\(text)\": must be a whole number of seconds >= 0; using \(RouteCompiler.defaultHSTSMaxAge)"))
                }
            }
            policy.hstsMaxAge = maxAge
            policy.hstsIncludeSubdomains = bool(a, RouteCompiler.hstsIncludeSubdomainsAnnotation, default: false, object: object)
        }
        return policy
    }

    /// `portico.io/backend-protocol: HTTPS` and the proxy-ssl annotations; nil for plain HTTP.
    mutating func upstreamTLSAnnotations(_ ingress: Ingress, object: String) -> UpstreamTLS? {
        let a = ingress.metadata.annotations ?? [:]
        guard let text = a[RouteCompiler.backendProtocolAnnotation] else { return nil }
        switch text.trimmingCharacters(in: .whitespaces).uppercased() {
        case "HTTPS": break
        case "HTTP", "": return nil
        default:
            problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.backendProtocolAnnotation)]",
                message: "unsupported value \"\(text)\": must be HTTP or HTTPS; using HTTP"))
            return nil
        }
        var tls = UpstreamTLS()
        tls.verify = bool(a, RouteCompiler.proxySSLVerifyAnnotation, default: true, object: object)
        if let name = a[RouteCompiler.proxySSLNameAnnotation]?.trimmingCharacters(in: .whitespaces), !name.isEmpty {
            tls.serverName = name
        }
        if let ref = a[RouteCompiler.proxySSLSecretAnnotation]?.trimmingCharacters(in: .whitespaces), !ref.isEmpty {
            let field = "metadata.annotations[\(RouteCompiler.proxySSLSecretAnnotation)]"
            let namespace = ingress.metadata.namespace
            let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
            let key: String?
            switch parts.count {
            case 1: key = "\(namespace)/\(ref)"
            case 2 where parts[0] == Substring(namespace) && !parts[1].isEmpty: key = ref
            default: key = nil
            }
            if let key {
                if let secret = secrets[key] {
                    if let ca = secret.decodedData["ca.crt"], !ca.isEmpty {
                        tls.caPEM = Array(ca)
                        tls.caSource = "Secret \(key) ca.crt"
                    } else {
                        problems.append(CompileProblem(object: object, field: field,
                            message: "Secret \(key) has no ca.crt; pod certificates are verified against the system CA store"))
                    }
                } else {
                    problems.append(CompileProblem(object: object, field: field,
                        message: "Secret \(key) not found; pod certificates are verified against the system CA store"))
                }
            } else {
                problems.append(CompileProblem(object: object, field: field,
                    message: "invalid value \"\(ref)\": must name a Secret in namespace \(namespace); pod certificates are verified against the system CA store"))
            }
        }
        return tls
    }

    /// A "true"/"false" annotation (any case); anything else is reported and gives `default`.
    private mutating func bool(_ annotations: [String: String], _ name: String, default value: Bool, object: String) -> Bool {
        guard let text = annotations[name] else { return value }
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": return true
        case "false": return false
        default:
            problems.append(CompileProblem(object: object, field: "metadata.annotations[\(name)]",
                message: "invalid value \"\(text)\": must be \"true\" or \"false\"; using \(value)"))
            return value
        }
    }
}
