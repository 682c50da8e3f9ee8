// RunStore asha: what the asha stopping rule reads (its condition's values at
// a rung, which trials are paused there) and writes (a trial paused with its
// checkpoint, promoted back to pending, or stopped once nothing of its
// condition is left to promote it) — docs/schema.md, `stopping_decisions`.
import Foundation
import GRDB
import Trial

/// One trial of a condition at a rung epoch, as the asha rule ranks it.
public struct RungEntry: Sendable, Equatable {
    public var trialKey: String
    public var metrics: RecordedMetrics
    /// The rung the trial is paused at (its newest decision's epoch), nil unless it is paused.
    public var pausedAt: Int?

    public init(trialKey: String, metrics: RecordedMetrics, pausedAt: Int?) {
        self.trialKey = trialKey; self.metrics = metrics; self.pausedAt = pausedAt
    }
}

extension RunTransaction {
    /// Epoch `epoch` of every trial of the condition that has recorded it (any state), in key order, with
    /// the rung each paused one waits at.
    public func rungEntries(sweepID: Int64, condition: String, epoch: Int) throws -> [RungEntry] {
        try operation { db, _ in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT t.key, t.status, e.epoch, e.loss, e.accuracy,
                       (SELECT d.epoch FROM stopping_decisions d WHERE d.trial_key = t.key ORDER BY d.id DESC LIMIT 1) AS decided
                FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
                WHERE t.sweep_id = ? AND t.condition = ? AND e.epoch = ? ORDER BY t.key
                """), arguments: [sweepID, condition, epoch]).map { row in
                RungEntry(trialKey: row["key"], metrics: RunStore.metrics(row),
                          pausedAt: row["status"] == TrialStatus.paused.rawValue ? row["decided"] : nil)
            }
        }
    }

    /// The trial's stored checkpoint epoch (nil: none) — read before a new one is recorded, to know which rungs
    /// the new checkpoint passes.
    public func checkpointEpoch(of trialKey: String) throws -> Int? {
        try operation { db, _ in try TrialState.fetch(db, key: trialKey).checkpointEpoch }
    }

    /// Pauses the trial held by `attemptID` under the asha rule's `decision` (its epoch the rung): its attempt
    /// ends `cancelled` (its worker is told `cancel`), its epochs and checkpoint stay for a promotion to resume
    /// from. Later results of the attempt are stale. `.staleAttempt` when the attempt no longer holds the trial.
    public func pauseTrial(_ trialKey: String, attemptID: AttemptID, decision: StoppingDecision) throws -> AttemptWrite {
        try setAside(trialKey, attemptID: attemptID, decision: decision, as: .paused)
    }

    /// A paused trial back to `pending` under `decision`: the next claim resumes it from its checkpoint (epochs
    /// recorded after the checkpoint are dropped, as on a requeue). False when the trial is not paused.
    @discardableResult
    public func promoteTrial(_ trialKey: String, decision: StoppingDecision) throws -> Bool {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            guard trial.status == .paused else { return false }
            try trial.requeue(in: db, at: now)
            try RunStore.insertDecision(db, trialKey, decision, action: "promote", attemptID: nil, at: now)
            try RunStore.logEvent(db, at: now, kind: "trial-promoted", trialKey: trialKey,
                                  detail: "promoted by the \(decision.rule) rule at rung \(decision.epoch): \(decision.reason)")
            return true
        }
    }

    /// Every paused trial of a condition with no trial left pending, running or stale ends `stopped`: nothing
    /// can report at its rung any more, so nothing can promote it. Its decision keeps the rung it waited at.
    /// Returns the trials stopped.
    public func stopUnpromotablePausedTrials() throws -> [String] {
        try operation { db, now in
            let rows = try Row.fetchAll(db, sql: """
                SELECT t.key, (SELECT d.epoch FROM stopping_decisions d WHERE d.trial_key = t.key ORDER BY d.id DESC LIMIT 1) AS rung
                FROM trials t WHERE t.status = 'paused' AND NOT EXISTS (
                    SELECT 1 FROM trials o WHERE o.sweep_id = t.sweep_id AND o.condition = t.condition
                    AND o.status IN ('pending', 'running', 'stale'))
                ORDER BY t.key
                """)
            for row in rows {
                var trial = try TrialState.fetch(db, key: row["key"])
                let rung: Int = row["rung"] ?? trial.lastEpoch
                let decision = StoppingDecision(rule: "asha", epoch: rung,
                                                reason: "paused at rung \(rung) and not promoted: no trial of its condition is left to run")
                try trial.move(to: .stopped, in: db, at: now)
                try RunStore.insertDecision(db, trial.key, decision, action: "stop", attemptID: nil, at: now)
                try RunStore.logEvent(db, at: now, kind: "trial-stopped", trialKey: trial.key,
                                      detail: "stopped by the asha rule at epoch \(rung): \(decision.reason)")
            }
            return rows.map { $0["key"] }
        }
    }
}
