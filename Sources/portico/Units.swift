import ArgumentParser

/// A duration flag value: `500ms`, `2s`, `1m`, `1h`, or plain seconds (`30`).
struct Duration: ExpressibleByArgument, CustomStringConvertible {
    let nanos: UInt64
    let text: String

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            guard let v = Double(argument.dropLast(suffix.count)), v >= 0, v < 1e6 else { return nil }
            nanos = UInt64(v * scale); text = argument; return
        }
        guard let v = Double(argument), v >= 0, v < 1e6 else { return nil }
        nanos = UInt64(v * 1e9); text = argument
    }

    var description: String { text }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// A size flag value: `512`, `10k`, `5m`, `1g` (powers of 1024).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    let bytes: UInt64
    let text: String

    init?(argument: String) {
        let lower = argument.lowercased()
        let scales: [(String, UInt64)] = [("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)]
        for (suffix, scale) in scales where lower.hasSuffix(suffix) {
            guard let v = UInt64(lower.dropLast()) else { return nil }
            bytes = v * scale; text = argument; return
        }
        guard let v = UInt64(lower) else { return nil }
        bytes = v; text = argument
    }

    var description: String { text }
}
