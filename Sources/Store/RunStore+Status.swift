// RunStore status: reading progress back — the summary, one trial, its attempts.
import Foundation
import GRDB
import Trial

extension RunStore {
    /// Counts per status and per condition, and throughput over the last
    /// `window` seconds (or since the earliest attempt active in them, when
    /// the sweep started later): the inputs of `factsweep status` and its ETA.
    public func status(window: TimeInterval = 600) throws -> RunStatus {
        let now = now
        return try read { db in try RunStatus.read(db, now: now, window: window) }
    }

    /// How many trials have not reached a final state (pending, running or stale), of how many: cheap
    /// enough to ask after every finished trial.
    public func unfinishedTrials() throws -> (unfinished: Int, total: Int) {
        try read { db in
            // A paused trial is unfinished: it may be promoted, or ends stopped (`stopUnpromotablePausedTrials`).
            let unfinished = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM trials WHERE status IN ('pending', 'running', 'stale', 'paused')") ?? 0
            return (unfinished, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM trials") ?? 0)
        }
    }

    /// The trial `key`, or nil.
    public func trial(_ key: String) throws -> StoredTrial? {
        try read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT t.*, s.name AS sweep FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.key = ?
                """, arguments: [key]) else { return nil }
            let statusText: String = row["status"]
            guard let status = TrialStatus(rawValue: statusText) else {
                throw RunStoreError.corruptRow(table: "trials", key: key, reason: "unknown status \(statusText)")
            }
            return StoredTrial(key: key, sweep: row["sweep"], condition: row["condition"], status: status,
                               attempts: row["attempts"], retryLimit: row["retry_limit"],
                               currentAttemptID: row["current_attempt_id"], lastEpoch: row["last_epoch"],
                               epochs: row["epochs"], checkpoint: Self.checkpoint(in: row))
        }
    }

    /// The attempts at trial `key`, oldest first.
    public func attempts(of key: String) throws -> [StoredAttempt] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attempts WHERE trial_key = ? ORDER BY attempt_id", arguments: [key]).map { row in
                let outcomeText: String = row["outcome"]
                guard let outcome = AttemptOutcome(rawValue: outcomeText) else {
                    throw RunStoreError.corruptRow(table: "attempts", key: "\(row["attempt_id"] as AttemptID)", reason: "unknown outcome \(outcomeText)")
                }
                return StoredAttempt(attemptID: row["attempt_id"], workerID: row["worker_id"], startedAt: row["started_at"],
                                     endedAt: row["ended_at"], leaseExpiresAt: row["lease_expires_at"],
                                     resumedFromEpoch: row["resumed_from_epoch"], outcome: outcome, reason: row["reason"])
            }
        }
    }
}

extension RunStatus {
    /// `RunStore.status` on any connection to a run database — the store's, or
    /// a read-only one such as the live dashboard's, which must never write.
    public static func read(_ db: Database, now: Date, window: TimeInterval = 600) throws -> RunStatus {
        var byStatus: [TrialStatus: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM trials GROUP BY status") {
            if let status = TrialStatus(rawValue: row["status"]) { byStatus[status] = row["n"] }
        }
        let conditions = try Row.fetchAll(db, sql: """
            SELECT s.name, t.condition, COUNT(*) AS trials,
                SUM(t.status = 'done') AS done, SUM(t.status IN ('running', 'stale')) AS running,
                SUM(t.status = 'pending') AS pending, SUM(t.status IN ('failed', 'diverged', 'cancelled')) AS ended,
                SUM(t.status = 'stopped') AS stopped,
                SUM(t.last_epoch) AS recorded, SUM(t.epochs) AS planned
            FROM trials t JOIN sweeps s ON s.id = t.sweep_id
            GROUP BY t.sweep_id, t.condition ORDER BY s.id, MIN(t.rowid)
            """).map {
            ConditionProgress(sweep: $0["name"], condition: $0["condition"], trials: $0["trials"], done: $0["done"],
                              running: $0["running"], pending: $0["pending"], ended: $0["ended"], stopped: $0["stopped"],
                              epochsRecorded: $0["recorded"], epochsPlanned: $0["planned"])
        }
        // A sweep that started (or restarted) within the window has
        // worked only since then: measure the rate over that span. Epoch 0
        // (the base model's evaluation) trains nothing: not counted.
        let windowStart = now.addingTimeInterval(-max(window, 0))
        let activeSince = try Date.fetchOne(db, sql: """
            SELECT MIN(started_at) FROM attempts WHERE ended_at IS NULL OR ended_at >= ?
            """, arguments: [windowStart])
        let window = now.timeIntervalSince(max(windowStart, activeSince ?? windowStart))
        let recent = try Row.fetchOne(db, sql: """
            SELECT COUNT(*) AS n, AVG(epoch_seconds) AS mean FROM epoch_metrics WHERE recorded_at >= ? AND epoch > 0
            """, arguments: [now.addingTimeInterval(-window)])
        let remaining = try Int.fetchOne(db, sql: """
            SELECT COALESCE(SUM(epochs - last_epoch), 0) FROM trials WHERE status IN ('pending', 'running', 'stale')
            """) ?? 0
        let workers = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM workers WHERE status = 'connected'") ?? 0
        var status = RunStatus(trialsByStatus: byStatus, conditions: conditions, window: window,
                               recentEpochs: recent?["n"] ?? 0, meanRecentEpochSeconds: recent?["mean"],
                               remainingEpochs: remaining, connectedWorkers: workers)
        status.remainingEpochsUnderStoppingRules = try remainingEpochsUnderStoppingRules(db)
        return status
    }

    /// Epochs left to unfinished trials whose condition has a stopping rule
    /// (`sweeps.stopping`, a JSON object keyed by condition). A database from
    /// before v9 has no rules; the dashboard reads such files without migrating.
    private static func remainingEpochsUnderStoppingRules(_ db: Database) throws -> Int {
        guard try RunSchema.has(db, column: "stopping", in: "sweeps") else { return 0 }
        var total = 0
        for row in try Row.fetchAll(db, sql: """
            SELECT s.name, s.stopping, t.condition, SUM(t.epochs - t.last_epoch) AS remaining
            FROM trials t JOIN sweeps s ON s.id = t.sweep_id
            WHERE t.status IN ('pending', 'running', 'stale') AND s.stopping IS NOT NULL
            GROUP BY t.sweep_id, t.condition
            """) {
            let rules = try RunStore.decodeStopping(row["stopping"], sweep: row["name"])
            if rules[row["condition"] as String] != nil { total += row["remaining"] as Int? ?? 0 }
        }
        return total
    }
}
