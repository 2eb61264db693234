import Dataplane
import Objects
import Reactor
import RouteCompiler
import XCTest

final class RouteCompilerTests: XCTestCase {
    private func objects(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) -> [KubeObject] {
        let r = ManifestLoader.load(yaml: yaml, file: "test.yaml")
        XCTAssertEqual(r.problems, [], file: file, line: line)
        return r.kubeObjects
    }

    private func compile(_ yaml: String, ingressClass: String = "portico") -> (RouteTable, [CompileProblem]) {
        let r = RouteCompiler.compile(objects(yaml), options: CompileOptions(ingressClass: ingressClass, generation: 5))
        return (r.table, r.problems)
    }

    private func endpoints(_ t: RouteTable, _ host: String, _ path: String) -> [String] {
        let m = t.route(host: host, path: path)
        guard m.isFound else { return ["404"] }
        return t.backends[Int(m.backend)].endpoints.map(\.address.description)
    }

    static let service = """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports:
          - {name: http, port: 80, targetPort: web-http}
          - {name: admin, port: 9000, targetPort: 9001}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: web}
        subsets:
        - addresses: [{ip: 127.0.1.1, targetRef: {kind: Pod, name: web-a}}, {ip: 127.0.1.2}]
          notReadyAddresses: [{ip: 127.0.1.9}]
          ports: [{name: http, port: 8080}, {name: admin, port: 9001}]
        """

