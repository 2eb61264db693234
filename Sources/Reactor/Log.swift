#if canImport(Glibc)
import Glibc
#endif

/// Operational log: one line per event on stderr, written with a single write(2) so lines from
/// different threads never interleave. Not for the per-request access log (see AccessLog).
public struct Log: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var word: String { ["debug", "info", "warn", "error"][rawValue] }
    }

    nonisolated(unsafe) public static var minimumLevel: Level = .info
    public let component: String

    public init(_ component: String) { self.component = component }

    public func debug(_ message: @autoclosure () -> String) { emit(.debug, message) }
    public func info(_ message: @autoclosure () -> String) { emit(.info, message) }
    public func warning(_ message: @autoclosure () -> String) { emit(.warning, message) }
    public func error(_ message: @autoclosure () -> String) { emit(.error, message) }

    private func emit(_ level: Level, _ message: () -> String) {
        guard level >= Log.minimumLevel else { return }
        var line = "\(Log.timestamp()) \(level.word) [\(component)] \(message())\n"
        line.withUTF8 { bytes in
            var off = 0
            while off < bytes.count {
                let n = write(2, bytes.baseAddress! + off, bytes.count - off)
                if n <= 0 { break }
                off += n
            }
        }
    }

    /// UTC time as `2026-11-25T03:30:00.123Z`.
    public static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(tm.tm_year + 1900)-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
