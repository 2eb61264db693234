import ArgumentParser
import ControlPlane
import Foundation
import Objects

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set the replica count of a Deployment, ReplicaSet or StatefulSet (scale subresource).")

    @OptionGroup var options: ClientOptions

    @Option(help: "The new number of replicas.")
    var replicas: Int

    @Option(name: .customLong("current-replicas"), help: "Only scale if the current replica count is this.")
    var currentReplicas: Int?

    @Argument(help: "KIND/NAME or KIND NAME (deploy/web, sts/db)")
    var args: [String] = []

    func run() throws {
        try runClient {
            if replicas < 0 { throw ClientFailure.usage("scale: --replicas must be zero or more") }
            let (type, name) = try kindAndName(args, command: "scale")
            guard type.hasScale else { throw ClientFailure.usage("scale: \(type.resource) cannot be scaled") }
            let api = try options.client()
            let path = type.path(namespace: options.namespace, name: name, subresource: "scale")
            var patch: JSONValue = .object(["spec": .object(["replicas": .int(replicas)])])
            if let expected = currentReplicas {
                let scale = try api.json("GET", path)
                let current = scale[path: ["spec", "replicas"]]?.intValue ?? 0
                guard current == expected else {
                    throw ClientFailure.failed("expected replicas to be \(expected), was \(current)")
                }
                patch[path: ["metadata", "resourceVersion"]] = .string(scale.resourceVersion)
            }
            _ = try api.json("PATCH", path, body: patch, contentType: "application/merge-patch+json")
            writeOut("\(type.singularGroup)/\(name) scaled\n")
        }
    }
}
