/// The Exact and Prefix paths of one host (or of the rules without a host).
///
/// Exact paths are stored byte for byte. Prefix paths are stored without trailing slashes (so `/`
/// is the empty key); a request path is probed at each `/` boundary, which is Kubernetes'
/// element-wise prefix match: `/foo` matches `/foo`, `/foo/` and `/foo/bar` but not `/foobar`.
/// A class so that the router reaches a host's maps through one reference (no copies of the
/// maps' arrays per request); mutated only while the `RouteTable` is built.
final class RouterPathRules: @unchecked Sendable {
    private(set) var exact = ByteKeyMap<RouteMatch>()
    private(set) var prefix = ByteKeyMap<RouteMatch>()

    init() {}

    /// Adds a rule unless the same path and type is already there (the earlier rule wins).
    func insert(_ rule: RouteRule) -> Bool {
        switch rule.pathType {
        case .exact:
            return exact.insertIfAbsent(Array((rule.path.isEmpty ? "/" : rule.path).utf8), rule.match)
        case .prefix:
            return prefix.insertIfAbsent(RouterPathRules.prefixKey(rule.path), rule.match)
        }
    }

    static func prefixKey(_ path: String) -> [UInt8] {
        var key = Array(path.utf8)
        while key.last == UInt8(ascii: "/") { key.removeLast() }
        return key
    }

    /// The best match for a non-empty request path: an Exact match is always at least as long as
    /// any Prefix match (prefix keys carry no trailing slash), so it wins outright; otherwise the
    /// longest matching prefix.
    @inline(__always)
    func match(_ path: UnsafeRawBufferPointer) -> RouteMatch {
        if !exact.isEmpty {
            let i = exact.find(hash: ByteKeyMap<RouteMatch>.hash(path), key: path, lowercase: false)
            if i >= 0 { return exact.value(at: i) }
        }
        if prefix.isEmpty { return .notFound }

        var end = path.count
        while end > 0 && path[end - 1] == UInt8(ascii: "/") { end -= 1 }
        let maxKey = prefix.maxKeyLength
        var best = -1
        var h = ByteKeyMap<RouteMatch>.hashSeed
        // The root prefix `/` (empty key) matches every path.
        let root = UnsafeRawBufferPointer(rebasing: path[0..<0])
        best = prefix.find(hash: h, key: root, lowercase: false)
        var i = 0
        while i < end {
            let b = path[i]
            if b == UInt8(ascii: "/") && i > 0 && path[i - 1] != UInt8(ascii: "/") {
                if i > maxKey { break }
                let candidate = UnsafeRawBufferPointer(rebasing: path[0..<i])
                let found = prefix.find(hash: h, key: candidate, lowercase: false)
                if found >= 0 { best = found }
            }
            h = ByteKeyMap<RouteMatch>.hashStep(h, b)
            i += 1
        }
        if i == end && end > 0 && end <= maxKey {
            let candidate = UnsafeRawBufferPointer(rebasing: path[0..<end])
            let found = prefix.find(hash: h, key: candidate, lowercase: false)
            if found >= 0 { best = found }
        }
        return best >= 0 ? prefix.value(at: best) : .notFound
    }
}
