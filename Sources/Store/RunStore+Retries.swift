// RunStore retries: what an attempt that did not finish its trial costs the
// trial. An attempt counts against the retry limit when it ended without
// moving the trial on (no new epoch, no new checkpoint) or with an error of
// the trial's own; a counted attempt delays the next one (exponential back-off,
// stored so that a restarted coordinator keeps it). A trial that keeps making
// progress is never failed because its workers die. Also the user's `retry`.
import Foundation
import GRDB
import Trial

/// The wait before a trial's next attempt after one that counted against its retry limit: `initial`
/// after the first counted attempt, doubled for each further one, at most `maximum`.
public struct RetryBackoff: Sendable, Equatable {
    public var initial: TimeInterval
    public var maximum: TimeInterval

    public init(initial: TimeInterval = 5, maximum: TimeInterval = 300) {
        self.initial = initial; self.maximum = maximum
    }

    /// The back-off after `counted` attempts counted against the limit (none: no wait).
    public func delay(afterCounted counted: Int) -> TimeInterval {
        guard counted > 0 else { return 0 }
        var delay = initial
        for _ in 1..<counted where delay < maximum { delay *= 2 }
        return min(delay, maximum)
    }
}

/// How an attempt ended without finishing its trial — what decides whether it counts against the retry limit.
public enum AttemptSetback: Sendable, Equatable {
    /// Stopped from outside: its worker vanished, was preempted or shut down, or handed the trial back.
    /// Counted only when the attempt made no progress.
    case interrupted
    /// The trial itself raised an error that another attempt may not repeat: always counted.
    case trialError
    /// Its worker refused the assignment for settings its build does not read (protocol version 4), while
    /// another connected worker may read them: never counted and no back-off, for the fault is that
    /// worker's build, not the trial's. The coordinator no longer offers the trial to that worker.
    case unreadSettings
}

extension RunTransaction {
    /// Ends `trial`'s current attempt `attemptID` with `outcome` and puts the trial back: pending again
    /// (after the back-off when the attempt counted), or failed once more attempts counted than its
    /// retry limit allows.
    func setBack(_ db: Database, _ trial: inout TrialState, attemptID: AttemptID, outcome: AttemptOutcome,
                 _ setback: AttemptSetback, reason: String, at now: Date) throws -> RequeuedTrial {
        let counted = switch setback {
        case .trialError: true
        case .interrupted: try !Self.progressed(db, trial, attemptID: attemptID)
        case .unreadSettings: false
        }
        try trial.endCurrentAttempt(outcome, reason: reason, in: db, at: now)
        if setback == .unreadSettings {
            try db.executeCached(sql: "UPDATE attempts SET refused = 1 WHERE attempt_id = ?", arguments: [attemptID])
        }
        if counted {
            trial.retriesUsed += 1
            try db.executeCached(sql: "UPDATE attempts SET charged = 1 WHERE attempt_id = ?", arguments: [attemptID])
            try db.executeCached(sql: "UPDATE trials SET retries_used = ? WHERE key = ?", arguments: [trial.retriesUsed, trial.key])
        }
        let key = trial.key
        if trial.retriesUsed > trial.retryLimit {
            try trial.move(to: .failed, in: db, at: now)
            try RunStore.logEvent(db, at: now, kind: "trial-failed", trialKey: key,
                                  detail: "\(trial.retriesUsed) attempts counted against retry limit \(trial.retryLimit); the last: \(reason)")
        } else {
            try trial.requeue(in: db, at: now)
            let wait = counted ? store.retryBackoff.delay(afterCounted: trial.retriesUsed) : 0
            try db.executeCached(sql: "UPDATE trials SET not_before = ? WHERE key = ?",
                                 arguments: [wait > 0 ? now.addingTimeInterval(wait) : nil, key])
            let cost = counted ? "counted (\(trial.retriesUsed) of retry limit \(trial.retryLimit)), next attempt in \(wait) s"
                : setback == .unreadSettings ? "its worker's build does not read the assignment, not counted"
                : "made progress, not counted"
            try RunStore.logEvent(db, at: now, kind: "trial-requeued", trialKey: key,
                                  detail: "attempt \(attemptID) \(outcome.rawValue) (\(reason)); \(cost)")
        }
        return RequeuedTrial(key: key, lostAttemptID: attemptID, status: trial.status)
    }

    /// Whether the attempt moved the trial on: an epoch beyond any recorded before it started, or a
    /// checkpoint newer than the one it resumed from. (Epochs it redid after a rewind are not progress.)
    private static func progressed(_ db: Database, _ trial: TrialState, attemptID: AttemptID) throws -> Bool {
        let sql = "SELECT high_water_at_start, resumed_from_epoch FROM attempts WHERE attempt_id = ?"
        guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: [attemptID]) else { return false }
        return trial.epochHighWater > row["high_water_at_start"] || (trial.checkpointEpoch ?? 0) > row["resumed_from_epoch"]
    }

    /// The user asks for another go: a failed or cancelled trial goes back to pending (resuming from its
    /// checkpoint), and a pending one waits no longer; either way with a fresh retry budget. A running,
    /// stale, done or diverged trial is an invalid transition.
    public func retryTrial(_ trialKey: String) throws {
        try operation { db, now in
            var trial = try TrialState.fetch(db, key: trialKey)
            let from = trial.status
            if from != .pending { try trial.reopen(in: db, at: now) }
            try db.executeCached(sql: "UPDATE trials SET retries_used = 0, not_before = NULL WHERE key = ?", arguments: [trialKey])
            try RunStore.logEvent(db, at: now, kind: "trial-retried", trialKey: trialKey,
                                  detail: "by the user, from \(from.rawValue), with a fresh retry budget")
        }
    }

    /// The trial's status now.
    public func status(ofTrial trialKey: String) throws -> TrialStatus {
        try TrialState.fetch(db, key: trialKey).status
    }
}

extension RunStore {
    /// `RunTransaction.retryTrial` as one transaction.
    public func retryTrial(_ trialKey: String) throws {
        try write { try $0.retryTrial(trialKey) }
    }
}
