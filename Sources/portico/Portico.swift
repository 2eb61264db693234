import ArgumentParser

/// The `portico` command line.
@main
struct Portico: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico",
        abstract: "A Kubernetes-shaped ingress proxy and mini control plane for one machine.",
        discussion: """
        Write ordinary Kubernetes YAML (Deployments, StatefulSets, Services, Ingresses, Secrets) \
        and run `portico serve -f DIR`: pods run as local processes with their own 127.1.x.y \
        addresses, Services get ClusterIPs, and the proxy routes HTTP and HTTPS to them exactly \
        as the Kubernetes Ingress spec says. `portico apply|get|describe|delete|logs|scale|rollout` \
        (or kubectl --server http://127.0.0.1:8001) drive the control plane.
        """,
        version: PorticoVersion.string,
        subcommands: [Serve.self, Echo.self, Version.self, Apply.self, Get.self, Describe.self, Delete.self, Logs.self, Scale.self, Rollout.self,
                      Encryption.self])
}

enum PorticoVersion {
    static let string = "0.1.0"
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("portico \(PorticoVersion.string)") }
}
