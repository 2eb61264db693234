import ArgumentParser
import Foundation
import LoadKit

/// `portico-load`: the HTTP load tester of Portico (closed loop like wrk, open loop like wrk2).
struct PorticoLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico-load",
        abstract: "Load an HTTP(S) server: closed loop (-c connections as fast as they go) or open loop (-R requests/s).",
        discussion: """
        Latency percentiles come from an HdrHistogram (per thread, merged). In open-loop mode (-R) \
        each connection sends on its own fixed schedule and latency is measured from the intended \
        send time, so a stall counts against every request it delays (coordinated omission).

        Examples:
          portico-load -t1 -c64 -d5s http://127.0.0.1:8080/
          portico-load -c50 -R2000 -d30s --svg lat.svg http://127.0.0.1:8080/
          portico-load --scenario mixed.yaml --connect-to 127.0.0.1:8090 -d10s

        Exit status:
          0  the run completed with errors at or below --max-errors percent of attempts
          1  the run completed but errors exceeded --max-errors (or no response at all)
          2  usage error: bad flag, URL, header, rate, scenario or file, or an
             unwritable --hist-out/--svg path (found before the run)
          3  the target was unreachable before the run: its name does not resolve,
             or a test connect failed
        """)

    @Argument(help: "Target URL, http://HOST[:PORT]/PATH (with --scenario: the base for path-only entries when the file has no target:; use --connect-to to send a scenario elsewhere).")
    var url: String?

    @Option(name: [.customShort("c"), .customLong("connections")], help: "Connections to keep open.")
    var connections = 10

    @Option(name: [.customShort("t"), .customLong("threads")], help: "Threads (one event loop each; connections are split).")
    var threads = 1

    @Option(name: [.customShort("d"), .customLong("duration")], help: "Run length (10s, 500ms, 2m); default 10s.")
    var duration: String?

    @Option(name: [.customShort("n"), .customLong("requests")], help: "Exact number of requests instead of a duration.")
    var requests: Int?

    @Option(name: [.customShort("R"), .customLong("rate")], help: "Open loop: requests per second for the whole run.")
    var rate: Double?

    @Option(name: [.customShort("H"), .customLong("header")], help: "Extra header 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(name: [.customShort("m"), .customLong("method")], help: "Request method.")
    var method = "GET"

    @Option(help: "Send this file as the request body.")
    var body: String?

    @Flag(help: "Open a new connection for every request (sends Connection: close).")
    var newConnection = false

    @Flag(help: "Idle mode: each connection sends one request, then stays open and silent until -d ends (a server's memory per idle connection).")
    var idle = false

    @Option(help: "A request with no complete response after this long counts as a timeout.")
    var timeout = "5s"

    @Option(help: "Connect to HOST:PORT instead of the URL's address (Host header and SNI keep the URL's host).")
    var connectTo: String?

    @Flag(help: "https: do not verify the server certificate.")
    var insecure = false

    @Option(help: "https: verify the server against the CA certificates in this PEM file.")
    var cacert: String?

    @Option(help: "YAML scenario with several weighted requests (see loadtest/scenarios/).")
    var scenario: String?

    @Flag(help: "Print the final report as JSON.")
    var json = false

    @Option(help: "Write the latency percentile distribution (HdrHistogram format, ms) to this file.")
    var histOut: String?

    @Option(help: "Write an SVG chart of latency by percentile to this file.")
    var svg: String?

    @Option(help: "Exit 1 when failed attempts exceed this percentage of all attempts.")
    var maxErrors: Double = 1

    func arguments() -> LoadArguments {
        var a = LoadArguments()
        a.url = url
        a.connections = connections
        a.threads = threads
        a.duration = duration
        a.requests = requests
        a.rate = rate
        a.headers = header
        a.method = method
        a.bodyFile = body
        a.newConnection = newConnection
        a.idle = idle
        a.timeout = timeout
        a.connectTo = connectTo
        a.insecure = insecure
        a.cacert = cacert
        a.scenario = scenario
        a.histOut = histOut
        a.svg = svg
        return a
    }
}

func fail(_ message: String, _ code: Int32) -> Never {
    FileHandle.standardError.write(Data("portico-load: \(message)\n".utf8))
    exit(code)
}

/// wrk's spelling `-c64 -d5s` (value attached to the short option) becomes `-c 64 -d 5s`.
func splitAttachedShortOptions(_ args: [String]) -> [String] {
    let shorts: Set<Character> = ["c", "t", "d", "n", "R", "H", "m"]
    var out: [String] = []
    for a in args {
        let chars = Array(a)
        if chars.count > 2, chars[0] == "-", shorts.contains(chars[1]) {
            out.append(String(chars[0...1]))
            out.append(String(chars[2...]))
        } else {
            out.append(a)
        }
    }
    return out
}

let command: PorticoLoad
do {
    command = try PorticoLoad.parse(splitAttachedShortOptions(Array(CommandLine.arguments.dropFirst())))
} catch {
    if PorticoLoad.exitCode(for: error) == .success {
        print(PorticoLoad.fullMessage(for: error))
        exit(0)
    }
    fail(PorticoLoad.message(for: error).split(separator: "\n").first.map(String.init) ?? "usage error", 2)
}

let args = command.arguments()
var config: LoadConfig
do {
    config = try args.makeConfig()
} catch let e as UsageError {
    fail(e.message, 2)
} catch let e as UnreachableError {
    fail(e.message, 3)
} catch {
    fail("\(error)", 2)
}
if let problem = Preflight.connectProblem(config.address, timeoutNanos: config.timeoutNanos) {
    fail(problem, 3)
}

let live = isatty(1) == 1 && !command.json
var sampler: ((LiveSample) -> Void)? = nil
if live {
    sampler = { s in
        let line = String(format: "\r%5.0fs  %9.0f req/s  %8llu errors  p99 %@   ", s.elapsedSeconds, s.rate, s.errors,
                          LoadResult.formatNanos(s.p99Nanos))
        FileHandle.standardOutput.write(Data(line.utf8))
    }
}

// Ctrl-C stops the run early; the report of what ran is still printed.
signal(SIGINT) { _ in LoadRunner.interruptRequested = 1 }

let result: LoadResult
do {
    result = try LoadRunner.run(config, onSample: sampler)
} catch let e as UsageError {
    fail(e.message, 2)
} catch {
    fail("\(error)", 2)
}
if live { FileHandle.standardOutput.write(Data("\r\u{1B}[2K".utf8)) }

let title = "portico-load \(args.title)"
if command.json {
    print(result.json(target: args.title), terminator: "")
} else {
    print(result.text(title: title), terminator: "")
}
// The paths were checked before the run; a write that still fails (disk full, a directory
// removed meanwhile) is reported without replacing the run's own exit status.
for (path, text) in [(command.histOut, { result.percentileTable() }), (command.svg, { result.svg(title: title) })] {
    guard let p = path else { continue }
    do {
        try text().write(toFile: p, atomically: true, encoding: .utf8)
    } catch {
        FileHandle.standardError.write(Data("portico-load: cannot write '\(p)': \(error.localizedDescription)\n".utf8))
    }
}
if result.responses == 0 || result.errorRatio * 100 > command.maxErrors {
    exit(1)
}
exit(0)
