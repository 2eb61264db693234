import Foundation
import XCTest
import Objects
@testable import ControlPlane

/// Objects the controllers write (status, allocated fields) pass the typed validation.
final class StoreTypedKindsTests: XCTestCase {
    private var dir: String!
    private var store: Store!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-store-typed-\(UUID().uuidString)"
        store = try Store(directory: dir)
    }

    override func tearDownWithError() throws {
        store.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testIngressStatusAndServiceAllocationsAreAccepted() throws {
        let ing = try store.create(.ingresses, try JSONValue.parse("""
            {"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","annotations":{"a":"b"}},
             "spec":{"ingressClassName":"portico","rules":[{"host":"demo.localhost","http":{"paths":[
               {"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}
            """))
        var withStatus = ing
        withStatus["status"] = try JSONValue.parse(#"{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}"#)
        XCTAssertEqual(try store.updateStatus(.ingresses, withStatus)[path: ["status", "loadBalancer", "ingress"]]?.arrayValue?.count, 1)

        let svc = try store.create(.services, try JSONValue.parse("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
             "spec":{"type":"NodePort","selector":{"app":"web"},"sessionAffinity":"ClientIP",
                     "ports":[{"name":"http","port":80,"targetPort":"http","protocol":"TCP","nodePort":30080}]}}
            """))
        var allocated = svc
        allocated[path: ["spec", "clusterIP"]] = .string("127.2.0.10")
        allocated[path: ["spec", "clusterIPs"]] = .array([.string("127.2.0.10")])
        XCTAssertEqual(try store.update(.services, allocated)[path: ["spec", "clusterIP"]], .string("127.2.0.10"))

        try store.create(.endpoints, try JSONValue.parse("""
            {"apiVersion":"v1","kind":"Endpoints","metadata":{"name":"web"},
             "subsets":[{"addresses":[{"ip":"127.1.0.2","targetRef":{"kind":"Pod","name":"web-1","namespace":"default"}}],
                         "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}
            """))
        try store.create(.endpointSlices, try JSONValue.parse("""
            {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-abc","labels":{"kubernetes.io/service-name":"web"}},
             "addressType":"IPv4","endpoints":[{"addresses":["127.1.0.2"],"conditions":{"ready":true}}],
             "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}
            """))
    }
}
