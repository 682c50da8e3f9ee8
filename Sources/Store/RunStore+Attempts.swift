// RunStore attempts: handing trials to workers and taking them back — claim,
// start, finish, release, cancel.
import Foundation
import GRDB
import Trial

extension RunTransaction {
    /// Gives `workerID` the next pending trial and starts an attempt on it,
    /// or returns nil when none is pending.
    ///
    /// Order: trials on one of `preferredStorages` first (the worker has
    /// that model loaded in the storage the trial trains on), then on one of
    /// `preferredModels` (the worker has the file loaded, perhaps in another
    /// storage, and in the page cache), then the least advanced (requeued
    /// trials resume after new ones have caught up), then the condition with
    /// the fewest trials started so far — so that conditions progress
    /// together and a partial sweep already compares every arm — then
    /// insertion order. Trials in `excluded` are skipped (the worker's build
    /// refused them). The lists are bound as one JSON parameter each
    /// (`jsonList`): a hello listing more models than SQLite takes parameters
    /// (32,766) stopped the coordinator when each model was one.
    public func claimNextTrial(for workerID: String, preferring preferredModels: [String] = [],
                               preferringStorages preferredStorages: [(model: String, storage: LinearStorage)] = [],
                               excluding excluded: Set<String> = []) throws -> ClaimedTrial? {
        let storageKeys = Set(preferredStorages.map { RunStore.storageKey(model: $0.model, storage: $0.storage) })
        return try operation { db, now in
            try RunStore.requireWorker(db, workerID)
            let request = SQLRequest<String>(literal: """
                WITH started AS (
                    SELECT sweep_id, condition, SUM(status <> 'pending' OR attempts > 0) AS count
                    FROM trials GROUP BY sweep_id, condition)
                SELECT t.key FROM trials t INDEXED BY trials_claim_order JOIN started s USING (sweep_id, condition)
                WHERE t.status = 'pending' AND (t.not_before IS NULL OR t.not_before <= \(now))
                  AND t.key NOT IN (SELECT value FROM json_each(\(RunStore.jsonList(excluded))))
                ORDER BY t.storage || ':' || t.model IN (SELECT value FROM json_each(\(RunStore.jsonList(storageKeys)))) DESC,
                    t.model IN (SELECT value FROM json_each(\(RunStore.jsonList(Set(preferredModels))))) DESC,
                    t.last_epoch, s.count, t.rowid
                LIMIT 1
                """, cached: true)
            guard let key = try request.fetchOne(db) else { return nil }
            return try startAttempt(db, trialKey: key, workerID: workerID, at: now)
        }
    }

    /// Starts an attempt of `workerID` on the pending trial `trialKey` (the
    /// coordinator's own choice, bypassing the claim order).
    public func startAttempt(trialKey: String, workerID: String) throws -> ClaimedTrial {
        try operation { db, now in
            try RunStore.requireWorker(db, workerID)
            return try startAttempt(db, trialKey: trialKey, workerID: workerID, at: now)
        }
    }

