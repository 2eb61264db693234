import ArgumentParser

/// The `portico` command line.
@main
struct Portico: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico",
        abstract: "A Kubernetes-shaped ingress proxy for one machine.",
        discussion: """
        Write ordinary Kubernetes YAML (Ingress, Service, Endpoints, EndpointSlice), run
        `portico serve -f DIR`, and Portico routes HTTP to your backends exactly as the Kubernetes
        Ingress spec says.
        """,
        version: PorticoVersion.string,
        subcommands: [Serve.self, Echo.self, Version.self, Apply.self, Get.self, Describe.self, Delete.self, Logs.self, Scale.self, Rollout.self])
}

enum PorticoVersion {
    static let string = "0.1.0"
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("portico \(PorticoVersion.string)") }
}
