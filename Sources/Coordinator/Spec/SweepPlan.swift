// SweepPlan: a sweep spec expanded into its trials, each with the key that
// identifies it in the store — conditions in file order, and within each the
// settings given as lists crossed in `TrialSetting` order.
import Foundation
import Trial

/// One trial of a sweep, before it runs.
public struct PlannedTrial: Sendable, Equatable, Codable {
    /// The name of the condition it belongs to.
    public let condition: String
    public let config: TrialConfig
    /// SHA-256 of `config.canonicalJSON()` in lowercase hex: equal
    /// configurations, however their spec was written, get equal keys, and a
    /// trial keeps its key when others are added to the spec.
    public let key: String
    /// `config.canonicalJSON()`: the bytes `key` hashes and the run database
    /// stores. Kept so that neither storing the trial nor checking a stored
    /// copy of it encodes the configuration again (at 100,000 trials those
    /// encodings took a third of a coordinator's start). Not in the plan's JSON.
    public let canonicalConfig: Data

    private enum CodingKeys: String, CodingKey { case condition, config, key }

    public init(condition: String, config: TrialConfig) throws {
        self.condition = condition
        self.config = config
        canonicalConfig = try config.canonicalJSON()
        key = SHA256.hex(canonicalConfig)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        condition = try container.decode(String.self, forKey: .condition)
        config = try container.decode(TrialConfig.self, forKey: .config)
        key = try container.decode(String.self, forKey: .key)
        canonicalConfig = try config.canonicalJSON()
    }
}

/// A checked sweep spec and its trials in run order.
public struct SweepPlan: Sendable {
    public var name: String
    public var trials: [PlannedTrial]
    /// The stopping rule of each condition that has one (its own, else the spec's top-level one); a policy
    /// of the sweep, kept out of the trials' configurations and keys.
    public var stopping: [String: StoppingRule]

    /// More trials than this is taken for a mistake in the grid.
    public static let maximumTrials = 100_000

    /// Reads, checks and expands the spec at `url`; relative paths in it are
    /// relative to its directory. Every problem found is in the `SpecError`.
    public static func load(_ url: URL) throws(SpecError) -> SweepPlan {
        let json: Data
        do { json = try Data(contentsOf: url) } catch {
            let reason = FileManager.default.fileExists(atPath: url.path) ? error.localizedDescription : "no such file"
            throw SpecError(file: url.path, problems: [SpecProblem(path: "", field: nil, condition: nil, message: "cannot read: \(reason)")])
        }
        return try SweepPlan(json: json, file: url.path, baseDirectory: url.deletingLastPathComponent())
    }

    /// Checks and expands a spec document; `file` names it in errors.
    public init(json: Data, file: String, baseDirectory: URL) throws(SpecError) {
        let root: JSONValue
        do { root = try JSONDecoder().decode(JSONValue.self, from: json) } catch {
            throw SpecError(file: file, problems: [SpecProblem(path: "", field: nil, condition: nil, message: "not valid JSON: \(Self.reason(json))")])
        }
        var reader = SpecReader(base: baseDirectory.standardizedFileURL)
        guard let spec = reader.read(root) else { throw SpecError(file: file, problems: reader.problems) }
        trials = spec.expand(reporting: &reader)
        guard reader.problems.isEmpty else { throw SpecError(file: file, problems: reader.problems) }
        name = spec.name
        stopping = [:]
        for condition in spec.conditions {
            if let rule = condition.stopping ?? spec.stopping { stopping[condition.name] = rule }
        }
    }

    /// JSONDecoder on Linux says only "not valid JSON"; JSONSerialization says where.
    private static func reason(_ json: Data) -> String {
        do { _ = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed]) } catch {
            return (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        }
        return "it does not parse"
    }
}

extension SweepSpec {
    /// The settings a condition varies over, outermost first, with their values;
    /// and those it samples, in `TrialSetting` order. For each setting the
    /// condition's own value wins, then the grid's, then the defaults'.
    func axes(of condition: SpecCondition)
        -> (listed: [(setting: TrialSetting, values: [SettingValue])], sampled: [(setting: TrialSetting, axis: SampledAxis)]) {
        var listed: [(setting: TrialSetting, values: [SettingValue])] = []
        var sampled: [(setting: TrialSetting, axis: SampledAxis)] = []
        for setting in TrialSetting.allCases where setting.methods.contains(condition.method) {
            guard let layer = [condition.settings, grid, defaults].first(where: { $0.sets(setting) }) else { continue }
            if let axis = layer.sampled[setting] {
                sampled.append((setting, axis))
            } else if let values = layer.values[setting] {
                listed.append((setting, values))
            }
        }
        return (listed, sampled)
    }

