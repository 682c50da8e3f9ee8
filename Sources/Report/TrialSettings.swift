// TrialSettings: a trial's configuration as flat `path → value` pairs (the
// seed left out), so that the report can tell apart the trials of one
// condition that a grid axis made differ — in precision, batch size, anything
// — and name each line after what differs.
import Foundation
import Trial

/// A trial's settings but its seed, flattened: `training.precision` → `bf16`.
public struct TrialSettings: Sendable, Hashable {
    /// Dotted paths of the canonical configuration's leaves, to their values
    /// as text (strings unquoted, lists as JSON). A setting the configuration
    /// leaves out (a default that keeps older trials' keys, such as
    /// `training.precision` for f32) is absent.
    public var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    /// The products' precision: f32 when the configuration names none (the
    /// key trials had before the setting existed), as `TrainingSettings.productPrecision`.
    public var productPrecision: Precision {
        values["training.precision"].flatMap(Precision.init(rawValue:)) ?? .f32
    }

    /// The settings in which trials of a line may differ: the seed, and how
    /// often checkpoints are written, which changes nothing a trial computes.
    static let ignoredPaths = ["training.seed", "checkpointEvery"]

    /// The settings of a `trials.config` text; nil when it is not a JSON object
    /// (the report then tells lines apart by the trial's columns alone).
    public init?(configJSON: String) {
        guard let value = try? JSONValue(parsing: configJSON) else { return nil }
        self.init(Self.integralNumbersAsIntegers(value))
    }

    /// `value` with each integral number that fits `Int` made an integer, as JSONDecoder reads one (the
    /// settings were read with it before): a Float setting of 2^24 or more is stored as `1e+08`, which
    /// `JSONValue(parsing:)` keeps a number and would show as `100000000.0`. The same as JSONDecoder below
    /// 2^53; at and above it JSONDecoder read such a number's decimal digits, this its Double (no setting
    /// a spec can give comes near).
    static func integralNumbersAsIntegers(_ value: JSONValue) -> JSONValue {
        switch value {
        case let .number(number): Int(exactly: number).map(JSONValue.integer) ?? value
        case let .array(items): .array(items.map(integralNumbersAsIntegers))
        case let .object(members): .object(members.mapValues(integralNumbersAsIntegers))
        default: value
        }
    }

    /// The settings of a configuration already parsed; nil when it is not an object.
    init?(_ value: JSONValue) {
        guard case .object = value else { return nil }
        var values: [String: String] = [:]
        Self.flatten(value, path: "", into: &values)
        for path in Self.ignoredPaths { values[path] = nil }
        self.values = values
    }

    private static func flatten(_ value: JSONValue, path: String, into values: inout [String: String]) {
        switch value {
        case let .object(members):
            for (name, member) in members { flatten(member, path: path.isEmpty ? name : "\(path).\(name)", into: &values) }
        case let .string(text):
            values[path] = text
        default:
            values[path] = value.description
        }
    }

    /// How each setting the spec can vary is named in a line's label, in the
    /// order labels list them; `absent` is how a setting the configuration
    /// leaves out reads (its default). Paths not listed are labelled by their
    /// last component and value, after these.
    static let labels: [(path: String, absent: String?, label: @Sendable (String) -> String)] = [
        ("training.method.rank", nil, { "r=\($0)" }),
        ("training.method.alpha", nil, { "α=\(compact($0))" }),
        ("training.learningRate", nil, { "lr \(compact($0))" }),
        ("training.epochs", nil, { "\($0) epochs" }),
        ("training.precision", "f32", { $0 }),
        ("training.batchSize", nil, { $0 == "0" ? "one batch" : "batch \($0)" }),
        ("training.optimizer.moments", "f32", { "\($0) moments" }),
        ("training.optimizer.updateInBackward", "false", { $0 == "true" ? "update in backward" : "update after backward" }),
        ("training.method.dropout", nil, { "dropout \(compact($0))" }),
        ("training.method.rsLoRA", nil, { $0 == "true" ? "rsLoRA" : "no rsLoRA" }),
        ("training.warmupSteps", nil, { "warmup \($0)" }),
        ("training.decay", nil, { "\($0) decay" }),
        ("training.lossScope", nil, { "loss on \($0)" }),
        ("training.optimizer.weightDecay", nil, { "weight decay \(compact($0))" }),
        ("training.optimizer.maxGradNorm", "none", { $0 == "none" ? "no clipping" : "clip \(compact($0))" }),
        ("training.method.targets", "default", { "targets \($0)" }),
        ("training.initAdapter", "none", { "init_adapter \(($0 as NSString).lastPathComponent)" }),
        ("model", nil, { "model \(($0 as NSString).lastPathComponent)" }),
        ("data", nil, { "data \(($0 as NSString).lastPathComponent)" }),
        ("evalEvery", nil, { "eval_every \($0)" }),
        ("evalEpochs", "none", { "eval_epochs \($0)" }),
        ("threshold", nil, { "threshold \(compact($0))" }),
        ("maxNewTokens", "default", { "max_new_tokens \($0)" }),
        ("embedder", "default", { "embedder \(($0 as NSString).lastPathComponent)" }),
        ("heldOut", "default", { "held_out \(($0 as NSString).lastPathComponent)" }),
    ]

    private static func compact(_ text: String) -> String {
        Double(text).map(ReportNumber.compact) ?? text
    }

    /// The paths whose value (or absence) is not the same in all of
    /// `siblings`: the settings a line's label names.
    static func differingPaths(_ siblings: [TrialSettings]) -> Set<String> {
        let paths = Set(siblings.flatMap(\.values.keys))
        return paths.filter { path in Set(siblings.map { $0.values[path] }).count > 1 }
    }

    /// The label parts of `self` for the settings at `differing`, in `labels`' order, then the others by path.
    func labelParts(differing: Set<String>) -> [String] {
        var parts: [String] = []
        for entry in Self.labels where differing.contains(entry.path) {
            let value = values[entry.path] ?? entry.absent ?? "unset"
            parts.append(entry.label(value))
        }
        let known = Set(Self.labels.map(\.path))
        for path in differing.subtracting(known).sorted() {
            let name = path.split(separator: ".").last.map(String.init) ?? path
            parts.append("\(name) \(values[path] ?? "unset")")
        }
        return parts
    }
}

extension TrialSettings {
    /// The settings a trial's columns give, for a trial whose configuration
    /// could not be read: what the report told lines apart by before it read
    /// configurations.
    init(columnsOf trial: ReportTrial) {
        var values = ["training.learningRate": "\(trial.learningRate)", "training.epochs": "\(trial.plannedEpochs)"]
        if let rank = trial.rank { values["training.method.rank"] = "\(rank)" }
        if let alpha = trial.alpha { values["training.method.alpha"] = "\(alpha)" }
        self.init(values)
    }
}
