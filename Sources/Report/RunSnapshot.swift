// RunSnapshot: what a report reads from a run database — trials, every epoch
// row and the answers of each trial's last evaluation — taken in one read so
// that a running sweep gives a consistent picture.
import Foundation
import Trial

/// A trial as the report sees it: its settings, progress and (once
/// finished) the worker's summary.
public struct ReportTrial: Sendable, Equatable {
    public var key: String
    public var condition: String
    /// `full`, `lora`, `qlora` or `ia3`.
    public var method: String
    /// LoRA rank and alpha; nil for methods without them.
    public var rank: Int?
    public var alpha: Double?
    public var learningRate: Double
    public var seed: Int64
    /// Epochs the trial is planned to train.
    public var plannedEpochs: Int
    /// The trial's status as stored (`pending`, `running`, `done`, …).
    public var status: String
    public var lastEpoch: Int
    /// The worker's final summary; nil until the trial is done (or in
    /// databases written before the summary was stored).
    public var summary: TrialSummary?
    /// The model path of the trial's configuration.
    public var model: String = ""
    /// Why the coordinator stopped it early (status `stopped`): the rule, epoch and values; nil otherwise.
    public var stopping: StoppingDecision?
    /// Its configuration's settings but the seed (`trials.config`); nil when
    /// that could not be read. Trials of a condition whose settings differ are
    /// separate lines of the report.
    public var settings: TrialSettings?

    /// Whether more epochs may still arrive (the curve is partial).
    public var isOpen: Bool { ["pending", "running", "stale"].contains(status) }
}

/// One `epoch_metrics` row: what the store keeps of an `EpochReport` — its
/// numbers as SQLite holds them (a NaN loss as NULL), without the evaluation's
/// threshold, time and answers (answers are `ReportAnswer`s). Evaluation
/// columns are nil at epochs without an evaluation.
public struct ReportEpoch: Sendable, Equatable {
    public var trialKey: String
    public var epoch: Int
    /// nil when the loss was not a number (diverged).
    public var loss: Double?
    /// Training time of the trial so far, evaluation excluded.
    public var trainSeconds: Double
    public var epochSeconds: Double
    public var accuracy: Double?
    public var accuracyAtThreshold: Double?
    public var keyMatch: Double?
    public var perplexity: Double?
}

/// One answer of an evaluation (a `question_outputs` row): the evaluator's
/// `QuestionResult`, with the trial and epoch it belongs to.
public struct ReportAnswer: Sendable, Equatable {
    public var trialKey: String
    public var epoch: Int
    public var result: QuestionResult
}

/// Everything a report is made from, read in one transaction.
public struct RunSnapshot: Sendable, Equatable {
    /// The database file, as the user named it.
    public var path: String
    public var sweepNames: [String]
    /// In the order they were added, so conditions keep the spec's order.
    public var trials: [ReportTrial]
    /// Ordered by trial, then epoch.
    public var epochs: [ReportEpoch]
    /// The answers of every trial's last evaluated epoch.
    public var lastAnswers: [ReportAnswer]
    /// Whether the database stores trial summaries (migration v2-trial-summary).
    public var storesSummaries: Bool
}

extension RunSnapshot {
    /// The epoch rows of each trial, `trials[i]`'s at index `i`, each in the
    /// order `epochs` holds them. One pass when `epochs` is grouped by trial
    /// in the order of `trials`, as `RunSnapshotReader` reads them (both by the
    /// trials' rowid); otherwise grouped by key. At 100,000 trials hashing each
    /// of 1,000,000 rows' keys took about a sixth of a live dashboard's poll.
    /// Trial keys are unique (the store's primary key); were one repeated, each
    /// trial under it would get the rows that follow it, not all of them.
    public func epochsByTrial() -> [[ReportEpoch]] {
        var grouped = [[ReportEpoch]](repeating: [], count: trials.count)
        var t = 0
        for row in epochs {
            // Trials without rows are passed over; a row of an earlier trial ends the pass.
            while t < trials.count, trials[t].key != row.trialKey { t += 1 }
            guard t < trials.count else { return groupedByKey() }
            grouped[t].append(row)
        }
        return grouped
    }

    private func groupedByKey() -> [[ReportEpoch]] {
        var rowsByTrial: [String: [ReportEpoch]] = [:]
        for row in epochs { rowsByTrial[row.trialKey, default: []].append(row) }
        return trials.map { rowsByTrial[$0.key] ?? [] }
    }
}
