// RunStore leases: an attempt holds its trial only while its worker keeps
// reporting; expired leases requeue the trial, and after a coordinator
// restart a worker can re-adopt the attempt it is still running.
import Foundation
import GRDB
import Logging
import Trial

extension RunTransaction {
    /// Requeues every running or stale trial whose attempt's lease has run
    /// out: the attempt is `lost`; the trial goes back to pending (resuming
    /// from its checkpoint), or to failed once more attempts counted than its
    /// retry limit allows (`setBack`). Call it periodically.
    public func requeueExpiredLeases() throws -> [RequeuedTrial] {
        let requeued = try operation { db, now in
            let expired = try Row.fetchAll(db, sql: """
                SELECT t.key, a.attempt_id FROM trials t JOIN attempts a ON a.attempt_id = t.current_attempt_id
                WHERE t.status IN ('running', 'stale') AND a.lease_expires_at < ?
                """, arguments: [now])
            return try expired.map { row in
                try loseAttempt(db, trialKey: row["key"], attemptID: row["attempt_id"], reason: "lease expired", at: now)
            }
        }
        for trial in requeued {
            logger.warning("lease expired", metadata: ["trial": "\(trial.key)", "attempt": "\(trial.lostAttemptID)",
                                                       "now": "\(trial.status.rawValue)"])
        }
        return requeued
    }

    /// A worker introduced itself holding only `held`: every other attempt
    /// the store has it running (an `assign` lost on the way, a trial it
    /// dropped while disconnected) is lost now, without waiting for its lease.
    public func requeueAttemptsNotHeld(by workerID: String, held: Set<AttemptID>) throws -> [RequeuedTrial] {
        try loseAttempts(of: workerID, where: { !held.contains($0) }, reason: "worker \(workerID) does not hold it",
                         log: "attempt not held by its worker")
    }

    /// `attemptIDs` were assigned to `workerID`, which reports free slots and does not name them: their
    /// `assign` was lost on the way. Each that is still its trial's current, running attempt on that
    /// worker is lost now (as at a hello without them), without waiting for its lease.
    public func requeueUnstartedAttempts(_ attemptIDs: Set<AttemptID>, of workerID: String) throws -> [RequeuedTrial] {
        guard !attemptIDs.isEmpty else { return [] }
        return try loseAttempts(of: workerID, where: { attemptIDs.contains($0) },
                                reason: "worker \(workerID) never started it (assign lost)", log: "assign lost")
    }

    /// Loses the current attempts of running or stale trials that `workerID` holds and `selected` picks.
    private func loseAttempts(of workerID: String, where selected: (AttemptID) -> Bool, reason: String,
                              log message: Logger.Message) throws -> [RequeuedTrial] {
        let requeued = try operation { db, now in
            let running = try Row.fetchAll(db, sql: """
                SELECT t.key, a.attempt_id FROM trials t JOIN attempts a ON a.attempt_id = t.current_attempt_id
                WHERE t.status IN ('running', 'stale') AND a.worker_id = ?
                """, arguments: [workerID])
            return try running.filter { selected($0["attempt_id"]) }.map { row in
                try loseAttempt(db, trialKey: row["key"], attemptID: row["attempt_id"], reason: reason, at: now)
            }
        }
        for trial in requeued {
            logger.warning(message, metadata: ["trial": "\(trial.key)", "attempt": "\(trial.lostAttemptID)",
                                               "worker": "\(workerID)", "now": "\(trial.status.rawValue)"])
        }
        return requeued
    }

    /// Ends a trial's current attempt as `lost`; the trial goes back to pending, or to failed once more
    /// attempts counted than its retry limit allows — a lost attempt counts only if it made no progress.
    private func loseAttempt(_ db: Database, trialKey key: String, attemptID: AttemptID, reason: String,
                             at now: Date) throws -> RequeuedTrial {
        var trial = try TrialState.fetch(db, key: key)
        return try setBack(db, &trial, attemptID: attemptID, outcome: .lost, .interrupted, reason: reason, at: now)
    }

    /// Call once when the coordinator starts on an existing database: trials
    /// that were running become stale, and their attempts get a fresh lease
    /// for their workers to re-announce them (`readoptAttempt`); those not
    /// re-announced in time are requeued by `requeueExpiredLeases`. Trials
    /// still stale from an earlier start (that coordinator stopped before their
    /// workers came back) get a fresh lease too: their old one ran out while no
    /// coordinator was there to hear them.
    /// Returns how many trials became stale.
    public func markRunningTrialsStale() throws -> Int {
        try operation { db, now in
            var running: [String] = []
            for key in try String.fetchAll(db, sql: "SELECT key FROM trials WHERE status IN ('running', 'stale')") {
                var trial = try TrialState.fetch(db, key: key)
                if trial.status == .running {
                    try trial.move(to: .stale, in: db, at: now)
                    running.append(key)
                }
                if let attemptID = trial.currentAttemptID { try renewLease(db, attemptID: attemptID, at: now) }
            }
            if !running.isEmpty {
                try RunStore.logEvent(db, at: now, kind: "coordinator-restarted", detail: "\(running.count) running trials marked stale")
            }
            return running.count
        }
    }

    /// A worker re-announces `attemptID` after a coordinator restart (or a
    /// reconnect). The attempt keeps the trial if it still holds it and
    /// belongs to that worker; otherwise the worker must drop it.
    public func readoptAttempt(_ attemptID: AttemptID, trialKey: String, workerID: String) throws -> Readoption {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            let owner = try String.fetchOne(db, sql: "SELECT worker_id FROM attempts WHERE attempt_id = ?", arguments: [attemptID])
            guard trial.currentAttemptID == attemptID, owner == workerID,
                  trial.status == .stale || trial.status == .running
            else { return .refused(status: trial.status) }
            if trial.status == .stale {
                try trial.move(to: .running, in: db, at: now)
                try RunStore.logEvent(db, at: now, kind: "attempt-readopted", trialKey: trialKey, workerID: workerID,
                                      detail: "attempt \(attemptID)")
            }
            try renewLease(db, attemptID: attemptID, at: now)
            return .adopted(nextEpoch: trial.lastEpoch + 1)
        }
    }

    /// Extends an attempt's lease from now.
    func renewLease(_ db: Database, attemptID: AttemptID, at now: Date) throws {
        try db.executeCached(sql: "UPDATE attempts SET lease_expires_at = ? WHERE attempt_id = ?",
                             arguments: [leaseEnd(from: now), attemptID])
    }
}

extension RunStore {
    /// `RunTransaction.requeueExpiredLeases` as one transaction.
    public func requeueExpiredLeases() throws -> [RequeuedTrial] {
        try write { try $0.requeueExpiredLeases() }
    }

    /// `RunTransaction.requeueAttemptsNotHeld` as one transaction.
    public func requeueAttemptsNotHeld(by workerID: String, held: Set<AttemptID>) throws -> [RequeuedTrial] {
        try write { try $0.requeueAttemptsNotHeld(by: workerID, held: held) }
    }

    /// `RunTransaction.markRunningTrialsStale` as one transaction.
    public func markRunningTrialsStale() throws -> Int {
        try write { try $0.markRunningTrialsStale() }
    }

    /// `RunTransaction.readoptAttempt` as one transaction.
    public func readoptAttempt(_ attemptID: AttemptID, trialKey: String, workerID: String) throws -> Readoption {
        try write { try $0.readoptAttempt(attemptID, trialKey: trialKey, workerID: workerID) }
    }
}
