// libFuzzer target for what the API server does with a request body: JSONValue.parse (Foundation's
// JSONDecoder into Sources/Objects/JSONValue.swift), then the Store's create path with its
// validation (Sources/ControlPlane/Store/StoreValidation.swift) on a store in a temp directory.
// Invariants: parsing fails only by throwing; a parsed value re-encodes and parses back to the
// same value; create either returns an object with the metadata the store sets or throws a
// StoreError (never another error, never a trap); a dry run and a real create agree, and the
// created object is what get returns, until it is deleted.
import ControlPlane
import Foundation
import FuzzSupport
import Objects

let storeDirectory = NSTemporaryDirectory() + "portico-fuzz-api-\(getpid())"
let store: Store = {
    do { return try Store(directory: storeDirectory, windowCapacity: 16) } catch { fatalError("store: \(error)") }
}()

/// Numbers compare by value (1 and 1.0 are the same JSON number).
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy(sameJSON)
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { k, v in y[k].map { sameJSON(v, $0) } ?? false }
    default: return a == b
    }
}

@main
enum Main {
    static func main() {
        // Opened before the first input, so that LeakSanitizer's per-input check does not count it.
        _ = store
        atexit { try? FileManager.default.removeItem(atPath: storeDirectory) }
        runFuzzer { data, size in data.map { testOneInput($0, size) } ?? 0 }
    }
}

func testOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONValue.parse(bytes) else { return 0 }
    let encoded = value.jsonBytes
    guard let back = try? JSONValue.parse(encoded) else {
        check(false, "re-encoded JSON parses: \(String(decoding: encoded, as: UTF8.self))")
        return 0
    }
    check(sameJSON(back, value), "JSON round trip: \(String(decoding: encoded, as: UTF8.self))")

    // The kind the body names, else one picked by the input, as the URL would.
    let apiVersion = value["apiVersion"]?.stringValue ?? ""
    let kind = value["kind"]?.stringValue ?? ""
    let type = ResourceType.find(apiVersion: apiVersion, kind: kind)
        ?? ResourceType.all[Int(bytes.reduce(0) { $0 &+ UInt($1) } % UInt(ResourceType.all.count))]

    let dry: JSONValue
    do {
        dry = try store.create(type, value, namespace: "default", dryRun: true)
    } catch let e as StoreError {
        check(e.code >= 400 && e.code < 500, "a rejected body is a 4xx: \(e)")
        // The same body is refused the same way again.
        do { _ = try store.create(type, value, namespace: "default", dryRun: true); check(false, "second dry run accepted") }
        catch let e2 as StoreError {
            // generateName picks a random name, which the messages quote: compare what is not random.
            let random = value.name.isEmpty && value[path: ["metadata", "generateName"]] != nil
            check(random ? (e2.reason == e.reason && e2.causes.map(\.field) == e.causes.map(\.field)) : e2 == e,
                  "validation is deterministic: \(e) then \(e2)")
        }
        catch { check(false, "not a StoreError: \(error)") }
        return 0
    } catch {
        check(false, "create throws only StoreError, not \(error)")
        return 0
    }
    check(!dry.name.isEmpty && !dry.uid.isEmpty && !dry.resourceVersion.isEmpty, "created object has name, uid, resourceVersion")
    check(dry[path: ["metadata", "generation"]] == .int(1), "generation 1")
    if type.namespaced { check(!dry.namespace.isEmpty, "namespaced object has a namespace") }

    // Real create, read back, delete.
    do {
        let created = try store.create(type, value, namespace: "default")
        check(created.name == dry.name || value.name.isEmpty, "dry run and create agree on the name")
        let got = try store.get(type, namespace: created.namespace, name: created.name)
        check(got == created, "get returns what create stored")
        _ = try store.delete(type, namespace: created.namespace, name: created.name)
        do { _ = try store.get(type, namespace: created.namespace, name: created.name); check(false, "deleted object is gone") }
        catch let e as StoreError { check(e.reason == .notFound, "NotFound after delete") }
    } catch {
        // A namespace created and deleted here leaves nothing behind; anything else is a bug.
        check(false, "a body that passed a dry run fails to create: \(error)")
    }
    return 0
}
