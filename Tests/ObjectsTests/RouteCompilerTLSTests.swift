import Dataplane
import Foundation
import Objects
import RouteCompiler
import TLS
import XCTest

/// `spec.tls`, the redirect/HSTS annotations and upstream TLS, compiled into the RouteTable.
final class RouteCompilerTLSTests: XCTestCase {
    /// `extra`: objects the manifest loader would refuse (the API or a watch can still hand them over).
    private func compile(_ yaml: String, extra: [KubeObject] = [], file: StaticString = #filePath, line: UInt = #line) -> (RouteTable, [String]) {
        let loaded = ManifestLoader.load(yaml: yaml, file: "test.yaml")
        XCTAssertEqual(loaded.problems, [], file: file, line: line)
        let r = RouteCompiler.compile(loaded.kubeObjects + extra, options: CompileOptions(generation: 1))
        return (r.table, r.problems.map(\.description))
    }

    static let service = """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {ports: [{port: 80, targetPort: 8080}]}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: web}
        subsets: [{addresses: [{ip: 127.0.2.1}], ports: [{port: 8080}]}]
        """

    /// base64 of "CERT" and "KEY".
    static let secrets = """
        apiVersion: v1
        kind: Secret
        metadata: {name: shop-tls}
        type: kubernetes.io/tls
        data: {tls.crt: Q0VSVA==, tls.key: S0VZ}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: apps-tls}
        type: kubernetes.io/tls
        stringData: {tls.crt: APPSCERT, tls.key: APPSKEY}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: opaque}
        type: Opaque
        stringData: {tls.crt: X, tls.key: Y}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: upstream-ca}
        stringData: {ca.crt: CA}
        """

