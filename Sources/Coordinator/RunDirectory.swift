// RunDirectory: the files of one run — the database, checkpoints, logs — and
// adding a sweep plan to it (idempotently: resubmitting adds only new trials).
import Foundation
import Logging
import Store
import Trial

/// A run directory: `run.db`, `checkpoints/`, `logs/`, `coordinator-stats.json`.
public struct RunDirectory: Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public var database: URL { url.appendingPathComponent("run.db") }
    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    public var logs: URL { url.appendingPathComponent("logs") }
    /// The coordinator's figures of its last serve (CoordinatorStatistics), written when it ends.
    public var statistics: URL { url.appendingPathComponent("coordinator-stats.json") }

    /// Creates the folders and opens (or creates) the database.
    public func open(leaseDuration: TimeInterval, retryBackoff: RetryBackoff = RetryBackoff(), logger: Logger,
                     mustExist: Bool = false) throws -> RunStore {
        if !mustExist {
            for dir in [url, checkpoints, logs] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        }
        return try RunStore(path: database.path, mustExist: mustExist, leaseDuration: leaseDuration,
                            retryBackoff: retryBackoff, logger: logger)
    }

    /// Adds the plan's trials; returns how many were new. Refuses first, adding nothing, a run whose
    /// trials that may still be handed out a newer factsweep stored with settings this build does not
    /// read: a coordinator of this build would assign them without those settings.
    @discardableResult
    public func submit(_ plan: SweepPlan, spec: Data, to store: RunStore) throws -> AddedSweep {
        let unread = try store.trialsWithUnreadSettings(limit: 4)
        if !unread.isEmpty {
            let named = unread.prefix(3).map { "trial \($0.trial.prefix(12)): \($0.settings.prefix(4).joined(separator: ", "))" }
            throw CoordinatorError("\(store.path) holds trials with settings this factsweep does not read (\(named.joined(separator: "; "))"
                                   + "\(unread.count > 3 ? "; and more" : "")): a newer factsweep stored them, and this one would assign "
                                   + "them without those settings; run the newer build")
        }
        return try store.addSweep(name: plan.name, spec: spec,
                           trials: plan.trials.map { SweepTrial(key: $0.key, condition: $0.condition, config: $0.config) },
                           stopping: plan.stopping)
    }
}
