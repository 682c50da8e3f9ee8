// TrialState: the columns of a trial that the store's rules look at, and the
// one place where a trial's status changes (so every change is checked).
import Foundation
import GRDB
import Trial

/// A trial's row as the state machine sees it.
struct TrialState: Sendable {
    var key: String
    var status: TrialStatus
    var currentAttemptID: AttemptID?
    var lastEpoch: Int
    var checkpointEpoch: Int?
    var retryLimit: Int
    /// The epochs the trial's configuration plans (`trials.epochs`): a trial is done only with all of them recorded.
    var plannedEpochs: Int
    /// Attempts counted against `retryLimit` since the trial's budget was last fresh (`trials.retries_used`).
    var retriesUsed: Int
    /// The highest epoch ever recorded, rewound epochs included (`trials.epoch_high_water`).
    var epochHighWater: Int

    /// The trial `key`, or `RunStoreError.unknownTrial`.
    static func fetch(_ db: Database, key: String) throws -> TrialState {
        let sql = """
            SELECT status, current_attempt_id, last_epoch, checkpoint_epoch, retry_limit, epochs, retries_used, epoch_high_water
            FROM trials WHERE key = ?
            """
        guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: [key]) else {
            throw RunStoreError.unknownTrial(key: key)
        }
        let statusText: String = row["status"]
        guard let status = TrialStatus(rawValue: statusText) else {
            throw RunStoreError.corruptRow(table: "trials", key: key, reason: "unknown status \(statusText)")
        }
        return TrialState(key: key, status: status, currentAttemptID: row["current_attempt_id"],
                          lastEpoch: row["last_epoch"], checkpointEpoch: row["checkpoint_epoch"],
                          retryLimit: row["retry_limit"], plannedEpochs: row["epochs"],
                          retriesUsed: row["retries_used"], epochHighWater: row["epoch_high_water"])
    }

    /// Whether `attemptID` may write: it is the current attempt of a running trial.
    func isHeld(by attemptID: AttemptID) -> Bool {
        status == .running && currentAttemptID == attemptID
    }

    /// Moves the trial to `next`, or throws `invalidTransition`. The store changes `trials.status` here
    /// and nowhere else (a new trial starts as `pending`, the column's default).
    mutating func move(to next: TrialStatus, in db: Database, at now: Date) throws {
        guard status.canMove(to: next) else {
            throw RunStoreError.invalidTransition(trial: key, from: status, to: next)
        }
        try db.executeCached(sql: "UPDATE trials SET status = ?, updated_at = ? WHERE key = ?",
                       arguments: [next.rawValue, now, key])
        status = next
    }

    /// The user's `factsweep retry`: a failed or cancelled trial — final for workers and the coordinator —
    /// goes back to pending, resuming from its checkpoint. The one move out of a final state.
    mutating func reopen(in db: Database, at now: Date) throws {
        guard status == .failed || status == .cancelled else {
            throw RunStoreError.invalidTransition(trial: key, from: status, to: .pending)
        }
        try db.executeCached(sql: "UPDATE trials SET status = 'pending', updated_at = ? WHERE key = ?", arguments: [now, key])
        status = .pending
        try rewindToCheckpoint(in: db, at: now)
    }

    /// Ends the current attempt with `outcome`.
    func endCurrentAttempt(_ outcome: AttemptOutcome, reason: String?, in db: Database, at now: Date) throws {
        guard let currentAttemptID else { return }
        try db.executeCached(sql: """
            UPDATE attempts SET outcome = ?, ended_at = ?, reason = ? WHERE attempt_id = ? AND outcome = 'running'
            """, arguments: [outcome.rawValue, now, reason, currentAttemptID])
    }

    /// Back to pending: epochs after the checkpoint are dropped, because the
    /// next attempt resumes from the checkpoint and records them again; the
    /// curve then comes from one line of training state.
    mutating func requeue(in db: Database, at now: Date) throws {
        try move(to: .pending, in: db, at: now)
        try rewindToCheckpoint(in: db, at: now)
    }

    private mutating func rewindToCheckpoint(in db: Database, at now: Date) throws {
        let resume = checkpointEpoch ?? 0
        guard lastEpoch > resume else { return }
        try db.executeCached(sql: "DELETE FROM epoch_metrics WHERE trial_key = ? AND epoch > ?", arguments: [key, resume])
        try db.executeCached(sql: "UPDATE trials SET last_epoch = ? WHERE key = ?", arguments: [resume, key])
        try RunStore.logEvent(db, at: now, kind: "rewound", trialKey: key,
                              detail: "dropped epochs \(resume + 1) to \(lastEpoch); resuming from epoch \(resume)")
        lastEpoch = resume
    }
}
