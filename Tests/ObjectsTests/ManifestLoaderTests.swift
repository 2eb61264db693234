import Foundation
import XCTest
@testable import Objects

final class ManifestLoaderTests: XCTestCase {
    private var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-loader-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    @discardableResult
    private func write(_ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func load(_ yaml: String, file: String = "app.yaml") -> ManifestLoadResult {
        ManifestLoader.load(yaml: yaml, file: file)
    }

    private func ingress(path: String = "/", pathType: String = "Prefix", host: String = "web.example.com",
                         backend: String = "{service: {name: web, port: {number: 80}}}") -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: web
        spec:
          rules:
          - host: \(host)
            http:
              paths:
              - path: \(path)
                pathType: \(pathType)
                backend: \(backend)
        """
    }

    private func onlyProblem(_ r: ManifestLoadResult, file: StaticString = #filePath, line: UInt = #line) -> ManifestProblem? {
        XCTAssertEqual(r.problems.count, 1, "\(r.problems)", file: file, line: line)
        return r.problems.first
    }

    // MARK: Documents

    static let service = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: shop
          labels: {app: web}
        spec:
          selector: {app: web}
          ports:
          - name: http
            port: 80
            targetPort: http
        """

    func testMultiDocumentYAML() {
        let r = load("---\n" + Self.service + "\n---\n" + ingress() + "\n---\n")
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.objects.map(\.object.kind), ["Service", "Ingress"])
        XCTAssertEqual(r.objects.map(\.document), [1, 2])
        guard case .service(let s) = r.objects[0].object else { return XCTFail() }
        XCTAssertEqual(s.metadata.namespace, "shop")
        XCTAssertEqual(s.spec?.ports?.first?.targetPort, .string("http"))
        guard case .ingress(let i) = r.objects[1].object else { return XCTFail() }
        XCTAssertEqual(i.metadata.namespace, "default")
        XCTAssertEqual(i.spec?.rules?.first?.http?.paths.first?.type, .prefix)
        XCTAssertEqual(i.spec?.rules?.first?.http?.paths.first?.backend.service?.port?.number, 80)
    }