    private func ingress(name: String = "web", annotations: String = "{}", tls: String, hosts: [String] = ["shop.example.test"]) -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: \(name)
          annotations: \(annotations)
        spec:
          tls: \(tls)
          rules:
        \(hosts.map { "  - host: \"\($0)\"\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}" }.joined(separator: "\n"))
        """
    }

    private func all(_ parts: String...) -> String { parts.joined(separator: "\n---\n") }

    func testTLSSecretsBecomeCertificateSources() {
        let (t, problems) = compile(all(Self.service, Self.secrets, ingress(
            tls: "[{hosts: [shop.example.test], secretName: shop-tls}, {hosts: ['*.apps.example.test'], secretName: apps-tls}]",
            hosts: ["shop.example.test", "*.apps.example.test"])))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.certificates, [
            CertificateSource(name: "default/shop-tls", hosts: ["shop.example.test"], certPEM: Array("CERT".utf8), keyPEM: Array("KEY".utf8)),
            CertificateSource(name: "default/apps-tls", hosts: ["*.apps.example.test"], certPEM: Array("APPSCERT".utf8), keyPEM: Array("APPSKEY".utf8)),
        ])
    }

    func testSameSecretFromTwoIngressesMergesHosts() {
        let (t, problems) = compile(all(Self.service, Self.secrets,
            ingress(name: "a", tls: "[{hosts: [a.example.test], secretName: shop-tls}]", hosts: ["a.example.test"]),
            ingress(name: "b", tls: "[{hosts: [b.example.test, a.example.test], secretName: shop-tls}]", hosts: ["b.example.test"])))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.certificates.map(\.hosts), [["a.example.test", "b.example.test"]])
    }

    func testEntryWithoutHostsUsesRuleHosts() {
        let (t, _) = compile(all(Self.service, Self.secrets, ingress(tls: "[{secretName: shop-tls}]", hosts: ["x.example.test", "y.example.test"])))
        XCTAssertEqual(t.certificates.first?.hosts, ["x.example.test", "y.example.test"])
        XCTAssertTrue(t.tlsPolicy(host: "y.example.test").redirectToHTTPS)
    }

    func testMissingSecret() {
        let (t, problems) = compile(all(Self.service, Self.secrets, ingress(tls: "[{hosts: [shop.example.test], secretName: nope}]")))
        XCTAssertEqual(problems, ["Ingress default/web: spec.tls[0].secretName: Secret default/nope not found; its hosts get the default certificate"])
        XCTAssertEqual(t.certificates, [])
        XCTAssertTrue(t.tlsPolicy(host: "shop.example.test").redirectToHTTPS, "still a TLS host: plain HTTP is redirected")
    }

    func testWrongSecretType() {
        let (_, problems) = compile(all(Self.service, Self.secrets, ingress(tls: "[{hosts: [shop.example.test], secretName: opaque}]")))
        XCTAssertEqual(problems, ["Ingress default/web: spec.tls[0].secretName: Secret default/opaque has type Opaque, not kubernetes.io/tls; its hosts get the default certificate"])
    }

    func testSecretMissingKey() {
        let half = Secret(metadata: ObjectMeta(name: "half"), type: Secret.tlsType, stringData: ["tls.crt": "X"])
        let (_, problems) = compile(all(Self.service, Self.secrets, ingress(tls: "[{hosts: [shop.example.test], secretName: half}]")),
                                    extra: [.secret(half)])
        XCTAssertEqual(problems, ["Ingress default/web: spec.tls[0].secretName: Secret default/half has no tls.key; its hosts get the default certificate"])
    }

    func testSecretInAnotherNamespaceIsNotUsed() {
        let other = """
            apiVersion: v1
            kind: Secret
            metadata: {name: elsewhere, namespace: other}
            type: kubernetes.io/tls
            stringData: {tls.crt: X, tls.key: Y}
            """
        let (t, problems) = compile(all(Self.service, other, ingress(tls: "[{hosts: [shop.example.test], secretName: elsewhere}]")))
        XCTAssertEqual(t.certificates, [])
        XCTAssertEqual(problems.count, 1)
    }

    func testRedirectByDefaultAndNotForOtherHosts() {
        let (t, _) = compile(all(Self.service, Self.secrets, ingress(tls: "[{hosts: [shop.example.test], secretName: shop-tls}]",
                                                                    hosts: ["shop.example.test", "plain.example.test"])))
        XCTAssertEqual(t.tlsPolicy(host: "SHOP.example.test:8080"), HostTLSPolicy(redirectToHTTPS: true))
        XCTAssertEqual(t.tlsPolicy(host: "shop.example.test."), HostTLSPolicy(redirectToHTTPS: true))
        XCTAssertEqual(t.tlsPolicy(host: "plain.example.test"), .none)
        XCTAssertEqual(t.tlsPolicy(host: ""), .none)
        XCTAssertEqual(t.tlsPolicy(host: "[::1]:80"), .none)
    }

    func testWildcardTLSHostCoversOneLabel() {
        let (t, _) = compile(all(Self.service, Self.secrets, ingress(tls: "[{hosts: ['*.apps.example.test'], secretName: apps-tls}]",
                                                                    hosts: ["*.apps.example.test"])))
        XCTAssertTrue(t.tlsPolicy(host: "shop.apps.example.test").redirectToHTTPS)
        XCTAssertFalse(t.tlsPolicy(host: "a.b.apps.example.test").redirectToHTTPS)
        XCTAssertFalse(t.tlsPolicy(host: "apps.example.test").redirectToHTTPS)
    }

    func testSSLRedirectOffAndHSTS() {
        let annotations = "{portico.io/ssl-redirect: \"false\", portico.io/hsts: \"true\", portico.io/hsts-include-subdomains: \"true\"}"
        let (t, problems) = compile(all(Self.service, Self.secrets, ingress(annotations: annotations, tls: "[{hosts: [shop.example.test], secretName: shop-tls}]")))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.tlsPolicy(host: "shop.example.test"),
                       HostTLSPolicy(redirectToHTTPS: false, hstsMaxAge: 31_536_000, hstsIncludeSubdomains: true))
    }

    func testHSTSMaxAgeAndBadValues() {
        let good = "{portico.io/hsts: \"true\", portico.io/hsts-max-age: \"600\"}"
        let (t, _) = compile(all(Self.service, Self.secrets, ingress(annotations: good, tls: "[{hosts: [shop.example.test], secretName: shop-tls}]")))
        XCTAssertEqual(t.tlsPolicy(host: "shop.example.test").hstsMaxAge, 600)
        let bad = "{portico.io/hsts: \"yes\", portico.io/ssl-redirect: \"maybe\"}"
        let (t2, problems) = compile(all(Self.service, Self.secrets, ingress(annotations: bad, tls: "[{hosts: [shop.example.test], secretName: shop-tls}]")))
        XCTAssertEqual(problems, [
            "Ingress default/web: metadata.annotations[portico.io/ssl-redirect]: invalid value \"maybe\": must be \"true\" or \"false\"; using true",
            "Ingress default/web: metadata.annotations[portico.io/hsts]: invalid value \"yes\": must be \"true\" or \"false\"; using false",
        ])
        XCTAssertEqual(t2.tlsPolicy(host: "shop.example.test"), HostTLSPolicy(redirectToHTTPS: true))
    }

    func testUpstreamTLSDefaultsOff() {
        let (t, _) = compile(all(Self.service, ingress(tls: "[]")))
        XCTAssertNil(t.backends.first?.upstreamTLS)
    }

    func testUpstreamTLSByAnnotation() {
        let annotations = "{portico.io/backend-protocol: HTTPS, portico.io/proxy-ssl-secret: upstream-ca, portico.io/proxy-ssl-name: web.internal}"
        let (t, problems) = compile(all(Self.service, Self.secrets, ingress(annotations: annotations, tls: "[]")))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.backends.first?.upstreamTLS, UpstreamTLS(verify: true, caPEM: Array("CA".utf8),
                                                                   caSource: "Secret default/upstream-ca ca.crt", serverName: "web.internal"))
    }

    func testUpstreamTLSVerifyOff() {
        let annotations = "{portico.io/backend-protocol: https, portico.io/proxy-ssl-verify: \"false\"}"
        let (t, _) = compile(all(Self.service, ingress(annotations: annotations, tls: "[]")))
        XCTAssertEqual(t.backends.first?.upstreamTLS, UpstreamTLS(verify: false, caPEM: nil, serverName: nil))
    }

    func testUpstreamTLSProblems() {
        let annotations = "{portico.io/backend-protocol: GRPC}"
        let (t, problems) = compile(all(Self.service, ingress(annotations: annotations, tls: "[]")))
        XCTAssertNil(t.backends.first?.upstreamTLS)
        XCTAssertEqual(problems, ["Ingress default/web: metadata.annotations[portico.io/backend-protocol]: unsupported value \"GRPC\": must be HTTP or HTTPS; using HTTP"])
        let missing = "{portico.io/backend-protocol: HTTPS, portico.io/proxy-ssl-secret: nope}"
        let (t2, problems2) = compile(all(Self.service, ingress(annotations: missing, tls: "[]")))
        XCTAssertEqual(t2.backends.first?.upstreamTLS, UpstreamTLS(verify: true))
        XCTAssertEqual(problems2, ["Ingress default/web: metadata.annotations[portico.io/proxy-ssl-secret]: Secret default/nope not found; pod certificates are verified against the system CA store"])
    }

    /// Two Ingresses on the same Service port, one over HTTPS: two backends.
    func testUpstreamTLSSeparatesBackends() {
        let plain = ingress(name: "a", tls: "[]", hosts: ["a.example.test"])
        let secure = ingress(name: "b", annotations: "{portico.io/backend-protocol: HTTPS}", tls: "[]", hosts: ["b.example.test"])
        let (t, _) = compile(all(Self.service, plain, secure))
        XCTAssertEqual(t.backends.count, 2)
        XCTAssertEqual(t.backends.map { $0.upstreamTLS == nil }, [true, false])
    }
}

/// certs/make-dev-certs.sh → Secret manifests → RouteCompiler → TLSServerContext, end to end.
final class DevCertificatesTests: XCTestCase {
    func testDevCertificateSecretsLoadCompileAndServe() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("portico-dev-certs-\(getpid())")
        try? FileManager.default.removeItem(at: temp)
        defer { try? FileManager.default.removeItem(at: temp) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [root.appendingPathComponent("certs/make-dev-certs.sh").path]
        var env = ProcessInfo.processInfo.environment
        env["PORTICO_CERTS_OUT"] = temp.appendingPathComponent("out").path
        env["PORTICO_SECRETS_OUT"] = temp.appendingPathComponent("tls").path
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)

        var yaml = ""
        for name in ["demo", "apps", "api"] {
            yaml += try String(contentsOf: temp.appendingPathComponent("tls/\(name)-tls.yaml"), encoding: .utf8) + "\n---\n"
        }
        yaml += """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: demo}
            spec:
              tls:
              - {hosts: [demo.localhost], secretName: demo-tls}
              - {hosts: ['*.apps.localhost'], secretName: apps-tls}
              - {hosts: [api.localhost], secretName: api-tls}
              defaultBackend: {service: {name: web, port: {number: 80}}}
            """
        let loaded = ManifestLoader.load(yaml: yaml, file: "dev.yaml")
        XCTAssertEqual(loaded.problems, [])
        let compiled = RouteCompiler.compile(loaded.kubeObjects, options: CompileOptions(generation: 1))
        XCTAssertEqual(compiled.table.certificates.map(\.name), ["default/demo-tls", "default/apps-tls", "default/api-tls"])
        let server = try TLSServerContext(defaultCertificate: nil, warn: { _ in })
        XCTAssertEqual(server.update(compiled.table.certificates), [])
        XCTAssertEqual(server.subject(forServerName: "demo.localhost"), "demo.localhost")
        XCTAssertEqual(server.subject(forServerName: "shop.apps.localhost"), "*.apps.localhost")
        XCTAssertEqual(server.subject(forServerName: "api.localhost"), "api.localhost")
        XCTAssertEqual(server.subject(forServerName: "other.localhost"), "portico default certificate")
    }
}
