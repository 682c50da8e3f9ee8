// ClaimedTrial: what a worker receives when it gets a trial,
// including where to resume from.
import Foundation
import Trial

/// A trial handed to a worker: everything it needs to start or resume.
public struct ClaimedTrial: Sendable, Equatable {
    public var key: String
    public var condition: String
    public var config: TrialConfig
    /// Identifies this attempt in every later message; only it may write.
    public var attemptID: AttemptID
    /// Resume from here; nil: start from the base model.
    public var checkpoint: CheckpointRef?
    /// The first epoch the store will accept from this attempt.
    public var nextEpoch: Int
}

/// The answer to a worker that re-announces an attempt after a coordinator restart.
public enum Readoption: Sendable, Equatable {
    /// The attempt still holds the trial; continue and send `nextEpoch` next.
    case adopted(nextEpoch: Int)
    /// The attempt no longer holds the trial (requeued, finished or
    /// cancelled meanwhile): drop it. `status` is the trial's status now.
    case refused(status: TrialStatus)
}

/// The answer to a write from an attempt (epoch, questions, checkpoint,
/// finish, release). A worker can cause each of these in normal operation
/// (resends, a lost lease, a restart), so they are values, not errors.
public enum AttemptWrite: Sendable, Equatable {
    case accepted
    /// Already recorded; nothing changed (a resend).
    case duplicate
    /// This attempt does not hold the trial (another attempt does, or the
    /// trial is no longer running): the worker should stop working on it.
    case staleAttempt(current: AttemptID?)
    /// The write skips ahead: the store expects `expected` first.
    case gap(expected: Int)
}

/// A trial whose lease ran out, and where it went.
public struct RequeuedTrial: Sendable, Equatable {
    public var key: String
    public var lostAttemptID: AttemptID
    /// `pending` (retries left) or `failed` (over the retry limit).
    public var status: TrialStatus
}
