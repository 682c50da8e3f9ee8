// RunStatus and friends: the read-side views of the run database that the
// coordinator shows (`factsweep status`) and estimates from.
import Foundation
import Trial

/// A sweep's progress at one moment, read from one snapshot.
public struct RunStatus: Sendable, Equatable {
    /// Trials per status; statuses without trials are absent.
    public var trialsByStatus: [TrialStatus: Int]
    public var conditions: [ConditionProgress]
    /// The throughput window, in seconds, ending now.
    public var window: TimeInterval
    /// Epoch rows recorded in the window.
    public var recentEpochs: Int
    /// Mean `epoch_seconds` of those rows (one worker's time per epoch).
    public var meanRecentEpochSeconds: Double?
    /// Epochs still to train over trials that have not ended.
    public var remainingEpochs: Int
    public var connectedWorkers: Int
    /// Of `remainingEpochs`, those of trials whose condition has a stopping
    /// rule: the rule may end them sooner, so the ETA is then an upper bound.
    /// A rule's stop cannot be foreseen from the data (a target or plateau
    /// depends on values not yet trained), so the estimate does not guess.
    public var remainingEpochsUnderStoppingRules: Int = 0

    /// Epochs recorded per hour over the window, all workers together.
    public var epochsPerHour: Double { window > 0 ? Double(recentEpochs) / window * 3600 : 0 }

    /// Seconds until the remaining epochs are done at the recent rate; nil
    /// without recent epochs. Ignores retries and evaluation differences.
    public var estimatedSecondsRemaining: Double? {
        recentEpochs > 0 ? Double(remainingEpochs) / Double(recentEpochs) * window : nil
    }

    /// True when stopping rules may end some of the remaining epochs early,
    /// so `estimatedSecondsRemaining` is at most the time left, not a forecast.
    public var estimateIsUpperBound: Bool { remainingEpochsUnderStoppingRules > 0 }
}

/// Progress of one condition of a sweep.
public struct ConditionProgress: Sendable, Equatable {
    public var sweep: String
    public var condition: String
    public var trials: Int
    public var done: Int
    public var running: Int
    public var pending: Int
    /// Failed, diverged or cancelled.
    public var ended: Int
    /// Ended early by the sweep's stopping rule.
    public var stopped: Int = 0
    public var epochsRecorded: Int
    public var epochsPlanned: Int
}

/// A trial's row as the coordinator needs it back.
public struct StoredTrial: Sendable, Equatable {
    public var key: String
    public var sweep: String
    public var condition: String
    public var status: TrialStatus
    public var attempts: Int
    public var retryLimit: Int
    public var currentAttemptID: AttemptID?
    public var lastEpoch: Int
    public var epochs: Int
    public var checkpoint: CheckpointRef?
}

/// An attempt's row.
public struct StoredAttempt: Sendable, Equatable {
    public var attemptID: AttemptID
    public var workerID: String
    public var startedAt: Date
    public var endedAt: Date?
    public var leaseExpiresAt: Date
    public var resumedFromEpoch: Int
    public var outcome: AttemptOutcome
    public var reason: String?
}