    func testList() {
        let yaml = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: one}
              data: {a: "1"}
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: two}
              bogus: 1
            """
        let r = load(yaml)
        XCTAssertEqual(r.objects.count, 1)
        XCTAssertEqual(r.objects.first?.item, 0)
        XCTAssertEqual(r.objects.first?.object.name, "one")
        XCTAssertEqual(onlyProblem(r)?.description, "app.yaml (document 1, ConfigMap default/two): items[1].bogus: unknown field \"bogus\"")
    }

    func testDirectoryIsReadSortedAndFiltersExtensions() throws {
        try write("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
        try write("a.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
        try write("c.json", #"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}"#)
        try write("notes.txt", "not a manifest")
        let r = ManifestLoader.load(paths: [dir])
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.objects.map(\.object.name), ["a", "b", "c"])
        XCTAssertEqual(r.objects.first?.file, dir + "/a.yml")
    }

    func testSingleFileAndMissingPath() throws {
        let f = try write("one.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        let r = ManifestLoader.load(paths: [f, dir + "/missing.yaml"])
        XCTAssertEqual(r.objects.count, 1)
        XCTAssertEqual(onlyProblem(r)?.description, dir + "/missing.yaml: no such file or directory")
    }

    func testAliasBombIsAProblemNotAHang() {
        // "Billion laughs": each level lists ten aliases of the one before, so a few hundred bytes
        // expand to millions of nodes when the document is decoded (seen while fuzzing the loader:
        // 9 levels, 490 bytes, did not finish in 20 s). Refused once it expands past the budget.
        var lines = ["apiVersion: example.com/v1", "kind: Widget", "metadata: {name: w}", "l0: &l0 [x,x,x,x,x,x,x,x,x,x]"]
        for i in 1...5 { lines.append("l\(i): &l\(i) [" + Array(repeating: "*l\(i - 1)", count: 10).joined(separator: ",") + "]") }
        let started = Date()
        let r = ManifestLoader.load(yaml: lines.joined(separator: "\n") + "\n", file: "bomb.yaml")
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "bounded work")
        XCTAssertTrue(r.objects.isEmpty)
        XCTAssertEqual(r.problems.count, 1)
        XCTAssertEqual(r.problems.first?.document, 1)
        XCTAssertTrue(r.problems.first?.message.contains("aliases") ?? false, "\(r.problems)")
    }

    func testAliasesWithinTheBudgetStillWork() {
        let r = ManifestLoader.load(yaml: """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: m
              labels: &l {app: web, tier: front}
              annotations: *l
            data: {a: "1"}
            """, file: "ok.yaml")
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.objects.count, 1)
    }

    func testUnknownKindIsLoadedAsUnknown() {
        let r = load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n")
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.objects.first?.object, .unknown(apiVersion: "apps/v1", kind: "Deployment", name: "web"))
    }

    func testOldApiVersionOfKnownKindIsAProblem() {
        let r = load("apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: web}\n")
        XCTAssertEqual(onlyProblem(r)?.description,
                       "app.yaml (document 1, Ingress default/web): apiVersion: unsupported value \"networking.k8s.io/v1beta1\" for kind Ingress: must be networking.k8s.io/v1")
    }

    // MARK: Errors

    func testUnsupportedPathType() {
        let yaml = Self.service + "\n---\n" + """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: web
            spec:
              rules:
              - http:
                  paths:
                  - path: /
                    pathType: Prefix
                    backend: {service: {name: web, port: {number: 80}}}
                  - path: /x
                    pathType: Foo
                    backend: {service: {name: web, port: {number: 80}}}
            """
        let r = load(yaml, file: "configs/demo/app.yaml")
        XCTAssertEqual(onlyProblem(r)?.description,
                       "configs/demo/app.yaml (document 2, Ingress default/web): spec.rules[0].http.paths[1].pathType: unsupported value \"Foo\": must be Exact, Prefix or ImplementationSpecific")
        let p = r.problems[0]
        XCTAssertEqual(p.file, "configs/demo/app.yaml")
        XCTAssertEqual(p.document, 2)
        XCTAssertEqual(p.kind, "Ingress")
        XCTAssertEqual(p.name, "web")
        XCTAssertEqual(p.field, "spec.rules[0].http.paths[1].pathType")
        XCTAssertEqual(r.objects.count, 1)   // the Service
    }

    func testMissingPathType() {
        let yaml = ingress().replacingOccurrences(of: "        pathType: Prefix\n", with: "")
        XCTAssertEqual(onlyProblem(load(yaml))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].http.paths[0].pathType: required value: must be Exact, Prefix or ImplementationSpecific")
    }

    func testRelativePath() {
        XCTAssertEqual(onlyProblem(load(ingress(path: "api", pathType: "Exact")))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].http.paths[0].path: invalid value \"api\": must be an absolute path")
    }

    func testMissingName() {
        let r = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
        XCTAssertEqual(onlyProblem(r)?.description,
                       "app.yaml (document 1, ConfigMap): metadata.name: required value: name or generateName is required")
    }

    func testInvalidName() {
        let r = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Web_1}\n")
        XCTAssertEqual(onlyProblem(r)?.field, "metadata.name")
        XCTAssertTrue(onlyProblem(r)?.message.hasPrefix("invalid value \"Web_1\": a lowercase RFC 1123 subdomain") ?? false)
    }

    func testServiceNameMustBeDNS1035Label() {
        let r = load(Self.service.replacingOccurrences(of: "name: web\n", with: "name: 1web\n"))
        XCTAssertEqual(onlyProblem(r)?.field, "metadata.name")
        XCTAssertTrue(onlyProblem(r)?.message.contains("DNS-1035 label") ?? false)
        // A dotted name is a valid subdomain but not a Service name.
        let dotted = load(Self.service.replacingOccurrences(of: "name: web\n", with: "name: web.v1\n"))
        XCTAssertEqual(onlyProblem(dotted)?.field, "metadata.name")
    }

    func testHostMustNotBeAnIP() {
        XCTAssertEqual(onlyProblem(load(ingress(host: "10.0.0.1")))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].host: invalid value \"10.0.0.1\": must be a DNS name, not an IP address")
    }

    func testWildcardOnlyAsFirstLabel() {
        XCTAssertEqual(load(ingress(host: "\"*.example.com\"")).problems, [])
        let r = load(ingress(host: "foo.*.example.com"))
        XCTAssertEqual(onlyProblem(r)?.field, "spec.rules[0].host")
        XCTAssertTrue(onlyProblem(r)?.message.contains("must start with '*.'") ?? false)
        XCTAssertEqual(onlyProblem(load(ingress(host: "\"*foo.example.com\"")))?.field, "spec.rules[0].host")
        XCTAssertEqual(onlyProblem(load(ingress(host: "Web.Example.com")))?.field, "spec.rules[0].host")
    }

    func testBackendNeedsExactlyOnePort() {
        let both = ingress(backend: "{service: {name: web, port: {number: 80, name: http}}}")
        XCTAssertEqual(onlyProblem(load(both))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].http.paths[0].backend.service.port: exactly one of `number` or `name` must be specified")
        let none = ingress(backend: "{service: {name: web, port: {}}}")
        XCTAssertEqual(onlyProblem(load(none))?.field, "spec.rules[0].http.paths[0].backend.service.port")
        let noName = ingress(backend: "{service: {port: {number: 80}}}")
        XCTAssertEqual(onlyProblem(load(noName))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].http.paths[0].backend.service.name: required value")
    }

    func testPortRange() {
        XCTAssertEqual(onlyProblem(load(ingress(backend: "{service: {name: web, port: {number: 70000}}}")))?.description,
                       "app.yaml (document 1, Ingress default/web): spec.rules[0].http.paths[0].backend.service.port.number: invalid value 70000: must be between 1 and 65535, inclusive")
        let svc = load(Self.service.replacingOccurrences(of: "port: 80", with: "port: 0"))
        XCTAssertEqual(onlyProblem(svc)?.field, "spec.ports[0].port")
    }

    func testEndpointsIPsMustBeValid() {
        let yaml = """
            apiVersion: v1
            kind: Endpoints
            metadata: {name: web}
            subsets:
            - addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.300}]
              ports: [{port: 8080}]
            """
        XCTAssertEqual(onlyProblem(load(yaml))?.description,
                       "app.yaml (document 1, Endpoints default/web): subsets[0].addresses[1].ip: invalid value \"10.0.0.300\": must be a valid IP address")
    }

    func testDocumentWithoutApiVersionOrKind() {
        let r = load("metadata: {name: x}\n---\napiVersion: v1\nmetadata: {name: y}\n")
        XCTAssertEqual(r.problems.map(\.description), [
            "app.yaml (document 1): apiVersion: required value: every object needs apiVersion and kind",
            "app.yaml (document 1): kind: required value: every object needs apiVersion and kind",
            "app.yaml (document 2): kind: required value: every object needs apiVersion and kind",
        ])
    }

    func testDocumentThatIsNotAMapping() {
        XCTAssertEqual(onlyProblem(load("- a\n- b\n"))?.description,
                       "app.yaml (document 1): a document must be a mapping with apiVersion and kind, not a list")
    }

    func testYAMLSyntaxErrorHasLineNumber() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"
        let r = load(yaml)
        XCTAssertEqual(r.objects.count, 1)
        let p = onlyProblem(r)
        XCTAssertEqual(p?.document, 2)
        XCTAssertNotNil(p?.line)
        XCTAssertTrue(p?.description.hasPrefix("app.yaml (document 2): line \(p?.line ?? 0), column") ?? false, p?.description ?? "")
        XCTAssertTrue(p?.message.hasPrefix("YAML syntax error: ") ?? false)

        let tab = load("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n   bad: : x\n")
        XCTAssertEqual(tab.problems.first?.line, 5)
    }

    func testTypeMismatchNamesTheField() {
        let yaml = Self.service.replacingOccurrences(of: "port: 80", with: "port: eighty")
        XCTAssertEqual(onlyProblem(load(yaml))?.description,
                       "app.yaml (document 1, Service shop/web): spec.ports[0].port: invalid type: expected an integer")
    }

    func testUnknownFieldsAreReported() {
        let yaml = ingress(backend: "{serviceName: web, servicePort: 80}")
        let r = load(yaml)
        XCTAssertEqual(r.problems.map { "\($0.field): \($0.message)" }, [
            "spec.rules[0].http.paths[0].backend.serviceName: unknown field \"serviceName\"",
            "spec.rules[0].http.paths[0].backend.servicePort: unknown field \"servicePort\"",
            "spec.rules[0].http.paths[0].backend: required value: one of `service` or `resource` must be specified",
        ])
        let top = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, lables: {x: y}}\ndata: {a: b}\nspec: {}\n")
        XCTAssertEqual(top.problems.map(\.field), ["metadata.lables", "spec"])
    }

    func testAnchorsAliasesAndMergeKeys() {
        let yaml = """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: a
              labels: &labels {app: x}
            data:
              <<: *labels
              b: c
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: b, labels: *labels}
            data:
              <<: [{x: "1"}, {bogus: {deep: 1}}]
            """
        let r = load(yaml)
        XCTAssertEqual(r.objects.count, 1, "\(r.problems)")
        guard case .configMap(let c)? = r.objects.first?.object else { return XCTFail() }
        XCTAssertEqual(c.data, ["app": "x", "b": "c"])
        XCTAssertEqual(r.problems.map(\.field), ["data.bogus"])
    }

    func testNullFieldsAreNotUnknown() {
        XCTAssertEqual(load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: null}\ndata:\n").problems, [])
    }

    func testSecretBase64AndTLSKeys() {
        let bad = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata: {tls.crt: '!!notbase64', tls.key: aGk=}\n")
        XCTAssertEqual(bad.problems.map(\.description), [
            "app.yaml (document 1, Secret default/s): data[tls.crt]: Invalid value: illegal base64 data",
        ])
        let missing = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n")
        XCTAssertEqual(missing.problems.map(\.field), ["data[tls.key]"])
        let ok = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: aGk=}\nstringData: {b: yo}\n")
        guard case .secret(let s)? = ok.objects.first?.object else { return XCTFail("\(ok.problems)") }
        XCTAssertEqual(s.decodedData["a"], Data("hi".utf8))
        XCTAssertEqual(s.decodedData["b"], Data("yo".utf8))
    }

    func testEndpointSliceValidation() {
        let yaml = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints:
            - addresses: ["10.0.0.1"]
              conditions: {ready: true}
            - addresses: ["::1"]
            ports: [{name: http, port: 8080}]
            """
        XCTAssertEqual(onlyProblem(load(yaml))?.field, "endpoints[1].addresses[0]")
    }

    func testFieldPathFromCodingPath() {
        struct K: CodingKey {
            var stringValue: String; var intValue: Int?
            init(_ s: String) { stringValue = s; intValue = nil }
            init(_ i: Int) { stringValue = "Index \(i)"; intValue = i }
            init?(stringValue: String) { self.init(stringValue) }
            init?(intValue: Int) { self.init(intValue) }
        }
        XCTAssertEqual(ManifestLoader.fieldPath([K("spec"), K("rules"), K(0), K("http"), K("paths"), K(1), K("pathType")]),
                       "spec.rules[0].http.paths[1].pathType")
        XCTAssertEqual(ManifestLoader.fieldPath([]), "")
    }
}
