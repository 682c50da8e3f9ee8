// RunStore audit: the invariants a sweep must keep whatever happens to its
// workers, links and coordinator — every trial ended, every epoch of a trial
// recorded exactly once and in an unbroken run from 1 — read by SQL from the
// run database (the chaos benchmark checks them after the storm).
import Foundation
import GRDB

/// What `RunStore.audit` found.
public struct RunAudit: Sendable, Equatable {
    /// One recorded epoch of one trial.
    public struct TrialEpoch: Hashable, Sendable {
        public var trial: String
        public var epoch: Int
        public init(trial: String, epoch: Int) { self.trial = trial; self.epoch = epoch }
    }

    public var trialsByStatus: [String: Int] = [:]
    public var attemptsByOutcome: [String: Int] = [:]
    /// Trials not in a final state (pending, running, stale, paused).
    public var unfinished = 0
    /// Trials whose recorded epochs are not exactly 1…last_epoch, each once, or `done` ones whose last
    /// epoch is not their planned last: each with what was found. The base model's evaluation (epoch 0,
    /// `eval_epochs` with 0) is no training epoch and is not counted.
    public var brokenEpochs: [String] = []
    public var recorded: Set<TrialEpoch> = []
    /// Trials that ended with a result (`done` or `diverged`): every epoch they acknowledged must be recorded.
    /// (A trial requeued from its checkpoint drops the epochs after it, to be trained again by its next
    /// attempt; one that then fails keeps them dropped.)
    public var completed: Set<String> = []

    public var epochsRecorded: Int { recorded.count }
}

extension RunStore {
    /// Reads the run's invariants (see `RunAudit`).
    public func audit() throws -> RunAudit {
        try read { db in
            var audit = RunAudit()
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM trials GROUP BY status") {
                audit.trialsByStatus[row["status"]] = row["n"]
            }
            for row in try Row.fetchAll(db, sql: "SELECT outcome, COUNT(*) AS n FROM attempts GROUP BY outcome") {
                audit.attemptsByOutcome[row["outcome"]] = row["n"]
            }
            audit.unfinished = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM trials WHERE status NOT IN ('done', 'failed', 'diverged', 'cancelled', 'stopped')
                """) ?? 0
            audit.brokenEpochs = try Row.fetchAll(db, sql: """
                SELECT t.key, t.status, t.epochs, t.last_epoch, COUNT(e.epoch) AS rows, COUNT(DISTINCT e.epoch) AS distinct_epochs,
                       COALESCE(MIN(e.epoch), 0) AS first, COALESCE(MAX(e.epoch), 0) AS last
                FROM trials t LEFT JOIN epoch_metrics e ON e.trial_key = t.key AND e.epoch > 0
                GROUP BY t.key
                HAVING rows != t.last_epoch OR distinct_epochs != rows OR last != t.last_epoch OR (rows > 0 AND first != 1)
                    OR (t.status = 'done' AND t.last_epoch != t.epochs)
                """).map { row in
                "\(row["key"] as String) (\(row["status"] as String)): \(row["rows"] as Int) rows, epochs \(row["first"] as Int)…\(row["last"] as Int), "
                    + "last_epoch \(row["last_epoch"] as Int) of \(row["epochs"] as Int)"
            }
            audit.completed = Set(try String.fetchAll(db, sql: "SELECT key FROM trials WHERE status IN ('done', 'diverged')"))
            for row in try Row.fetchAll(db, sql: "SELECT trial_key, epoch FROM epoch_metrics") {
                audit.recorded.insert(.init(trial: row["trial_key"], epoch: row["epoch"]))
            }
            return audit
        }
    }
}
