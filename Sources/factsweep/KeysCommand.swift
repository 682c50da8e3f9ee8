// `factsweep keys`: CURVE key pairs and the coordinator's allow-list
// (docs/security.md, docs/cluster.md). Key files are written 0600 and refused
// when group or others may read them.
import ArgumentParser
import Foundation
import Protocol

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make CURVE key pairs and keep the coordinator's allow-list of worker keys.",
        discussion: """
            The coordinator and each worker host have a key pair (`keys create`). The coordinator admits only the \
            worker public keys on its allow-list (`keys allow`); `keys revoke` refuses a key from its next connection on.
            """,
        subcommands: [Create.self, List.self, Allow.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write DIR/NAME.key (the pair, 0600) and DIR/NAME.pub (to copy).")

        @Argument(help: "The key's name, e.g. coordinator or the worker host's name.")
        var name: String

        @Option(name: .long, help: "Directory for the key files (made 0700 if missing).")
        var dir = "keys"

        func run() throws {
            let pair = try CurveKeyPair.generate()
            let files = try KeyFiles.create(pair, name: name, in: URL(fileURLWithPath: dir))
            print("secret key: \(files.secret.path) (keep it on this host)\npublic key: \(files.public.path)\n\(pair.publicKey)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the key pairs in DIR and the keys on the allow-list.")

        @Option(name: .long, help: "Directory of key files.")
        var dir = "keys"

        @Option(name: .long, help: "The allow-list file (default: DIR/allowed-workers).")
        var allowList: String?

        func run() throws {
            let directory = URL(fileURLWithPath: dir)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names.sorted() where name.hasSuffix(".key") {
                let url = directory.appendingPathComponent(name)
                do {
                    print("pair  \(try KeyFiles.readKeyPair(url).publicKey)  \(name.dropLast(4))")
                } catch {
                    print("error \(error)")
                }
            }
            let list = try AllowList.read(allowListURL(allowList, dir: dir), missingIsEmpty: true)
            for entry in list.entries { print("allow \(entry.key)  \(entry.name)") }
        }
    }

    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a worker's public key on the coordinator's allow-list.")

        @Argument(help: "A .pub file (from `keys create` on the worker host) or the Z85 public key itself.")
        var key: String

        @Option(name: .long, help: "A name for the key (default: the .pub file's name).")
        var name: String?

        @Option(name: .long, help: "Directory of key files.")
        var dir = "keys"

        @Option(name: .long, help: "The allow-list file (default: DIR/allowed-workers; made 0600 if missing).")
        var allowList: String?

        func run() throws {
            let publicKey = try KeyFiles.publicKey(key)
            let url = allowListURL(allowList, dir: dir)
            var list = try AllowList.read(url, missingIsEmpty: true)
            let label = name ?? (FileManager.default.fileExists(atPath: key) ? URL(fileURLWithPath: key).deletingPathExtension().lastPathComponent : "")
            guard list.allow(publicKey, name: label) else { print("already allowed: \(publicKey)"); return }
            try list.write(to: url)
            print("allowed \(publicKey) \(label) in \(url.path)")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a key off the allow-list; the coordinator refuses it from its next connection on.")

        @Argument(help: "The Z85 public key, a .pub file, or the name it was allowed under.")
        var key: String

        @Option(name: .long, help: "Directory of key files.")
        var dir = "keys"

        @Option(name: .long, help: "The allow-list file (default: DIR/allowed-workers).")
        var allowList: String?

        func run() throws {
            let url = allowListURL(allowList, dir: dir)
            var list = try AllowList.read(url)
            let target = FileManager.default.fileExists(atPath: key) ? try KeyFiles.publicKey(key) : key
            let removed = list.revoke(target)
            guard removed > 0 else { throw CLIError("\(key) is not on \(url.path) (see `factsweep keys list`)") }
            try list.write(to: url)
            print("revoked \(key) (\(removed) entr\(removed == 1 ? "y" : "ies")) in \(url.path); established connections keep going until they reconnect")
        }
    }
}

private func allowListURL(_ path: String?, dir: String) -> URL {
    URL(fileURLWithPath: path ?? URL(fileURLWithPath: dir).appendingPathComponent("allowed-workers").path)
}
