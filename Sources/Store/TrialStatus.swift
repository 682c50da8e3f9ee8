// TrialStatus and AttemptOutcome: the trial state machine and how one attempt
// at a trial ended, as stored in `trials.status` and `attempts.outcome`.
import Foundation

/// Where a trial stands. The allowed moves are in `canMove(to:)`; the store
/// refuses any other with `RunStoreError.invalidTransition`.
public enum TrialStatus: String, Sendable, Codable, CaseIterable {
    /// Waiting for a worker (new, requeued after a lost attempt, or released).
    case pending
    /// An attempt holds the trial under a lease.
    case running
    /// All epochs recorded and the worker reported success.
    case done
    /// The worker reported an error, or attempts were lost more often than the retry limit allows.
    case failed
    /// Training diverged (non-finite loss); retrying would diverge again.
    case diverged
    /// Stopped on request.
    case cancelled
    /// Ended early by the sweep's stopping rule (decided by the coordinator; the decision is in
    /// `stopping_decisions`). Its recorded epochs stay.
    case stopped
    /// Set aside by the asha rule at a rung, its checkpoint kept: promoted back to `pending` (and resumed from
    /// the checkpoint) if later reports at the rung rank it in the top 1/η, `stopped` once nothing of its
    /// condition is left to run.
    case paused
    /// Was running when the coordinator stopped: kept for its worker to
    /// re-announce the attempt until the lease runs out.
    case stale

    /// No attempt will run again.
    public var isTerminal: Bool {
        switch self {
        case .done, .failed, .diverged, .cancelled, .stopped: true
        case .pending, .running, .paused, .stale: false
        }
    }

    /// The state machine: pending → running → done | failed | diverged |
    /// cancelled | stopped; running → stale on a coordinator restart; running or stale
    /// → pending (lease expired or released, retries left) or failed (none
    /// left); stale → running when the worker re-announces its attempt.
    /// (Only the user reopens a final trial: `TrialState.reopen`, for `factsweep retry`.)
    public func canMove(to next: TrialStatus) -> Bool {
        switch (self, next) {
        case (.pending, .running), (.pending, .cancelled): true
        case (.running, .done), (.running, .failed), (.running, .diverged), (.running, .cancelled), (.running, .stopped),
             (.running, .stale), (.running, .pending), (.running, .paused): true
        case (.paused, .pending), (.paused, .stopped), (.paused, .cancelled): true
        case (.stale, .running), (.stale, .pending), (.stale, .failed), (.stale, .cancelled): true
        default: false
        }
    }
}

/// How one attempt at a trial ended (`running` while it has not).
public enum AttemptOutcome: String, Sendable, Codable, CaseIterable {
    case running, done, failed, diverged, cancelled
    /// The lease expired, or the worker reconnected without it: the worker vanished or stopped reporting.
    /// Counted against the retry limit only if it made no progress.
    case lost
    /// The worker handed the trial back (for example on shutdown); the next
    /// attempt resumes from its checkpoint. Counted against the retry limit only if it made no progress.
    case superseded
}

/// How a worker reports the end of its attempt.
public enum TrialResult: String, Sendable, Codable, CaseIterable {
    case done, failed, diverged, cancelled

    var status: TrialStatus {
        switch self {
        case .done: .done
        case .failed: .failed
        case .diverged: .diverged
        case .cancelled: .cancelled
        }
    }

    var outcome: AttemptOutcome {
        switch self {
        case .done: .done
        case .failed: .failed
        case .diverged: .diverged
        case .cancelled: .cancelled
        }
    }
}

/// Whether a worker is reachable, as the coordinator last knew. (No message of the protocol says
/// goodbye: a worker that leaves is lost once its heartbeats stop.)
public enum WorkerStatus: String, Sendable, Codable, CaseIterable {
    case connected
    /// Heartbeats stopped.
    case lost
}
