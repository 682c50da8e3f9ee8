// SweepKeys: the CURVE keys of a sweep run on Slurm. The coordinator's bind
// is off loopback, so it needs keys (docs/security.md); the run directory is
// on a filesystem every node shares and only the user can read (0700/0600),
// so the sweep makes its own pair for the coordinator and one for its
// workers, allow-lists the workers' key, and publishes the coordinator's
// public key in RUN/coordinator.json. Made once; a resubmission reuses them.
import Coordinator
import Foundation
import Protocol

enum SweepKeys {
    static func folder(_ run: RunDirectory) -> URL { run.url.appendingPathComponent("keys") }
    static func workerKey(_ run: RunDirectory) -> URL { folder(run).appendingPathComponent("workers.key") }

    /// The coordinator's key file and allow-list, made (with the workers' key) when missing.
    static func ensure(_ run: RunDirectory) throws -> (coordinatorKey: URL, allowList: URL) {
        let folder = folder(run)
        let coordinatorKey = folder.appendingPathComponent("coordinator.key")
        let allowList = folder.appendingPathComponent("allowed-workers")
        if !FileManager.default.fileExists(atPath: coordinatorKey.path) {
            _ = try KeyFiles.create(try CurveKeyPair.generate(), name: "coordinator", in: folder)
        }
        if !FileManager.default.fileExists(atPath: workerKey(run).path) {
            _ = try KeyFiles.create(try CurveKeyPair.generate(), name: "workers", in: folder)
        }
        var list = try AllowList.read(allowList, missingIsEmpty: true)
        if list.allow(try KeyFiles.readKeyPair(workerKey(run)).publicKey, name: "workers") { try list.write(to: allowList) }
        return (coordinatorKey, allowList)
    }
}
