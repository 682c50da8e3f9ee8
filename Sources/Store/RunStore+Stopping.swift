// RunStore stopping: what the coordinator's stopping rules read (a trial's
// rule and recorded metrics, its condition's metrics at an epoch) and write
// (a trial stopped, with its decision) — docs/schema.md, `stopping_decisions`.
import Foundation
import GRDB
import Trial

/// The metrics recorded for one epoch of a trial, as a stopping rule reads them.
public struct RecordedMetrics: Sendable, Equatable {
    public var epoch: Int
    /// nil for epoch 0 (no training) and a non-finite loss.
    public var loss: Double?
    /// nil at an epoch that was not evaluated.
    public var accuracy: Double?

    public init(epoch: Int, loss: Double?, accuracy: Double?) {
        self.epoch = epoch; self.loss = loss; self.accuracy = accuracy
    }

    public func value(of metric: StoppingMetric) -> Double? {
        switch metric {
        case .loss: loss
        case .accuracy: accuracy
        }
    }
}

/// A running trial under a stopping rule, as the coordinator sees it when one of its epochs is recorded.
public struct StoppingSubject: Sendable, Equatable {
    public var trialKey: String
    public var sweepID: Int64
    public var condition: String
    public var plannedEpochs: Int
    public var rule: StoppingRule
}

extension RunTransaction {
    /// The trial's stopping rule, if its condition has one and the trial is held by `attemptID`; nil otherwise.
    public func stoppingSubject(_ trialKey: String, attemptID: AttemptID) throws -> StoppingSubject? {
        try operation { db, _ in
            let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT t.sweep_id, t.condition, t.epochs, t.status, t.current_attempt_id, s.stopping
                FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE t.key = ?
                """), arguments: [trialKey])
            guard let row, let text: String = row["stopping"], row["status"] == TrialStatus.running.rawValue,
                  row["current_attempt_id"] == attemptID else { return nil }
            let rules = try RunStore.decodeStopping(text, sweep: "\(row["sweep_id"] as Int64)")
            guard let rule = rules[row["condition"]] else { return nil }
            return StoppingSubject(trialKey: trialKey, sweepID: row["sweep_id"], condition: row["condition"],
                                   plannedEpochs: row["epochs"], rule: rule)
        }
    }

    /// Every recorded epoch of the trial, in order.
    public func recordedMetrics(of trialKey: String) throws -> [RecordedMetrics] {
        try operation { db, _ in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT epoch, loss, accuracy FROM epoch_metrics WHERE trial_key = ? ORDER BY epoch"),
                             arguments: [trialKey]).map(RunStore.metrics)
        }
    }

    /// Epoch `epoch` of the condition's other trials that have recorded it (any state: a stopped trial's
    /// epochs stay), in key order.
    public func conditionMetrics(sweepID: Int64, condition: String, epoch: Int, excluding trialKey: String) throws -> [RecordedMetrics] {
        try operation { db, _ in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT e.epoch, e.loss, e.accuracy FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
                WHERE t.sweep_id = ? AND t.condition = ? AND e.epoch = ? AND t.key <> ? ORDER BY t.key
                """), arguments: [sweepID, condition, epoch, trialKey]).map(RunStore.metrics)
        }
    }

    /// Ends the trial held by `attemptID` as `stopped` under `decision`: its attempt ends `cancelled` (its
    /// worker is told `cancel`), its recorded epochs stay, and the decision is stored. A later result of
    /// the attempt is stale (`drop`). Returns `.staleAttempt` when the attempt no longer holds the trial.
    public func stopTrial(_ trialKey: String, attemptID: AttemptID, decision: StoppingDecision) throws -> AttemptWrite {
        try setAside(trialKey, attemptID: attemptID, decision: decision, as: .stopped)
    }

    /// Moves the trial held by `attemptID` to `status` (`stopped`, or `paused` by the asha rule) under
    /// `decision`, ending its attempt `cancelled` and storing the decision, in one transaction.
    func setAside(_ trialKey: String, attemptID: AttemptID, decision: StoppingDecision, as status: TrialStatus) throws -> AttemptWrite {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            guard trial.isHeld(by: attemptID) else { return .staleAttempt(current: trial.currentAttemptID) }
            let paused = status == .paused
            let reason = paused ? "paused by the \(decision.rule) rule at rung \(decision.epoch): \(decision.reason)"
                : "stopped by the \(decision.rule) rule at epoch \(decision.epoch): \(decision.reason)"
            try trial.move(to: status, in: db, at: now)
            try trial.endCurrentAttempt(.cancelled, reason: reason, in: db, at: now)
            try RunStore.insertDecision(db, trialKey, decision, action: paused ? "pause" : "stop", attemptID: attemptID, at: now)
            try RunStore.logEvent(db, at: now, kind: paused ? "trial-paused" : "trial-stopped", trialKey: trialKey, detail: reason)
            return .accepted
        }
    }
}

extension RunStore {
    /// Each trial's newest stored stopping decision (a stop or a pause; a trial whose newest is a promotion
    /// runs on and has none), by trial key.
    public func stoppingDecisions() throws -> [String: StoppingDecision] {
        try read { try Self.stoppingDecisions($0) }
    }

    /// The stored decisions in `db` (a reader's own connection: the report and the dashboard), by trial key;
    /// empty for a database from before `v9-stopping-decisions`.
    public static func stoppingDecisions(_ db: Database) throws -> [String: StoppingDecision] {
        guard try db.tableExists("stopping_decisions") else { return [:] }
        var decisions: [String: StoppingDecision] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT trial_key, rule, action, epoch, reason FROM stopping_decisions ORDER BY id") {
            decisions[row["trial_key"]] = row["action"] == "promote"
                ? nil : StoppingDecision(rule: row["rule"], epoch: row["epoch"], reason: row["reason"])
        }
        return decisions
    }

    /// The stopping rules stored with the sweep `name`, by condition (empty when it has none).
    public func stoppingRules(ofSweep name: String) throws -> [String: StoppingRule] {
        try read { db in
            guard let text = try String.fetchOne(db, sql: "SELECT stopping FROM sweeps WHERE name = ?", arguments: [name]) else { return [:] }
            return try Self.decodeStopping(text, sweep: name)
        }
    }

    /// `sweeps.stopping` as written by `addSweep`: sorted keys, so that the same rules give the same text.
    static func encodeStopping(_ rules: [String: StoppingRule]) throws -> String? {
        guard !rules.isEmpty else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(rules), as: UTF8.self)
    }

    static func decodeStopping(_ text: String, sweep: String) throws -> [String: StoppingRule] {
        do {
            return try JSONDecoder().decode([String: StoppingRule].self, from: Data(text.utf8))
        } catch {
            throw RunStoreError.corruptRow(table: "sweeps", key: sweep,
                                           reason: "stopping does not decode in this build (a newer factsweep may have written it): \(error)")
        }
    }

    /// One row of `stopping_decisions`; `attemptID` nil for a promotion and for a paused trial's stop.
    static func insertDecision(_ db: Database, _ trialKey: String, _ decision: StoppingDecision, action: String,
                               attemptID: AttemptID?, at now: Date) throws {
        try db.executeCached(sql: """
            INSERT INTO stopping_decisions (trial_key, rule, action, epoch, reason, attempt_id, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [trialKey, decision.rule, action, decision.epoch, decision.reason, attemptID, now])
    }

    static func metrics(_ row: Row) -> RecordedMetrics {
        RecordedMetrics(epoch: row["epoch"], loss: row["loss"], accuracy: row["accuracy"])
    }
}
