import Foundation
import XCTest
@testable import Objects

final class ObjectCodingTests: XCTestCase {
    static let manifest = """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: web
          namespace: shop
          uid: 7b1c
          resourceVersion: "42"
          generation: 3
          creationTimestamp: "2024-05-01T10:00:00Z"
          labels: {app: web}
          annotations: {portico.io/load-balance: least_request}
          ownerReferences:
          - {apiVersion: v1, kind: ConfigMap, name: owner, uid: u1, controller: true}
        spec:
          ingressClassName: portico
          defaultBackend: {service: {name: fallback, port: {name: http}}}
          tls:
          - hosts: [web.example.com]
            secretName: web-tls
          rules:
          - host: web.example.com
            http:
              paths:
              - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
        status:
          loadBalancer:
            ingress: [{ip: 127.0.0.1}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: api}
        spec:
          type: NodePort
          clusterIP: 10.96.0.10
          selector: {app: api}
          sessionAffinity: ClientIP
          ports:
          - {name: http, port: 8080, targetPort: 9000, protocol: TCP, nodePort: 30080}
          - {name: admin, port: 9090, targetPort: admin}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: api}
        subsets:
        - addresses: [{ip: 127.0.1.1, hostname: a, targetRef: {kind: Pod, name: api-0, namespace: default}}]
          notReadyAddresses: [{ip: 127.0.1.2}]
          ports: [{name: http, port: 9000, protocol: TCP}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: api-x, labels: {kubernetes.io/service-name: api}}
        addressType: IPv4
        endpoints:
        - addresses: [127.0.1.3]
          conditions: {ready: true, serving: true, terminating: false}
          targetRef: {kind: Pod, name: api-1}
        ports: [{name: http, port: 9000}]
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: web-tls}
        type: kubernetes.io/tls
        data: {tls.crt: Y2VydA==, tls.key: a2V5}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: conf}
        data: {a: b}
        binaryData: {bin: AAE=}
        """

    func testJSONRoundTripPreservesFields() throws {
        let r = ManifestLoader.load(yaml: Self.manifest, file: "m.yaml")
        XCTAssertEqual(r.problems, [])
        XCTAssertEqual(r.objects.count, 6)
        for loaded in r.objects {
            let data = try JSONEncoder().encode(loaded.object)
            let back = try JSONDecoder().decode(KubeObject.self, from: data)
            XCTAssertEqual(back, loaded.object)
            let text = String(decoding: data, as: UTF8.self)
            XCTAssertFalse(text.contains("null"), text)
        }
        guard case .service(let s) = r.objects[1].object else { return XCTFail() }
        XCTAssertEqual(s.spec?.ports?[0].targetPort, .int(9000))
        XCTAssertEqual(s.spec?.ports?[1].targetPort, .string("admin"))
        XCTAssertEqual(s.metadata.namespace, "default")
        guard case .ingress(let i) = r.objects[0].object else { return XCTFail() }
        XCTAssertEqual(i.metadata.ownerReferences?.first?.controller, true)
        XCTAssertEqual(i.metadata.generation, 3)
        XCTAssertEqual(i.metadata.resourceVersion, "42")
        XCTAssertEqual(i.status?.loadBalancer?.ingress?.first?.ip, "127.0.0.1")
        XCTAssertEqual(i.spec?.defaultBackend?.service?.port?.name, "http")
        XCTAssertEqual(i.spec?.tls?.first?.secretName, "web-tls")
    }

    func testEncodingOmitsNils() throws {
        let ingress = Ingress(metadata: ObjectMeta(name: "a"), spec: .init(rules: [
            .init(http: .init(paths: [.init(path: "/", pathType: .prefix, backend: .init(service: "s", port: .number(80)))])),
        ]))
        let text = String(decoding: try JSONEncoder().encode(KubeObject.ingress(ingress)), as: UTF8.self)
        XCTAssertFalse(text.contains("null"))
        XCTAssertFalse(text.contains("host"))
        XCTAssertTrue(text.contains("\"apiVersion\":\"networking.k8s.io\\/v1\"") || text.contains("\"apiVersion\":\"networking.k8s.io/v1\""), text)
        let back = try JSONDecoder().decode(KubeObject.self, from: Data(text.utf8))
        XCTAssertEqual(back, .ingress(ingress))
    }