    private func startAttempt(_ db: Database, trialKey: String, workerID: String, at now: Date) throws -> ClaimedTrial {
        var trial = try TrialState.fetch(db, key: trialKey)
        try trial.move(to: .running, in: db, at: now)
        // The attempt id is the row's INTEGER key: unique, increasing, and the
        // protocol's `attempt` (docs/protocol.md).
        let resumeEpoch = trial.checkpointEpoch ?? 0
        try db.executeCached(sql: """
            INSERT INTO attempts (trial_key, worker_id, started_at, lease_expires_at, resumed_from_epoch, high_water_at_start)
            VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [trialKey, workerID, now, leaseEnd(from: now), resumeEpoch, trial.epochHighWater])
        let attemptID: AttemptID = db.lastInsertedRowID
        try db.executeCached(sql: "UPDATE trials SET attempts = attempts + 1, current_attempt_id = ? WHERE key = ?",
                             arguments: [attemptID, trialKey])
        try RunStore.logEvent(db, at: now, kind: "attempt-started", trialKey: trialKey, workerID: workerID,
                              detail: "attempt \(attemptID) from epoch \(resumeEpoch)")
        let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT condition, config, checkpoint_epoch, checkpoint_path, checkpoint_blob FROM trials WHERE key = ?
            """), arguments: [trialKey])
        guard let row else { throw RunStoreError.unknownTrial(key: trialKey) }
        let config: TrialConfig
        do {
            config = try JSONDecoder().decode(TrialConfig.self, from: Data((row["config"] as String).utf8))
        } catch {
            throw RunStoreError.corruptRow(table: "trials", key: trialKey, reason: "config: \(error)")
        }
        logger.info("attempt started", metadata: ["trial": "\(trialKey)", "attempt": "\(attemptID)", "worker": "\(workerID)"])
        return ClaimedTrial(key: trialKey, condition: row["condition"], config: config, attemptID: attemptID,
                            checkpoint: RunStore.checkpoint(in: row), nextEpoch: trial.lastEpoch + 1)
    }

    /// Ends the attempt with the worker's verdict. Only the attempt that
    /// holds the trial may finish it; a resent verdict is a duplicate.
    /// `summary` (JSON) is stored with the trial for reports.
    ///
    /// A trial is `done` only with every planned epoch recorded, and
    /// `diverged` only with every epoch up to `throughEpoch` (the summary's
    /// last, whose loss was not finite): a verdict before that is refused as
    /// `.gap` with the epoch the store expects next, and nothing changes (a
    /// reordered link can deliver the verdict before its last epoch). A
    /// failed trial ends where it stopped.
    public func finishTrial(_ trialKey: String, attemptID: AttemptID, result: TrialResult, reason: String? = nil,
                            summary: Data? = nil, throughEpoch: Int? = nil) throws -> AttemptWrite {
        let outcome = try operation { db, now -> AttemptWrite in
            var trial = try TrialState.fetch(db, key: trialKey)
            guard trial.isHeld(by: attemptID) else {
                let resent = trial.currentAttemptID == attemptID && trial.status == result.status
                return resent ? .duplicate : .staleAttempt(current: trial.currentAttemptID)
            }
            let needed = switch result {
            case .done: trial.plannedEpochs
            case .diverged: min(throughEpoch ?? 0, trial.plannedEpochs)
            case .failed, .cancelled: 0
            }
            if trial.lastEpoch < needed { return .gap(expected: trial.lastEpoch + 1) }
            try trial.move(to: result.status, in: db, at: now)
            try trial.endCurrentAttempt(result.outcome, reason: reason, in: db, at: now)
            if let summary {
                try db.executeCached(sql: "UPDATE trials SET summary = ? WHERE key = ?",
                                     arguments: [String(decoding: summary, as: UTF8.self), trialKey])
            }
            try RunStore.logEvent(db, at: now, kind: "trial-\(result.rawValue)", trialKey: trialKey, detail: reason)
            return .accepted
        }
        logger.info("trial finished", metadata: ["trial": "\(trialKey)", "result": "\(result.rawValue)", "write": "\(outcome)"])
        return outcome
    }

    /// The worker hands the trial back without finishing it: stopped from outside (`.interrupted`: shutting
    /// down, preempted; the attempt is `superseded`), or after an error another attempt may not repeat
    /// (`.trialError`; the attempt is `failed`). The trial goes back to pending, resuming from its
    /// checkpoint, or fails once more attempts counted than its retry limit allows (`setBack`).
    public func releaseTrial(_ trialKey: String, attemptID: AttemptID, reason: String? = nil,
                             setback: AttemptSetback = .interrupted) throws -> AttemptWrite {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            let outcome: AttemptOutcome = setback == .interrupted ? .superseded : .failed
            guard trial.isHeld(by: attemptID) else {
                let resent = try RunStore.attemptOutcome(db, attemptID) == outcome
                return resent ? .duplicate : .staleAttempt(current: trial.currentAttemptID)
            }
            _ = try setBack(db, &trial, attemptID: attemptID, outcome: outcome, setback,
                            reason: reason ?? "released by its worker", at: now)
            try RunStore.logEvent(db, at: now, kind: "trial-released", trialKey: trialKey, detail: reason)
            return .accepted
        }
    }

    /// Cancels a trial that has not ended (its attempt, if any, is cancelled
    /// too; its worker learns it from its next write). Cancelling a
    /// cancelled trial does nothing; an ended one is an invalid transition.
    public func cancelTrial(_ trialKey: String, reason: String? = nil) throws {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            if trial.status == .cancelled { return }
            let hadAttempt = trial.status != .pending
            try trial.move(to: .cancelled, in: db, at: now)
            if hadAttempt { try trial.endCurrentAttempt(.cancelled, reason: reason, in: db, at: now) }
            try RunStore.logEvent(db, at: now, kind: "trial-cancelled", trialKey: trialKey, detail: reason)
        }
    }
}