    private func ingress(name: String = "web", annotations: String = "{}", className: String? = nil,
                         created: String? = nil, rules: String) -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: \(name)
          annotations: \(annotations)
        \(created.map { "  creationTimestamp: \"\($0)\"" } ?? "")
        spec:
        \(className.map { "  ingressClassName: \($0)" } ?? "")
          rules:
        \(rules)
        """
    }

    private func rule(host: String? = "web.example.com", path: String = "/", type: String = "Prefix",
                      service: String = "web", port: String = "{number: 80}") -> String {
        """
          - \(host.map { "host: \($0)" } ?? "host: \"\"")
            http:
              paths: [{path: \(path), pathType: \(type), backend: {service: {name: \(service), port: \(port)}}}]
        """
    }

    func testPortByNumberAndNameThroughNamedTargetPort() {
        let (t, problems) = compile(Self.service + "\n---\n" + ingress(rules: rule(path: "/", port: "{number: 80}")
                                                                       + "\n" + rule(path: "/admin", port: "{name: admin}")))
        XCTAssertEqual(problems, [])
        // Port 80 "http" → targetPort web-http → the Endpoints port named "http": 8080.
        XCTAssertEqual(endpoints(t, "web.example.com", "/x"), ["127.0.1.1:8080", "127.0.1.2:8080"])
        XCTAssertEqual(endpoints(t, "web.example.com", "/admin/x"), ["127.0.1.1:9001", "127.0.1.2:9001"])
        XCTAssertEqual(t.generation, 5)
        XCTAssertEqual(t.ingresses, ["default/web"])
        XCTAssertEqual(t.backends.map(\.label), ["default/web:80", "default/web:admin"])
        XCTAssertEqual(t.backends[0].endpoints[0].name, "web-a@127.0.1.1:8080")
    }

    func testNotReadyAddressesExcluded() {
        let (t, _) = compile(Self.service + "\n---\n" + ingress(rules: rule()))
        XCTAssertFalse(endpoints(t, "web.example.com", "/").contains("127.0.1.9:8080"))
    }

    func testSingleUnnamedPort() {
        let yaml = """
            apiVersion: v1
            kind: Service
            metadata: {name: one}
            spec: {ports: [{port: 80, targetPort: 8080}]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata: {name: one}
            subsets: [{addresses: [{ip: 127.0.2.1}], ports: [{port: 8080}]}]
            """
        let (t, problems) = compile(yaml + "\n---\n" + ingress(rules: rule(service: "one")))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(endpoints(t, "web.example.com", "/"), ["127.0.2.1:8080"])
    }

    func testEndpointSlicesReadyOnlyAndDeduplicated() {
        let yaml = Self.service + """

            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints:
            - {addresses: [127.0.1.1]}
            - {addresses: [127.0.1.3], conditions: {ready: true}}
            - {addresses: [127.0.1.4], conditions: {ready: false, serving: true}}
            ports: [{name: http, port: 8080}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: other, labels: {kubernetes.io/service-name: other}}
            addressType: IPv4
            endpoints: [{addresses: [127.0.9.9]}]
            ports: [{name: http, port: 8080}]
            """
        let (t, _) = compile(yaml + "\n---\n" + ingress(rules: rule()))
        XCTAssertEqual(endpoints(t, "web.example.com", "/"), ["127.0.1.1:8080", "127.0.1.2:8080", "127.0.1.3:8080"])
    }

    func testEndpointSlicesAlone() {
        let yaml = """
            apiVersion: v1
            kind: Service
            metadata: {name: s}
            spec: {ports: [{name: web, port: 80, targetPort: 8080}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s-1, labels: {kubernetes.io/service-name: s}}
            addressType: IPv6
            endpoints: [{addresses: ["::1"]}]
            ports: [{name: web, port: 8080}]
            """
        let (t, _) = compile(yaml + "\n---\n" + ingress(rules: rule(service: "s")))
        XCTAssertEqual(endpoints(t, "web.example.com", "/"), ["[::1]:8080"])
    }

    func testMissingServiceAndPortAreProblemsAndBackendsWithoutEndpoints() {
        let (t, problems) = compile(Self.service + "\n---\n" + ingress(rules:
            rule(path: "/a", service: "nope") + "\n" + rule(path: "/b", port: "{number: 81}")))
        XCTAssertEqual(problems.map(\.description), [
            "Ingress default/web: spec.rules[0].http.paths[0].backend.service.name: Service default/nope not found; requests get 503",
            "Ingress default/web: spec.rules[1].http.paths[0].backend.service.port.number: Service default/web has no port 81; requests get 503",
        ])
        let a = t.route(host: "web.example.com", path: "/a")
        XCTAssertTrue(a.isFound)
        XCTAssertEqual(t.backends[Int(a.backend)].endpoints, [])
        XCTAssertEqual(endpoints(t, "web.example.com", "/b"), [])
    }

    func testNoEndpointsObjectMeansNoEndpoints() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: lonely}\nspec: {ports: [{port: 80}]}\n"
        let (t, problems) = compile(yaml + "---\n" + ingress(rules: rule(service: "lonely")))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(endpoints(t, "web.example.com", "/"), [])
    }

    func testIngressClassFiltering() {
        let yaml = Self.service + "\n---\n"
            + ingress(name: "mine", className: "portico", rules: rule(host: "a.example.com")) + "\n---\n"
            + ingress(name: "theirs", className: "nginx", rules: rule(host: "b.example.com")) + "\n---\n"
            + ingress(name: "classless", rules: rule(host: "c.example.com")) + "\n---\n"
            + ingress(name: "legacy-mine", annotations: "{kubernetes.io/ingress.class: portico}", rules: rule(host: "d.example.com")) + "\n---\n"
            + ingress(name: "legacy-theirs", annotations: "{kubernetes.io/ingress.class: nginx}", rules: rule(host: "e.example.com"))
        let (t, _) = compile(yaml)
        XCTAssertEqual(t.ingresses.sorted(), ["default/classless", "default/legacy-mine", "default/mine"])
        XCTAssertTrue(t.route(host: "a.example.com", path: "/").isFound)
        XCTAssertFalse(t.route(host: "b.example.com", path: "/").isFound)
        XCTAssertTrue(t.route(host: "c.example.com", path: "/").isFound)
        XCTAssertTrue(t.route(host: "d.example.com", path: "/").isFound)
        XCTAssertFalse(t.route(host: "e.example.com", path: "/").isFound)
        let (other, _) = compile(yaml, ingressClass: "nginx")
        XCTAssertEqual(other.ingresses.sorted(), ["default/classless", "default/legacy-theirs", "default/theirs"])
    }

    func testAnnotations() {
        let annotations = "{portico.io/load-balance: least_request, portico.io/affinity: cookie, portico.io/session-cookie-name: S, portico.io/session-cookie-max-age: '3600'}"
        let (t, problems) = compile(Self.service + "\n---\n" + ingress(annotations: annotations, rules: rule()))
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.backends.first?.policy, .leastRequest)
        XCTAssertEqual(t.backends.first?.affinity, .cookie(name: "S", maxAgeSeconds: 3600))

        let (d, _) = compile(Self.service + "\n---\n" + ingress(annotations: "{portico.io/affinity: cookie}", rules: rule()))
        XCTAssertEqual(d.backends.first?.affinity, .cookie(name: "PORTICO_AFFINITY", maxAgeSeconds: 0))
        XCTAssertEqual(d.backends.first?.policy, .roundRobin)
    }

    func testInvalidAnnotationsAreProblemsAndDefaultsApply() {
        let annotations = "{portico.io/load-balance: random, portico.io/affinity: cookie, portico.io/session-cookie-name: 'a b', portico.io/session-cookie-max-age: '-1'}"
        let (t, problems) = compile(Self.service + "\n---\n" + ingress(annotations: annotations, rules: rule()))
        XCTAssertEqual(problems.map(\.field), [
            "metadata.annotations[portico.io/load-balance]",
            "metadata.annotations[portico.io/session-cookie-name]",
            "metadata.annotations[portico.io/session-cookie-max-age]",
        ])
        XCTAssertEqual(problems.first?.description,
                       "Ingress default/web: metadata.annotations[portico.io/load-balance]: unsupported value \"random\": must be round_robin or least_request; using round_robin")
        XCTAssertEqual(t.backends.first?.policy, .roundRobin)
        XCTAssertEqual(t.backends.first?.affinity, .cookie(name: "PORTICO_AFFINITY", maxAgeSeconds: 0))
        let (_, bad) = compile(Self.service + "\n---\n" + ingress(annotations: "{portico.io/affinity: sticky}", rules: rule()))
        XCTAssertEqual(bad.map(\.field), ["metadata.annotations[portico.io/affinity]"])
    }

    func testServiceClientIPAffinityAndCookiePrecedence() {
        let svc = Self.service.replacingOccurrences(of: "  selector: {app: web}", with: "  selector: {app: web}\n  sessionAffinity: ClientIP")
        let (t, _) = compile(svc + "\n---\n" + ingress(rules: rule()))
        XCTAssertEqual(t.backends.first?.affinity, .clientIP)
        let (c, _) = compile(svc + "\n---\n" + ingress(annotations: "{portico.io/affinity: cookie}", rules: rule()))
        XCTAssertEqual(c.backends.first?.affinity, .cookie(name: "PORTICO_AFFINITY", maxAgeSeconds: 0))
    }

    func testBackendsDeduplicated() {
        let (t, _) = compile(Self.service + "\n---\n" + ingress(rules: rule(path: "/a") + "\n" + rule(path: "/b")
                                                              + "\n" + rule(host: "other.example.com")))
        XCTAssertEqual(t.backends.count, 1)
        let (u, _) = compile(Self.service + "\n---\n" + ingress(name: "a", rules: rule(path: "/a")) + "\n---\n"
                             + ingress(name: "b", annotations: "{portico.io/load-balance: least_request}", rules: rule(path: "/b")))
        XCTAssertEqual(u.backends.count, 2)
    }

    func testConflictOldestIngressWins() {
        let yaml = Self.service + "\n---\n"
            + ingress(name: "newer", created: "2024-06-01T00:00:00Z", rules: rule(path: "/x", port: "{name: admin}")) + "\n---\n"
            + ingress(name: "older", created: "2024-01-01T00:00:00Z", rules: rule(path: "/x") + "\n" + rule(path: "/y"))
        let (t, problems) = compile(yaml)
        XCTAssertEqual(t.ingresses, ["default/older", "default/newer"])
        XCTAssertEqual(t.route(host: "web.example.com", path: "/x").ingress, 0)
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.object, "Ingress default/newer")
        XCTAssertEqual(problems.first?.field, "spec.rules[0].http.paths[0]")
        XCTAssertTrue(problems.first?.message.contains("Ingress default/older") ?? false, problems.first?.message ?? "")
    }

    func testDuplicatePathInOneIngress() {
        let (t, problems) = compile(Self.service + "\n---\n" + ingress(rules: rule(path: "/x") + "\n" + rule(path: "/x/", port: "{name: admin}")))
        XCTAssertEqual(problems.map(\.description), [
            "Ingress default/web: spec.rules[1].http.paths[0]: host web.example.com path /x/ (Prefix) is already routed by an earlier path of the same Ingress; this path is ignored",
        ])
        XCTAssertEqual(endpoints(t, "web.example.com", "/x"), ["127.0.1.1:8080", "127.0.1.2:8080"])
    }

    func testConflictWithoutTimestampsUsesNamespaceAndName() {
        let yaml = Self.service + "\n---\n"
            + ingress(name: "b", rules: rule(path: "/x", port: "{name: admin}")) + "\n---\n"
            + ingress(name: "a", rules: rule(path: "/x"))
        let (t, _) = compile(yaml)
        XCTAssertEqual(t.ingresses, ["default/a", "default/b"])
        XCTAssertEqual(endpoints(t, "web.example.com", "/x/1"), ["127.0.1.1:8080", "127.0.1.2:8080"])
    }

    func testDefaultBackendOldestWinsAndHostlessRules() {
        let def = { (name: String, created: String, port: String) in
            """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: \(name), creationTimestamp: "\(created)"}
            spec:
              defaultBackend: {service: {name: web, port: \(port)}}
            """
        }
        let yaml = Self.service + "\n---\n" + def("d2", "2024-02-01T00:00:00Z", "{name: admin}") + "\n---\n"
            + def("d1", "2024-01-01T00:00:00Z", "{number: 80}") + "\n---\n"
            + ingress(name: "hostless", created: "2024-03-01T00:00:00Z", rules: rule(host: nil, path: "/static", port: "{name: admin}"))
        let (t, problems) = compile(yaml)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(t.defaultMatch.ingress, 0)
        XCTAssertEqual(t.ingresses[0], "default/d1")
        XCTAssertEqual(endpoints(t, "any.example.com", "/nothing"), ["127.0.1.1:8080", "127.0.1.2:8080"])
        XCTAssertEqual(endpoints(t, "any.example.com", "/static/x"), ["127.0.1.1:9001", "127.0.1.2:9001"])
    }

    func testImplementationSpecificIsPrefixAndJSON() {
        let (t, _) = compile(Self.service + "\n---\n" + ingress(rules: rule(path: "/api", type: "ImplementationSpecific")))
        XCTAssertTrue(t.route(host: "web.example.com", path: "/api/v1").isFound)
        XCTAssertFalse(t.route(host: "web.example.com", path: "/apiv1").isFound)
        XCTAssertTrue(t.jsonDescription().contains("\"pathType\":\"Prefix\""))
    }

    func testEmptyInput() {
        let r = RouteCompiler.compile([], options: CompileOptions(generation: 1))
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.table.route(host: "a", path: "/"), .notFound)
    }
}
