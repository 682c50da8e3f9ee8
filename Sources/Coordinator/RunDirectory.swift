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

    /// Adds the plan's trials; returns how many were new. Refuses first, adding nothing, a run that a
    /// newer factsweep filled with settings this build does not read: in trials that may still be handed
    /// out (this build would assign them without those settings) or in another sweep's stopping rules
    /// (it would apply them without those members). The plan's own sweep is not checked: submitting it
    /// replaces its rules with the ones this build read from the spec.
    @discardableResult
    public func submit(_ plan: SweepPlan, spec: Data, to store: RunStore) throws -> AddedSweep {
        // The plan's trials stored as this build stores them need no decoding to be checked.
        let known = Dictionary(plan.trials.map { ($0.key, $0.canonicalConfig) }, uniquingKeysWith: { first, _ in first })
        let trials = try store.trialsWithUnreadSettings(limit: 4, known: known)
        let sweeps = try store.sweepsWithUnreadStopping(besides: plan.name)
        if !trials.isEmpty || !sweeps.isEmpty {
            var named = trials.prefix(3).map { "trial \($0.trial.prefix(12)): \($0.settings.prefix(4).joined(separator: ", "))" }
            if trials.count > 3 { named.append("more trials") }
            named += sweeps.prefix(3).map { "sweep \($0.sweep)'s stopping rules: \($0.settings.prefix(4).joined(separator: ", "))" }
            if sweeps.count > 3 { named.append("more sweeps") }
            throw CoordinatorError("\(store.path) holds settings this factsweep does not read (\(named.joined(separator: "; "))): "
                                   + "a newer factsweep stored them, and this one would run the sweep without them; run the newer build")
        }
        return try store.addSweep(name: plan.name, spec: spec,
                           trials: plan.trials.map { SweepTrial(key: $0.key, condition: $0.condition, config: $0.config,
                                                                 canonicalConfig: $0.canonicalConfig) },
                           stopping: plan.stopping)
    }
}