    /// Every trial, conditions in file order; within one, the sampled points
    /// outermost, then the listed axes, the last varying fastest.
    /// A trial equal to an earlier one, or past `SweepPlan.maximumTrials`, is a problem.
    func expand(reporting reader: inout SpecReader) -> [PlannedTrial] {
        var trials: [PlannedTrial] = []
        var indexByKey: [String: Int] = [:]
        for condition in conditions {
            let axes = axes(of: condition)
            var combinations: [[(setting: TrialSetting, value: SettingValue)]] = [[]]
            if !axes.sampled.isEmpty, let sampling {
                guard let points = SampledAxis.points(axes.sampled, sampling: sampling) else {
                    let names = axes.sampled.map(\.setting.rawValue).joined(separator: ", ")
                    reader.report("sampling.samples", "samples", condition.name,
                                  "\(sampling.samples) distinct points cannot be drawn from the sampled \(names): lower samples or widen the ranges")
                    continue
                }
                combinations = points
            }
            let count = axes.listed.reduce(Double(combinations.count)) { $0 * Double($1.values.count) }
            guard Double(trials.count) + count <= Double(SweepPlan.maximumTrials) else {
                reader.report(condition.settings.path, nil, condition.name,
                              "the sweep would have more than \(SweepPlan.maximumTrials) trials; shorten the lists")
                return trials
            }
            for axis in axes.listed {
                combinations = combinations.flatMap { chosen in axis.values.map { chosen + [(axis.setting, $0)] } }
            }
            for (number, chosen) in combinations.enumerated() {
                var config = TrialConfig(model: model, data: data, training: TrainingSettings(method: condition.method))
                let trial: PlannedTrial
                do {
                    // Values were checked when read; applying checks them again, harmlessly.
                    for (setting, value) in chosen { try setting.apply(value, to: &config) }
                    try config.training.method.validate()
                    // The one refusal the optimizer has: update_in_backward beside clipping (reported once, as
                    // every report is, however many of the condition's trials share it), at the layer that set it.
                    do { try config.training.optimizer.validate() } catch {
                        let setting = TrialSetting.updateInBackward
                        let layer = [condition.settings, grid, defaults].first { $0.sets(setting) } ?? condition.settings
                        reader.report("\(layer.path).\(setting.rawValue)", setting.rawValue, condition.name, "\(error)")
                        continue
                    }
                    if let late = config.evalEpochs?.first(where: { $0 > config.training.epochs }) {
                        reader.report(condition.settings.path, TrialSetting.evalEpochs.rawValue, condition.name,
                                      "eval_epochs lists epoch \(late), past the trial's \(config.training.epochs) epochs")
                        continue
                    }
                    trial = try PlannedTrial(condition: condition.name, config: config)
                } catch {
                    reader.report(condition.settings.path, nil, condition.name, "\(error)")
                    continue
                }
                if let earlier = indexByKey[trial.key] {
                    reader.report(condition.settings.path, nil, condition.name,
                                  "its trial \(number + 1) is the same trial as number \(earlier + 1) of the plan (condition \"\(trials[earlier].condition)\", "
                                  + "key \(trial.key.prefix(12))): the settings that differ do not change the trial")
                    continue
                }
                if let rule = condition.stopping ?? stopping, let problem = Self.inertRule(rule, config: config) {
                    reader.report(condition.stopping != nil ? "\(condition.settings.path).stopping" : "stopping", nil, condition.name, problem)
                }
                indexByKey[trial.key] = trials.count
                trials.append(trial)
            }
            if let rule = condition.stopping ?? stopping,
               let problem = Self.mixedComparison(rule, trials.filter { $0.condition == condition.name }.map(\.config)) {
                reader.report(condition.stopping != nil ? "\(condition.settings.path).stopping" : "stopping", nil, condition.name, problem)
            }
        }
        return trials
    }

    /// Why `rule` would compare trials that compute differently, or nil: `median` and `asha` judge a
    /// trial against its condition's others, and a condition whose trials differ in product
    /// precision, AdamW's moments or the update's place would stop one of those for the other's
    /// numbers (bf16 against f32) as if it were a worse hyperparameter.
    static func mixedComparison(_ rule: StoppingRule, _ configs: [TrialConfig]) -> String? {
        switch rule {
        case .median, .asha: break
        case .target, .plateau: return nil
        }
        func kinds(_ name: String, _ values: [String]) -> String? {
            let distinct = values.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            return distinct.count > 1 ? "\(name) (\(distinct.joined(separator: ", ")))" : nil
        }
        let differing = [
            kinds("precision", configs.map { $0.training.productPrecision.rawValue }),
            kinds("adam_moments", configs.map { $0.training.optimizer.momentPrecision.rawValue }),
            kinds("update_in_backward", configs.map { "\($0.training.optimizer.updateInBackward ?? false)" }),
        ].compactMap { $0 }
        guard !differing.isEmpty else { return nil }
        return "the \(rule.name) rule compares a condition's trials with each other, and these differ in "
            + differing.joined(separator: " and ") + ": give each its own condition, or use a rule that judges a trial alone (target, plateau)"
    }

    /// Why `rule` could never end a trial of `config` early, or nil. The rules decide at evaluated epochs
    /// (asha at the first checkpoint at or after a rung), and the last epoch decides nothing: a rule
    /// without such an epoch before the last would be silently inert.
    static func inertRule(_ rule: StoppingRule, config: TrialConfig) -> String? {
        let epochs = config.training.epochs
        if case .asha = rule {
            let every = config.checkpointEvery
            let judged = rule.rungs(plannedEpochs: epochs).contains { rung in
                every > 0 && (rung + every - 1) / every * every < epochs
            }
            return judged ? nil : "the asha rule judges a rung at the first checkpoint at or after it, and these trials "
                + "(\(epochs) epochs, checkpoint_every \(every)) have no rung with a checkpoint before their last epoch: "
                + "lower grace_epochs or list rungs, and set checkpoint_every"
        }
        // Epoch 0 (the base model) has an accuracy but no loss, and nothing before it to plateau from or compare.
        let first = if case .target = rule { 0 } else { 1 }
        guard !(first..<max(first, epochs)).contains(where: config.evaluates(epoch:)) else { return nil }
        return "the \(rule.name) rule decides at evaluated epochs, and these trials (\(epochs) epochs, eval_every \(config.evalEvery)) "
            + "evaluate at none before their last: set eval_every or eval_epochs"
    }
}