extension RunStore {
    /// `RunTransaction.claimNextTrial` as one transaction.
    public func claimNextTrial(for workerID: String, preferring preferredModels: [String] = [],
                               preferringStorages preferredStorages: [(model: String, storage: LinearStorage)] = [],
                               excluding excluded: Set<String> = []) throws -> ClaimedTrial? {
        try write {
            try $0.claimNextTrial(for: workerID, preferring: preferredModels, preferringStorages: preferredStorages, excluding: excluded)
        }
    }

    /// `RunTransaction.startAttempt` as one transaction.
    public func startAttempt(trialKey: String, workerID: String) throws -> ClaimedTrial {
        try write { try $0.startAttempt(trialKey: trialKey, workerID: workerID) }
    }

    /// `RunTransaction.finishTrial` as one transaction.
    public func finishTrial(_ trialKey: String, attemptID: AttemptID, result: TrialResult, reason: String? = nil,
                            summary: Data? = nil) throws -> AttemptWrite {
        try write { try $0.finishTrial(trialKey, attemptID: attemptID, result: result, reason: reason, summary: summary) }
    }

    /// `RunTransaction.releaseTrial` as one transaction.
    public func releaseTrial(_ trialKey: String, attemptID: AttemptID, reason: String? = nil,
                             setback: AttemptSetback = .interrupted) throws -> AttemptWrite {
        try write { try $0.releaseTrial(trialKey, attemptID: attemptID, reason: reason, setback: setback) }
    }

    /// `RunTransaction.cancelTrial` as one transaction.
    public func cancelTrial(_ trialKey: String, reason: String? = nil) throws {
        try write { try $0.cancelTrial(trialKey, reason: reason) }
    }

    /// The checkpoint columns of a trial row, if any.
    static func checkpoint(in row: Row) -> CheckpointRef? {
        guard let epoch: Int = row["checkpoint_epoch"] else { return nil }
        if let path: String = row["checkpoint_path"] { return CheckpointRef(epoch: epoch, location: .path(path)) }
        if let blob: Data = row["checkpoint_blob"] { return CheckpointRef(epoch: epoch, location: .inline(blob)) }
        return nil
    }

    static func attemptOutcome(_ db: Database, _ attemptID: AttemptID) throws -> AttemptOutcome? {
        try String.fetchOne(db, sql: "SELECT outcome FROM attempts WHERE attempt_id = ?", arguments: [attemptID])
            .flatMap(AttemptOutcome.init(rawValue:))
    }

    /// A model in a storage as the claim query compares it with a trial row (`storage || ':' || model`):
    /// the storage names hold no colon, so the first one ends it.
    static func storageKey(model: String, storage: LinearStorage) -> String { storage.rawValue + ":" + model }

    /// `keys` as one JSON array, bound as a single parameter and read with `json_each`: the statement's
    /// text stays the same whatever their number, so the statement cache holds one statement, and no
    /// count of keys reaches SQLite's limit on parameters.
    static func jsonList(_ keys: Set<String>) -> String {
        // Every claim binds one; almost always empty.
        guard !keys.isEmpty else { return "[]" }
        let data = (try? JSONEncoder().encode(keys.sorted())) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func requireWorker(_ db: Database, _ workerID: String) throws {
        guard try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM workers WHERE id = ?)"), arguments: [workerID]) == true
        else { throw RunStoreError.unknownWorker(id: workerID) }
    }
}
