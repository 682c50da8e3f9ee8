// TrialSetting: the per-trial settings by name — their names (the sweep
// spec's JSON names, `factsweep train`'s flags in snake_case), the values
// they accept, the methods they apply to, and how they set a `TrialConfig`.
// Both the spec reader and the train command build configurations through
// this one table, so a value one accepts the other cannot refuse.
import Foundation

/// A per-trial setting. Declaration order is a sweep grid's expansion order:
/// the first is the outermost (slowest-varying) axis, `seed` the innermost,
/// so that the replicates of one configuration stand together.
public enum TrialSetting: String, CaseIterable, Sendable {
    case rank, alpha, dropout, rslora, targets
    case lr, epochs, batchSize = "batch_size", warmupSteps = "warmup_steps", schedule
    case weightDecay = "weight_decay", clip, trainOnPrompt = "train_on_prompt"
    case evalEvery = "eval_every", evalEpochs = "eval_epochs", threshold, maxNewTokens = "max_new_tokens", embedder, heldOut = "held_out"
    case checkpointEvery = "checkpoint_every"
    case precision, adamMoments = "adam_moments", updateInBackward = "update_in_backward"
    case seed

    /// The kinds of value settings take.
    public enum Kind: Sendable {
        case integer, number, boolean, targets, schedule, precision
        /// A list of epoch numbers (0 and up): one value, though written as a JSON list.
        case epochs
        /// A file or directory; "none" too where `allowsNone`.
        case path(allowsNone: Bool)
    }

    public var kind: Kind {
        switch self {
        case .rank, .epochs, .batchSize, .warmupSteps, .evalEvery, .maxNewTokens, .checkpointEvery, .seed: .integer
        case .alpha, .dropout, .lr, .weightDecay, .clip, .threshold: .number
        case .rslora, .trainOnPrompt, .updateInBackward: .boolean
        case .targets: .targets
        case .schedule: .schedule
        case .evalEpochs: .epochs
        case .precision, .adamMoments: .precision
        case .embedder: .path(allowsNone: false)
        case .heldOut: .path(allowsNone: true)
        }
    }

    /// The command-line flag of the setting (`--batch-size`).
    public var flag: String { "--" + rawValue.replacingOccurrences(of: "_", with: "-") }

    /// The methods that read the setting; elsewhere it is an error in a
    /// condition and skipped when it comes from a sweep's `defaults` or `grid`.
    public var methods: Set<MethodKind> {
        switch self {
        case .rank, .alpha, .dropout, .rslora: [.lora, .qlora]
        case .targets: [.lora, .qlora, .ia3]
        default: Set(MethodKind.allCases)
        }
    }

    /// The values a number setting accepts, as the user is told; nil for other kinds.
    public var expectation: String? {
        switch self {
        case .alpha, .lr: "a positive number"
        case .dropout: "a number in [0, 1)"
        case .weightDecay, .clip: "a number ≥ 0"
        case .threshold: "a number in [0, 1]"
        default: nil
        }
    }

    /// Refuses a value of the right kind that the setting cannot take.
    public func check(_ value: SettingValue) throws(SettingRefusal) {
        switch (self, value) {
        case (.rank, .int(let v)): try Self.atLeast(1, v)
        case (.epochs, .int(let v)), (.maxNewTokens, .int(let v)), (.checkpointEvery, .int(let v)):
            try Self.atLeast(1, v)
            try Self.atMost(Self.maxCount, v)
        case (.batchSize, .int(let v)): try Self.atLeast(0, v, note: " (0: all examples in one batch)")
        case (.evalEvery, .int(let v)):
            try Self.atLeast(0, v, note: " (0: never)")
            try Self.atMost(Self.maxCount, v)
        case (.warmupSteps, .int(let v)), (.seed, .int(let v)): try Self.atLeast(0, v)
        case (.alpha, .float(let v)), (.lr, .float(let v)): try check(v) { $0 > 0 }
        case (.dropout, .float(let v)): try check(v) { (0..<1).contains($0) }
        case (.weightDecay, .float(let v)), (.clip, .float(let v)): try check(v) { $0 >= 0 }
        case (.threshold, .float(let v)): try check(v) { (0...1).contains($0) }
        case (.targets, .targets(let v)): if v.isEmpty { throw SettingRefusal("no target modules") }
        case (.evalEpochs, .epochs(let v)):
            if let negative = v.first(where: { $0 < 0 }) { throw SettingRefusal("epochs are 0 (the base model) and up (got \(negative))") }
            if let huge = v.first(where: { $0 > Self.maxCount }) { throw SettingRefusal("must be at most \(Self.maxCount) (got \(huge))") }
            if Set(v).count != v.count { throw SettingRefusal("an epoch is listed twice") }
        case (.rslora, .bool), (.trainOnPrompt, .bool), (.updateInBackward, .bool), (.schedule, .schedule), (.precision, .precision), (.adamMoments, .precision),
             (.embedder, .text), (.heldOut, .text):
            break
        default: throw SettingRefusal("\(rawValue) cannot take \(value)")
        }
    }

