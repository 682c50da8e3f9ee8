// SpecSetting: the per-trial settings a sweep spec may give in `defaults`,
// `grid` or a condition — their JSON names (the `factsweep train` flags in
// snake_case), the values they accept, the methods they apply to, and how
// they set a `TrialConfig`. The case order is the grid's axis order.
import Core
import Foundation

/// A per-trial setting. Declaration order is expansion order: the first is
/// the outermost (slowest-varying) axis, `seed` the innermost, so that the
/// replicates of one configuration stand together.
enum SpecSetting: String, CaseIterable, Sendable {
    case rank, alpha, dropout, rslora, targets
    case lr, epochs, batchSize = "batch_size", warmupSteps = "warmup_steps", schedule
    case weightDecay = "weight_decay", clip, trainOnPrompt = "train_on_prompt"
    case evalEvery = "eval_every", threshold, maxNewTokens = "max_new_tokens", embedder, heldOut = "held_out"
    case checkpointEvery = "checkpoint_every"
    case seed

    /// The methods that read the setting; elsewhere it is an error in a
    /// condition and skipped when it comes from `defaults` or `grid`.
    var methods: Set<MethodKind> {
        switch self {
        case .rank, .alpha, .dropout, .rslora: [.lora, .qlora]
        case .targets: [.lora, .qlora, .ia3]
        default: Set(MethodKind.allCases)
        }
    }

    /// Reads one value, checked; paths are resolved against `base`. Throws the message for the user.
    func parse(_ value: JSONValue, base: URL) throws(SettingRefusal) -> SettingValue {
        switch self {
        case .rank: return .int(try value.integer(atLeast: 1))
        case .alpha: return .float(try value.float("a positive number") { $0 > 0 })
        case .dropout: return .float(try value.float("a number in [0, 1)") { (0..<1).contains($0) })
        case .rslora, .trainOnPrompt: return .bool(try value.boolean())
        case .targets:
            let text = try value.text("module names, comma-separated, or \"all-linear\"")
            do {
                let targets = try MethodSettings.parseTargets(text)
                guard !targets.isEmpty else { throw MethodError("no target modules") }
                return .targets(ProjectionKind.allCases.filter(targets.contains))
            } catch { throw SettingRefusal("\(error)") }
        case .lr: return .float(try value.float("a positive number") { $0 > 0 })
        case .epochs, .maxNewTokens, .checkpointEvery: return .int(try value.integer(atLeast: 1))
        case .batchSize: return .int(try value.integer(atLeast: 0, note: " (0: all examples in one batch)"))
        case .warmupSteps, .seed: return .int(try value.integer(atLeast: 0))
        case .evalEvery: return .int(try value.integer(atLeast: 0, note: " (0: never)"))
        case .schedule:
            let names = LearningRateSchedule.Decay.allCases.map(\.rawValue)
            let text = try value.text(names.joined(separator: ", "))
            guard let decay = LearningRateSchedule.Decay(rawValue: text) else {
                throw SettingRefusal("unknown schedule \"\(text)\" (expected \(names.joined(separator: ", ")))" + NameSuggestion.hint(for: text, in: names))
            }
            return .schedule(decay)
        case .weightDecay, .clip: return .float(try value.float("a number ≥ 0") { $0 >= 0 })
        case .threshold: return .float(try value.float("a number in [0, 1]") { (0...1).contains($0) })
        case .embedder: return .text(try value.existingPath(base: base, allowingNone: false))
        case .heldOut: return .text(try value.existingPath(base: base, allowingNone: true))
        }
    }

