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

    /// Adds the plan's trials; returns how many were new.
    @discardableResult
    public func submit(_ plan: SweepPlan, spec: Data, to store: RunStore) throws -> AddedSweep {
        try store.addSweep(name: plan.name, spec: spec,
                           trials: plan.trials.map { SweepTrial(key: $0.key, condition: $0.condition, config: $0.config) },
                           stopping: plan.stopping)
    }
}