    /// The most epochs, tokens or epochs between checkpoints or evaluations a setting takes: far past any
    /// study, and small enough that the planner's epoch arithmetic (asha's rungs, sums over a sweep's trials
    /// in SQLite) cannot overflow, nor its walk over a trial's epochs take long.
    public static let maxCount = 1_000_000

    private static func atMost(_ maximum: Int, _ v: Int) throws(SettingRefusal) {
        guard v <= maximum else { throw SettingRefusal("must be at most \(maximum) (got \(v))") }
    }

    private static func atLeast(_ minimum: Int, _ v: Int, note: String = "") throws(SettingRefusal) {
        guard v >= minimum else { throw SettingRefusal("must be at least \(minimum)\(note) (got \(v))") }
    }

    private func check(_ v: Float, _ isValid: (Float) -> Bool) throws(SettingRefusal) {
        guard v.isFinite, isValid(v) else { throw SettingRefusal("must be \(expectation ?? "valid") (got \(v))") }
    }

    /// Sets the setting in `config`, whose method is already chosen; the value is checked first.
    public func apply(_ value: SettingValue, to config: inout TrialConfig) throws(SettingRefusal) {
        try check(value)
        switch (self, value) {
        case (.rank, .int(let v)): config.training.method.rank = v
        case (.alpha, .float(let v)): config.training.method.alpha = v
        case (.dropout, .float(let v)): config.training.method.dropout = v
        case (.rslora, .bool(let v)): config.training.method.rsLoRA = v
        case (.targets, .targets(let v)):
            // PEFT's default written out is the default: one trial, one key.
            let ordered = ProjectionKind.allCases.filter(v.contains)
            config.training.method.targets = ordered == MethodSettings(kind: config.training.method.kind).resolvedTargets ? nil : ordered
        case (.lr, .float(let v)): config.training.learningRate = v
        case (.epochs, .int(let v)): config.training.epochs = v
        case (.batchSize, .int(let v)): config.training.batchSize = v
        case (.warmupSteps, .int(let v)): config.training.warmupSteps = v
        case (.schedule, .schedule(let v)): config.training.decay = v
        case (.weightDecay, .float(let v)): config.training.optimizer.weightDecay = v
        case (.clip, .float(let v)): config.training.optimizer.maxGradNorm = v > 0 ? v : nil
        case (.trainOnPrompt, .bool(let v)): config.training.lossScope = v ? .all : .answer
        case (.evalEvery, .int(let v)): config.evalEvery = v
        // Any order is one schedule, one key; an empty list is no extra epoch, the default.
        case (.evalEpochs, .epochs(let v)): config.evalEpochs = v.isEmpty ? nil : v.sorted()
        case (.threshold, .float(let v)): config.threshold = v
        case (.maxNewTokens, .int(let v)): config.maxNewTokens = v
        case (.embedder, .text(let v)): config.embedder = v
        case (.heldOut, .text(let v)): config.heldOut = v
        case (.checkpointEvery, .int(let v)): config.checkpointEvery = v
        case (.precision, .precision(let v)): config.training.precision = v == .f32 ? nil : v
        case (.adamMoments, .precision(let v)): config.training.optimizer.moments = v == .f32 ? nil : v
        case (.updateInBackward, .bool(let v)): config.training.optimizer.updateInBackward = v ? true : nil
        case (.seed, .int(let v)): config.training.seed = UInt64(v)
        default: throw SettingRefusal("\(rawValue) cannot take \(value)")  // `check` refused it already
        }
    }
}

/// A setting's value, of the setting's kind.
public enum SettingValue: Sendable, Hashable {
    case int(Int), float(Float), bool(Bool), text(String)
    /// Target modules in `ProjectionKind` order, without repeats.
    case targets([ProjectionKind])
    case schedule(LearningRateSchedule.Decay)
    /// Epoch numbers, as written.
    case epochs([Int])
    case precision(Precision)
}

/// Why a value was refused, for the user; the caller names the setting.
public struct SettingRefusal: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
