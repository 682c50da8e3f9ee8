// MessageRules: what a well-formed body must hold beyond its JSON types —
// the rules `Message.decode` checks, so that a value no peer of ours sends
// (a NaN duration, a negative slot count, an id at the end of Int64) is
// refused at the door as `malformed_body` rather than met deep inside the
// coordinator, where it trapped or failed a database constraint (docs/protocol.md,
// "Rules of the bodies").
import Foundation
import Trial

extension Message {
    /// The largest message id accepted: 2^53, the largest integer every JSON reader holds exactly.
    /// A session numbers from 1, one id per result, so it is never reached.
    public static let maxMessageID: MessageID = 1 << 53
    /// The most models a hello or a ready may list, in `models` and in `model_storages` each. Each is a
    /// value of the claim query; a worker has a few on hand.
    public static let maxModels = 1024
    /// The most compute threads a hello may declare (and cluster.json's `threads_per_worker`): more than
    /// any host has. A worker's `ready` claims at most its hello's threads in slots, so without a bound an
    /// admitted peer could claim the whole queue with one hello.
    public static let maxThreads = 4096
    /// The thread counts a hello may declare.
    public static let threadCounts = 1...maxThreads

    /// `cores` as a default thread count: at least 1, at most `maxThreads`.
    public static func threads(fromCores cores: Int) -> Int { min(max(1, cores), maxThreads) }

    /// The first rule the body breaks, or nil.
    func brokenRule() -> String? {
        switch self {
        case let .hello(m):
            return Self.modelsProblem(m.models, m.modelStorages)
        case let .ready(m):
            return Self.modelsProblem(m.models, m.modelStorages) ?? (m.freeSlots < 0 ? "free_slots is \(m.freeSlots)" : nil)
        case let .heartbeat(m):
            if let free = m.freeSlots, free < 0 { return "free_slots is \(free)" }
            return nil
        case let .progress(m):
            return Self.idProblem(m.messageID) ?? Self.problem(of: m.report)
        case let .checkpoint(m):
            return Self.idProblem(m.messageID) ?? Self.epochProblem("checkpoint.epoch", m.checkpoint.epoch)
        case let .done(m):
            return Self.idProblem(m.messageID) ?? Self.epochProblem("summary.epochs", m.summary.epochs)
        case let .failed(m): return Self.idProblem(m.messageID)
        case let .ack(m):
            return m.messageIDs.lazy.compactMap(Self.idProblem).first
        case let .assign(m):
            // The worker counts on from these: an epoch at Int.max trapped its `lastEpoch + 1`.
            if m.config.training.epochs < 1 || m.config.training.epochs > TrialSetting.maxCount {
                return "config.training.epochs is \(m.config.training.epochs), not in 1…\(TrialSetting.maxCount)"
            }
            return Self.epochProblem("epochs_recorded", m.epochsRecorded)
                ?? m.resume.flatMap { Self.epochProblem("resume.epoch", $0.epoch) }
        case .cancel, .drop, .shutdown, .error:
            return nil
        }
    }

    /// An epoch count or number within what a trial can plan (`TrialSetting.maxCount`).
    private static func epochProblem(_ name: String, _ epoch: Int) -> String? {
        (0...TrialSetting.maxCount).contains(epoch) ? nil : "\(name) is \(epoch), not in 0…\(TrialSetting.maxCount)"
    }

    /// A hello's or a ready's model lists over `maxModels`.
    private static func modelsProblem(_ models: [String]?, _ storages: [ModelStorage]?) -> String? {
        if let models, models.count > maxModels { return "models lists \(models.count) models, at most \(maxModels)" }
        if let storages, storages.count > maxModels {
            return "model_storages lists \(storages.count) models, at most \(maxModels)"
        }
        return nil
    }

    private static func idProblem(_ id: MessageID) -> String? {
        (1...maxMessageID).contains(id) ? nil : "message id \(id) is outside 1…\(maxMessageID)"
    }

    /// An epoch's measurements as the run database can hold them: durations and counts that are
    /// numbers at least 0, and no NaN where a value is always measured (a NaN loss is a diverged
    /// trial's, and allowed).
    private static func problem(of report: EpochReport) -> String? {
        func duration(_ name: String, _ value: Double) -> String? {
            value.isFinite && value >= 0 ? nil : "report.\(name) is \(value)"
        }
        if let problem = epochProblem("report.epoch", report.epoch) { return problem }
        if let problem = duration("epochSeconds", report.epochSeconds) ?? duration("trainSeconds", report.trainSeconds) {
            return problem
        }
        if report.tokens < 0 { return "report.tokens is \(report.tokens)" }
        if !(report.flops >= 0) { return "report.flops is \(report.flops)" }
        guard let evaluation = report.evaluation else { return nil }
        if let problem = duration("evaluation.seconds", evaluation.seconds) { return problem }
        for (name, value) in [("accuracy", evaluation.accuracy), ("accuracyAtThreshold", evaluation.accuracyAtThreshold),
                              ("threshold", evaluation.threshold)] where value.isNaN {
            return "report.evaluation.\(name) is NaN"
        }
        if let index = evaluation.questions.firstIndex(where: { $0.similarity.isNaN }) {
            return "report.evaluation.questions[\(index)].similarity is NaN"
        }
        return nil
    }
}
