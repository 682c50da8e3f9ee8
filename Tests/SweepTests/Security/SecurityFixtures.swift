// Keys for process tests, made as a user makes them: `factsweep keys create`
// for the coordinator and a worker host, `keys allow` for the worker's key.
import Foundation
import Testing
import TestSupport

struct TestKeys {
    let dir: URL
    var coordinatorKey: URL { dir.appendingPathComponent("coordinator.key") }
    var coordinatorPublicKey: URL { dir.appendingPathComponent("coordinator.pub") }
    var workerKey: URL { dir.appendingPathComponent("workers.key") }
    var allowList: URL { dir.appendingPathComponent("allowed-workers") }

    /// `cluster.json`'s `"security": {…}` member for these keys.
    var clusterJSON: String {
        """
        "security": {"coordinator_key": "\(coordinatorKey.path)", "allow_list": "\(allowList.path)",
                     "coordinator_public_key": "\(coordinatorPublicKey.path)", "worker_key": "\(workerKey.path)"}
        """
    }

    /// Makes the coordinator's pair, a worker host's pair (on the allow-list) and, with `outsider`, a pair that is not.
    init(in parent: URL, outsider: Bool = false) throws {
        dir = parent.appendingPathComponent("keys")
        try Self.factsweep(["keys", "create", "coordinator", "--dir", dir.path])
        try Self.factsweep(["keys", "create", "workers", "--dir", dir.path])
        if outsider { try Self.factsweep(["keys", "create", "outsider", "--dir", dir.path]) }
        try Self.factsweep(["keys", "allow", dir.appendingPathComponent("workers.pub").path, "--dir", dir.path])
    }

    @discardableResult
    static func factsweep(_ arguments: [String]) throws -> ProcessResult {
        let result = try FactSweepBinary.run(arguments)
        guard result.status == 0 else { throw KeyTestError("factsweep \(arguments.joined(separator: " ")): \(result.stderr)") }
        return result
    }
}

struct KeyTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
