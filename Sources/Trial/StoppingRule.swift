// StoppingRule: when the coordinator ends a trial before its planned epochs —
// a policy of the sweep (or of one condition), not a setting of the trial: it
// is no part of a trial's configuration or key. Written in a spec's
// `stopping` member (docs/sweep-spec.md), stored with the sweep in run.db so
// that a restarted coordinator applies the same rule, and decided by the
// coordinator from the evaluations it has recorded.
import Foundation

/// A metric a stopping rule watches, as recorded per epoch in `epoch_metrics`.
public enum StoppingMetric: String, Codable, Sendable, CaseIterable {
    /// The training loss of the epoch (every epoch has one, epoch 0 none): lower is better.
    case loss
    /// The evaluation's mean similarity (only evaluated epochs have one): higher is better.
    case accuracy

    public var higherIsBetter: Bool { self == .accuracy }
}

/// One stopping rule with its parameters.
public enum StoppingRule: Sendable, Equatable {
    /// Stop once accuracy has been at least `accuracy` at `evaluations` consecutive evaluations.
    case target(accuracy: Double, evaluations: Int)
    /// Stop once `metric` has not improved on its best before them by more than `minDelta` at `evaluations`
    /// evaluations in a row (Keras' EarlyStopping with `min_delta` and `patience`); judged at evaluated epochs only.
    case plateau(metric: StoppingMetric, minDelta: Double, evaluations: Int)
    /// Stop a trial whose `metric` at an evaluated epoch is worse than the median of its condition's other trials
    /// at that epoch, once past `graceEpochs` and with at least `minTrials` other trials reporting that epoch.
    case median(metric: StoppingMetric, graceEpochs: Int, minTrials: Int)
    /// Asynchronous successive halving (Li et al., ASHA): at each rung epoch a trial goes on only while it is in
    /// the top 1/`reductionFactor` of its condition's trials that have reported the rung; otherwise it is paused
    /// with its checkpoint, and promoted (resumed) if later reports at the rung rank it there. `rungs` nil:
    /// `graceEpochs`·η^k below the trial's epochs.
    case asha(metric: StoppingMetric, reductionFactor: Int, graceEpochs: Int, rungs: [Int]?)

    /// The rule's name, as written in a spec and stored with a decision.
    public var name: String {
        switch self {
        case .target: "target"
        case .plateau: "plateau"
        case .median: "median"
        case .asha: "asha"
        }
    }

    public static let names = ["target", "plateau", "median", "asha"]

    /// The rung epochs of an `asha` rule for a trial of `plannedEpochs` epochs: the written ones, or
    /// `graceEpochs`·η^k; only those before the last epoch (which ends the trial anyway). Empty for other rules.
    public func rungs(plannedEpochs: Int) -> [Int] {
        guard case let .asha(_, eta, grace, written) = self else { return [] }
        if let written { return written.filter { $0 < plannedEpochs } }
        var rungs: [Int] = []
        var rung = grace
        while rung < plannedEpochs, rung > 0 {
            rungs.append(rung)
            let (next, overflow) = rung.multipliedReportingOverflow(by: eta)
            if overflow { break }
            rung = next
        }
        return rungs
    }
}

extension StoppingRule: Codable {
    /// The spec's own spelling (`{"rule": "target", "accuracy": 0.9, "evaluations": 2}`), so that what run.db
    /// stores reads like what the user wrote.
    enum CodingKeys: String, CodingKey {
        case rule, accuracy, evaluations, metric
        case minDelta = "min_delta"
        case graceEpochs = "grace_epochs"
        case minTrials = "min_trials"
        case reductionFactor = "reduction_factor"
        case rungs
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .rule) {
        case "target":
            self = .target(accuracy: try c.decode(Double.self, forKey: .accuracy), evaluations: try c.decode(Int.self, forKey: .evaluations))
        case "plateau":
            self = .plateau(metric: try c.decode(StoppingMetric.self, forKey: .metric), minDelta: try c.decode(Double.self, forKey: .minDelta),
                            evaluations: try c.decode(Int.self, forKey: .evaluations))
        case "median":
            self = .median(metric: try c.decode(StoppingMetric.self, forKey: .metric), graceEpochs: try c.decode(Int.self, forKey: .graceEpochs),
                           minTrials: try c.decode(Int.self, forKey: .minTrials))
        case "asha":
            self = .asha(metric: try c.decode(StoppingMetric.self, forKey: .metric),
                         reductionFactor: try c.decode(Int.self, forKey: .reductionFactor),
                         graceEpochs: try c.decode(Int.self, forKey: .graceEpochs), rungs: try c.decodeIfPresent([Int].self, forKey: .rungs))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .rule, in: c, debugDescription: "unknown stopping rule \"\(other)\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .rule)
        switch self {
        case let .target(accuracy, evaluations):
            try c.encode(accuracy, forKey: .accuracy)
            try c.encode(evaluations, forKey: .evaluations)
        case let .plateau(metric, minDelta, evaluations):
            try c.encode(metric, forKey: .metric)
            try c.encode(minDelta, forKey: .minDelta)
            try c.encode(evaluations, forKey: .evaluations)
        case let .median(metric, graceEpochs, minTrials):
            try c.encode(metric, forKey: .metric)
            try c.encode(graceEpochs, forKey: .graceEpochs)
            try c.encode(minTrials, forKey: .minTrials)
        case let .asha(metric, reductionFactor, graceEpochs, rungs):
            try c.encode(metric, forKey: .metric)
            try c.encode(reductionFactor, forKey: .reductionFactor)
            try c.encode(graceEpochs, forKey: .graceEpochs)
            try c.encodeIfPresent(rungs, forKey: .rungs)
        }
    }
}

/// Why the coordinator stopped a trial: the rule, the epoch whose evaluation decided it, and the values it
/// compared (for `factsweep status`, the report and the dashboard).
public struct StoppingDecision: Sendable, Equatable, Codable {
    public var rule: String
    public var epoch: Int
    /// One line for people: "accuracy ≥ 0.9 at epochs 3, 4 (0.91, 0.93)".
    public var reason: String

    public init(rule: String, epoch: Int, reason: String) {
        self.rule = rule; self.epoch = epoch; self.reason = reason
    }
}