    func testIntOrStringFromJSON() throws {
        let json = #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":80,"targetPort":"8080"},{"port":81,"targetPort":8081}]}}"#
        guard case .service(let s) = try JSONDecoder().decode(KubeObject.self, from: Data(json.utf8)) else { return XCTFail() }
        XCTAssertEqual(s.spec?.ports?[0].targetPort, .string("8080"))
        XCTAssertEqual(s.spec?.ports?[1].targetPort, .int(8081))
        XCTAssertEqual(Service.Port(port: 80).effectiveTargetPort, .int(80))
    }

    func testListItemsWithoutTypeMetaDecode() throws {
        // API server list responses omit apiVersion/kind in items.
        let json = #"{"metadata":{"name":"a"},"spec":{"ports":[{"port":80}]}}"#
        let s = try JSONDecoder().decode(Service.self, from: Data(json.utf8))
        XCTAssertEqual(s.kind, "Service")
        XCTAssertEqual(s.apiVersion, "v1")
    }

    func testUnknownKindRoundTrip() throws {
        let u = KubeObject.unknown(apiVersion: "apps/v1", kind: "Deployment", name: "web")
        let back = try JSONDecoder().decode(KubeObject.self, from: try JSONEncoder().encode(u))
        XCTAssertEqual(back, u)
        XCTAssertEqual(u.displayName, "Deployment web")
        XCTAssertNil(u.metadata)
    }

    func testQuotedNumberTargetPortIsAString() {
        let r = ManifestLoader.load(yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{port: 80, targetPort: \"http\"}, {name: b, port: 81, targetPort: 81}]\n", file: "x")
        XCTAssertEqual(r.problems.map(\.field), ["spec.ports[0].name"])
    }

    func testKubectlOutputWithManagedFieldsLoads() throws {
        let yaml = """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: a
              selfLink: /api/v1/namespaces/default/configmaps/a
              managedFields:
              - apiVersion: v1
                fieldsType: FieldsV1
                fieldsV1: {f:data: {.: {}, f:a: {}}}
                manager: kubectl
                operation: Update
                time: "2024-05-01T10:00:00Z"
            data: {a: b}
            """
        let r = ManifestLoader.load(yaml: yaml, file: "x")
        XCTAssertEqual(r.problems, [])
        let data = try JSONEncoder().encode(r.objects[0].object)
        XCTAssertEqual(try JSONDecoder().decode(KubeObject.self, from: data), r.objects[0].object)
    }

    func testNameValidation() {
        XCTAssertTrue(NameValidation.isDNS1123Subdomain("a.b-c.d"))
        XCTAssertFalse(NameValidation.isDNS1123Subdomain("a..b"))
        XCTAssertFalse(NameValidation.isDNS1123Subdomain("-a"))
        XCTAssertFalse(NameValidation.isDNS1123Subdomain(String(repeating: "a", count: 254)))
        XCTAssertTrue(NameValidation.isDNS1035Label("web-1"))
        XCTAssertFalse(NameValidation.isDNS1035Label("1web"))
        XCTAssertFalse(NameValidation.isDNS1035Label(String(repeating: "a", count: 64)))
        XCTAssertTrue(NameValidation.isIANASvcName("http-alt"))
        XCTAssertFalse(NameValidation.isIANASvcName("8080"))
        XCTAssertFalse(NameValidation.isIANASvcName("a--b"))
        XCTAssertTrue(NameValidation.isIP("::1"))
        XCTAssertFalse(NameValidation.isIP("1.2.3"))
    }
}
