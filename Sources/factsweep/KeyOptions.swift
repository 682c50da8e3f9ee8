// The coordinator's and a worker's CURVE key options, with cluster.json's
// `security` settings as defaults (docs/security.md). Secure by default: a
// coordinator reachable from other hosts needs keys, or an explicit --insecure.
import ArgumentParser
import Coordinator
import Foundation
import Logging
import Protocol

struct CoordinatorKeyOptions: ParsableArguments {
    @Option(name: .long, help: "The coordinator's key pair (factsweep keys create coordinator); default: cluster.json's security.coordinator_key.")
    var key: String?

    @Option(name: .long, help: "Worker public keys to admit (factsweep keys allow); default: cluster.json's security.allow_list.")
    var allowList: String?

    @Flag(name: .long, help: "Serve a non-loopback address without keys: anyone who reaches the port can take and fake trials.")
    var insecure = false

    /// The keys to serve `bind` with; nil for plaintext, allowed only on loopback/ipc or with --insecure (warned at each start).
    func security(bind: String, cluster: ClusterConfig?, logger: Logger) throws -> CoordinatorSecurity? {
        let keyFile = key ?? cluster?.security?.coordinatorKey, allowFile = allowList ?? cluster?.security?.allowList
        switch (keyFile, allowFile) {
        case (let keyFile?, let allowFile?):
            if insecure { throw CLIError("--insecure with keys: choose one (keys: drop --insecure)") }
            let security = CoordinatorSecurity(keyPair: try KeyFiles.readKeyPair(URL(fileURLWithPath: keyFile)),
                                               allowList: URL(fileURLWithPath: allowFile))
            // Read once now so that a missing or open list is reported at start, not as refused workers.
            let allowed = try AllowList.read(security.allowList)
            logger.info("CURVE on; admitting allow-listed worker keys", metadata: [
                "public_key": "\(security.keyPair.publicKey)", "allowed": "\(allowed.entries.count)"])
            return security
        case (nil, nil):
            if insecure {
                logger.warning("--insecure: no encryption, no authentication; anyone who reaches \(bind) can take trials and report fake results")
                return nil
            }
            guard EndpointScope.isLocal(bind) else {
                throw CLIError("""
                    refusing to serve \(bind) without keys: anyone who reaches it could take every trial and report invented \
                    results. Make keys (factsweep keys create coordinator; on each worker host factsweep keys create HOST, \
                    then factsweep keys allow HOST.pub here) and give --key/--allow-list or cluster.json's "security" \
                    (docs/security.md), bind a loopback address, or pass --insecure on a network you trust.
                    """)
            }
            return nil
        default:
            throw CLIError("the coordinator needs both a key (--key / security.coordinator_key) and an allow-list (--allow-list / security.allow_list)")
        }
    }
}

struct WorkerKeyOptions: ParsableArguments {
    @Option(name: .long, help: "This host's key pair (factsweep keys create HOST); default: cluster.json's security.worker_key.")
    var key: String?

    @Option(name: .long, help: "The coordinator's public key: its .pub file or the Z85 key; default: cluster.json's security.coordinator_public_key.")
    var coordinatorKey: String?

    /// The keys to connect with; nil (plaintext) when neither is given.
    /// `published`: the coordinator's public key from its address file (RUN/coordinator.json), used
    /// when neither the flag nor cluster.json names one.
    func security(cluster: ClusterConfig?, published: String? = nil) throws -> WorkerSecurity? {
        switch (key ?? cluster?.security?.workerKey, coordinatorKey ?? cluster?.security?.coordinatorPublicKey ?? published) {
        case (let keyFile?, let coordinatorKey?):
            return try WorkerSecurity(keyPair: try KeyFiles.readKeyPair(URL(fileURLWithPath: keyFile)),
                                      coordinatorKey: try KeyFiles.publicKey(coordinatorKey))
        case (nil, nil):
            return nil
        default:
            throw CLIError("a keyed worker needs both its key (--key / security.worker_key) and the coordinator's public key (--coordinator-key / security.coordinator_public_key)")
        }
    }
}