    /// Sets the setting in `config`, whose method is already chosen.
    func apply(_ value: SettingValue, to config: inout TrialConfig) {
        switch (self, value) {
        case (.rank, .int(let v)): config.training.method.rank = v
        case (.alpha, .float(let v)): config.training.method.alpha = v
        case (.dropout, .float(let v)): config.training.method.dropout = v
        case (.rslora, .bool(let v)): config.training.method.rsLoRA = v
        case (.targets, .targets(let v)):
            // PEFT's default written out is the default: one trial, one key.
            config.training.method.targets = v == MethodSettings(kind: config.training.method.kind).resolvedTargets ? nil : v
        case (.lr, .float(let v)): config.training.learningRate = v
        case (.epochs, .int(let v)): config.training.epochs = v
        case (.batchSize, .int(let v)): config.training.batchSize = v
        case (.warmupSteps, .int(let v)): config.training.warmupSteps = v
        case (.schedule, .schedule(let v)): config.training.decay = v
        case (.weightDecay, .float(let v)): config.training.optimizer.weightDecay = v
        case (.clip, .float(let v)): config.training.optimizer.maxGradNorm = v > 0 ? v : nil
        case (.trainOnPrompt, .bool(let v)): config.training.lossScope = v ? .all : .answer
        case (.evalEvery, .int(let v)): config.evalEvery = v
        case (.threshold, .float(let v)): config.threshold = v
        case (.maxNewTokens, .int(let v)): config.maxNewTokens = v
        case (.embedder, .text(let v)): config.embedder = v
        case (.heldOut, .text(let v)): config.heldOut = v
        case (.checkpointEvery, .int(let v)): config.checkpointEvery = v
        case (.seed, .int(let v)): config.training.seed = UInt64(v)
        default: assertionFailure("\(self) cannot take \(value)")  // parse(_:base:) makes only matching values
        }
    }
}

/// A checked setting value.
enum SettingValue: Sendable, Equatable {
    case int(Int), float(Float), bool(Bool), text(String)
    /// Target modules in `ProjectionKind` order, without repeats.
    case targets([ProjectionKind])
    case schedule(LearningRateSchedule.Decay)
}

/// Why a value was refused, for the user.
struct SettingRefusal: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

extension JSONValue {
    func integer(atLeast minimum: Int, note: String = "") throws(SettingRefusal) -> Int {
        guard case .integer(let v) = self else { throw SettingRefusal("expected an integer, got \(described)") }
        guard v >= minimum else { throw SettingRefusal("must be at least \(minimum)\(note) (got \(v))") }
        return v
    }

    func float(_ expected: String, where isValid: (Float) -> Bool) throws(SettingRefusal) -> Float {
        let v: Float
        switch self {
        case .integer(let i): v = Float(i)
        case .number(let d): v = Float(d)
        default: throw SettingRefusal("expected \(expected), got \(described)")
        }
        guard v.isFinite, isValid(v) else { throw SettingRefusal("must be \(expected) (got \(shortText))") }
        return v
    }

    func boolean() throws(SettingRefusal) -> Bool {
        guard case .bool(let b) = self else { throw SettingRefusal("expected true or false, got \(described)") }
        return b
    }

    func text(_ expected: String) throws(SettingRefusal) -> String {
        guard case .string(let s) = self else { throw SettingRefusal("expected a string (\(expected)), got \(described)") }
        return s
    }

    /// A path that exists, made absolute against `base`; "none" passes through when allowed.
    func existingPath(base: URL, allowingNone: Bool) throws(SettingRefusal) -> String {
        let written = try text(allowingNone ? "a path or \"none\"" : "a path")
        if allowingNone, written == "none" { return written }
        let path = try SpecPaths.resolve(written, base: base)
        guard FileManager.default.fileExists(atPath: path) else { throw SettingRefusal("no such file or directory: \(path)") }
        return path
    }
}

/// How spec paths are made absolute.
enum SpecPaths {
    /// `written` if absolute, else relative to `base` (the spec file's
    /// directory); `.` and `..` removed, symbolic links and `~` left alone.
    static func resolve(_ written: String, base: URL) throws(SettingRefusal) -> String {
        guard !written.isEmpty else { throw SettingRefusal("empty path") }
        let directory = URL(fileURLWithPath: base.path, isDirectory: true)  // a base without trailing "/" would drop its last component
        return URL(fileURLWithPath: written, relativeTo: directory).standardizedFileURL.path
    }
}
