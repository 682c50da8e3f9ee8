// DashboardState: what the live dashboard's page shows, as the JSON its
// `/api/state` endpoint serves and the page polls — the run's progress, the
// report's charts (SVG, drawn by the Report module), the trials and workers.
import Foundation

/// One poll's worth of the run.
public struct DashboardState: Codable, Sendable, Equatable {
    /// When it was read (ISO 8601, UTC).
    public var readAt: String
    public var run: RunProgress
    /// The report's three figures, for the sweep so far.
    public var charts: [Chart]
    /// The first `DashboardReader.trialRowLimit` trials (in the order the sweeps added them) that `filter` matches.
    public var trials: [TrialRow]
    /// How many trials `filter` matches, listed or not.
    public var trialsMatching: Int
    /// The words a trial's key, line, method or status must each contain; empty: every trial.
    public var filter: String
    public var workers: [WorkerRow]

    /// Counts, throughput and the estimate of what is left.
    public struct RunProgress: Codable, Sendable, Equatable {
        public var database: String
        public var sweeps: [String]
        /// Trials per status (`pending`, `running`, `done`, …).
        public var trials: [String: Int]
        public var totalTrials: Int
        /// Epochs trained and recorded, over all trials (epoch 0, the base model, is not trained).
        public var epochsRecorded: Int
        public var epochsPlanned: Int
        public var epochsPerHour: Double
        /// nil while nothing was recorded recently (no rate to go by).
        public var etaSeconds: Double?
        /// Stopping rules may end remaining trials early: the ETA is at most the time left.
        public var etaIsUpperBound: Bool = false
        public var connectedWorkers: Int
    }

    /// A figure: its file name in a report (`accuracy.svg`) and the SVG.
    public struct Chart: Codable, Sendable, Equatable {
        public var name: String
        public var title: String
        public var svg: String
    }

    /// A trial as the table lists it.
    public struct TrialRow: Codable, Sendable, Equatable {
        public var key: String
        public var condition: String
        public var method: String
        public var rank: Int?
        public var learningRate: Double
        public var seed: Int64
        /// As stored: `pending`, `running`, `done`, `failed`, `diverged`, `cancelled`, `stale`, `stopped`, `paused`.
        public var status: String
        public var lastEpoch: Int
        public var epochs: Int
        /// Accuracy at the latest evaluated epoch, if any.
        public var accuracy: Double?
        public var lastEvaluatedEpoch: Int?
        public var loss: Double?
        /// Why the trial was stopped early (its stopping rule, epoch and values); nil: not stopped. The
        /// column appears on the page only when some trial has a decision.
        public var decision: String?
        /// Why a pending trial waits: the workers that refused it because their build does not read its
        /// settings, and the latest refusal's reason (as `factsweep status` lists them); nil otherwise. The
        /// column appears on the page only when some trial waits so.
        public var waiting: String?
    }

    /// A worker with the trial it trains and how long ago it was last heard from.
    public struct WorkerRow: Codable, Sendable, Equatable {
        public var id: String
        public var host: String
        /// `connected` or `lost`.
        public var status: String
        public var trial: String?
        public var condition: String?
        /// The epoch being trained: one past the trial's last recorded.
        public var epoch: Int?
        public var heartbeatAgeSeconds: Double?
    }
}

/// A trial's evaluations, each with every answer: `/api/trials/KEY`.
public struct TrialAnswers: Codable, Sendable, Equatable {
    public var key: String
    public var condition: String
    public var evaluations: [Evaluation]

    public struct Evaluation: Codable, Sendable, Equatable {
        public var epoch: Int
        public var accuracy: Double?
        public var answers: [Answer]
    }

    public struct Answer: Codable, Sendable, Equatable {
        public var question: String
        public var paraphrase: Bool
        public var reference: String
        public var answer: String
        public var similarity: Double
    }
}
