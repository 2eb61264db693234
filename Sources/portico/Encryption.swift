import ArgumentParser
import ControlPlane
import Foundation

/// `portico encryption`: the keys that encrypt Secrets at rest (`<data>/store/encryption-keys`).
struct Encryption: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the keys that encrypt Secrets at rest.",
        discussion: """
        Secrets are stored AES-256-GCM-encrypted under the first key of <data>/store/encryption-keys \
        (mode 0600, created on first start); every key in the file decrypts. `rotate` adds a new \
        first key; `status` shows how many Secrets each key seals. Once no Secret uses an old key, \
        its line can be deleted from the file.
        """,
        subcommands: [Rotate.self, Status.self])

    struct DataOption: ParsableArguments {
        @Option(help: "The data directory of `portico serve` (its --data).")
        var data: String = ".portico"

        var storeDirectory: String { (data as NSString).appendingPathComponent("store") }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new first key; re-encrypt every Secret with it now (store not in use) or at the next start.")

        @OptionGroup var options: DataOption

        func run() throws {
            do {
                let r = try Store.rotateEncryptionKey(directory: options.storeDirectory)
                writeOut("\(r.keyFile): new key \(r.newKey) encrypts from now on (keys: \(r.keys.joined(separator: ", ")))\n")
                if let n = r.resealed {
                    writeOut("re-encrypted \(n) Secret(s) with \(r.newKey); older keys can now be removed from the file\n")
                } else {
                    writeOut("the store is in use (portico serve is running): Secrets are re-encrypted with \(r.newKey) when it next starts; "
                        + "remove older keys only after that (check with `portico encryption status`)\n")
                }
            } catch {
                writeErr("encryption rotate: \(error)\n")
                throw ExitCode(1)
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the keys and how many Secrets each one encrypts.")

        @OptionGroup var options: DataOption

        func run() throws {
            do {
                let (keys, usage) = try Store.encryptionKeyUsage(directory: options.storeDirectory)
                writeOut("KEY\tSECRETS\n")
                for (i, k) in keys.enumerated() {
                    writeOut("\(k)\t\(usage[k] ?? 0)\(i == 0 ? "\t(encrypts)" : "")\n")
                }
                for (k, n) in usage.sorted(by: { $0.key < $1.key }) where !keys.contains(k) {
                    writeOut("\(k.isEmpty ? "(plaintext)" : k)\t\(n)\t(\(k.isEmpty ? "encrypted at the next start" : "key missing from the file"))\n")
                }
            } catch {
                writeErr("encryption status: \(error)\n")
                throw ExitCode(1)
            }
        }
    }
}
