// ConditionAggregate: one condition of a run, its trials (seeds) combined —
// per-epoch curves and the final numbers the tables and claims use.
import Foundation

/// A condition with its trials' metrics combined across seeds. Built from a
/// snapshot, so a running condition's curves simply end at its latest epoch;
/// at epochs only some seeds have reached, statistics are over those seeds.
public struct ConditionAggregate: Sendable, Equatable {
    public var condition: String
    /// Its trials in insertion order.
    public var trials: [ReportTrial]
    /// The study arm its method/rank/alpha identify, if any.
    public var arm: StudyArm?
    /// The settings its trials share (all but the seed): what told it apart
    /// from the condition's other lines.
    public var lineSettings: TrialSettings
    public var accuracy: [CurvePoint]
    public var loss: [CurvePoint]
    public var trainSeconds: [CurvePoint]
    /// Each trial's accuracy at its last evaluated epoch.
    public var finalAccuracy: SeedSpread?
    /// Each trial's loss at its last epoch.
    public var finalLoss: SeedSpread?
    /// Each trial's cumulative training seconds over its epochs.
    public var trainSecondsPerEpoch: SeedSpread?
    /// Perplexity at each trial's first and last evaluated epochs.
    public var firstPerplexity: SeedSpread?
    public var lastPerplexity: SeedSpread?

    public func curve(_ metric: ReportMetric) -> [CurvePoint] {
        switch metric {
        case .accuracy: accuracy
        case .loss: loss
        case .trainSeconds: trainSeconds
        }
    }

    public var doneTrials: Int { trials.filter { $0.status == "done" }.count }
    /// Whether any trial may still add epochs.
    public var isPartial: Bool { trials.contains(where: \.isOpen) }
    /// The latest epoch any trial has recorded.
    public var lastEpoch: Int { trials.map(\.lastEpoch).max() ?? 0 }
    public var plannedEpochs: Int { trials.map(\.plannedEpochs).max() ?? 0 }

    /// Method and settings, e.g. "lora r=8 α=32, lr 0.0002".
    public var settings: String {
        guard let trial = trials.first else { return "" }
        var text = trial.method
        if let rank = trial.rank { text += " r=\(rank)" }
        if let alpha = trial.alpha { text += " α=\(ReportNumber.compact(alpha))" }
        return text + ", lr \(ReportNumber.compact(trial.learningRate))"
    }

    /// The first epoch whose mean satisfies `test`, or nil.
    public func firstEpoch(_ metric: ReportMetric, where test: (Double) -> Bool) -> Int? {
        curve(metric).first { test($0.spread.mean) }?.epoch
    }

    /// The last point of a curve: how far it goes.
    public func last(_ metric: ReportMetric) -> CurvePoint? { curve(metric).last }

    /// The mean of the last `points` points of the mean curve: where the
    /// curve has settled, less noisy than its very last point.
    public func plateau(_ metric: ReportMetric, points: Int = 5) -> Double? {
        let tail = curve(metric).suffix(points)
        return tail.isEmpty ? nil : tail.reduce(0) { $0 + $1.spread.mean } / Double(tail.count)
    }

    /// The conditions of `snapshot`, in the order their first trial was added.
    /// Seeds of a condition are combined; trials of a condition that differ in
    /// any other setting (a grid axis: learning rate, rank, precision, batch
    /// size, …) are separate lines, named after what differs ("ia3, lr 0.01",
    /// "lora-r8, bf16").
    public static func all(in snapshot: RunSnapshot) -> [ConditionAggregate] {
        let rowsByTrial = snapshot.epochsByTrial()
        // A condition with a trial whose configuration could not be read is told apart by the columns alone.
        let byColumns = Set(snapshot.trials.filter { $0.settings == nil }.map(\.condition))
        var order: [Variant] = []
        // Each line's trials, as indices into `snapshot.trials`.
        var trialsByVariant: [Variant: [Int]] = [:]
        for (index, trial) in snapshot.trials.enumerated() {
            let variant = Variant(trial, byColumns: byColumns.contains(trial.condition))
            if trialsByVariant[variant] == nil { order.append(variant) }
            trialsByVariant[variant, default: []].append(index)
        }
        // What differs among a condition's lines, found once per condition.
        var siblingsByCondition: [String: [Variant]] = [:]
        for variant in order { siblingsByCondition[variant.condition, default: []].append(variant) }
        let differing = siblingsByCondition.mapValues { TrialSettings.differingPaths($0.map(\.settings)) }
        var taken: [String: Int] = [:]
        return order.map { variant in
            let indices = trialsByVariant[variant] ?? []
            // Labels shorten values (a path's last component, 4 significant digits): a repeat gets a number.
            let lines = siblingsByCondition[variant.condition]?.count ?? 1
            var name = variant.name(differing: lines > 1 ? differing[variant.condition] ?? [] : nil)
            taken[name, default: 0] += 1
            if let count = taken[name], count > 1 { name += " (\(count))" }
            return ConditionAggregate(condition: name, trials: indices.map { snapshot.trials[$0] }, rows: indices.map { rowsByTrial[$0] },
                                      lineSettings: variant.settings)
        }
    }

    /// Each trial's line, by trial key: the name of the aggregate it is in.
    public static func lineNames(_ conditions: [ConditionAggregate]) -> [String: String] {
        var names: [String: String] = [:]
        for condition in conditions { for trial in condition.trials { names[trial.key] = condition.condition } }
        return names
    }

    /// What tells apart the lines of one condition: its settings but the
    /// seed — every setting of the trial's configuration, so that a grid axis
    /// over any of them (precision, batch size, moments, …) never averages
    /// unlike trials as if they were seeds.
    struct Variant: Hashable {
        var condition: String
        var settings: TrialSettings

        /// `byColumns`: the settings the trial's columns give, for every
        /// trial of a condition where some configuration could not be read
        /// (so that readable and unreadable ones compare like with like).
        init(_ trial: ReportTrial, byColumns: Bool = false) {
            condition = trial.condition
            settings = byColumns ? TrialSettings(columnsOf: trial) : trial.settings ?? TrialSettings(columnsOf: trial)
        }

        /// The condition's name, plus its values of the settings at
        /// `differing` (those in which the condition's lines differ; nil for
        /// a condition with one line).
        func name(differing: Set<String>?) -> String {
            guard let differing else { return condition }
            let parts = settings.labelParts(differing: differing)
            return parts.isEmpty ? condition : "\(condition), \(parts.joined(separator: ", "))"
        }
    }

    /// `rows[i]` are the epoch rows of `trials[i]`, in epoch order.
    init(condition: String, trials: [ReportTrial], rows: [[ReportEpoch]], lineSettings: TrialSettings) {
        self.condition = condition
        self.trials = trials
        self.lineSettings = lineSettings
        arm = trials.first.flatMap { StudyArm(method: $0.method, rank: $0.rank, alpha: $0.alpha) }
        accuracy = Self.curve(.accuracy, rows)
        loss = Self.curve(.loss, rows)
        trainSeconds = Self.curve(.trainSeconds, rows)
        finalAccuracy = SeedSpread(rows.compactMap { $0.last(where: { $0.accuracy != nil })?.accuracy })
        finalLoss = SeedSpread(rows.compactMap { $0.last?.loss })
        // A trial with only its epoch-0 evaluation (the base model) has trained nothing yet.
        trainSecondsPerEpoch = SeedSpread(rows.compactMap { trial in
            trial.last.flatMap { $0.epoch > 0 ? $0.trainSeconds / Double($0.epoch) : nil }
        })
        firstPerplexity = SeedSpread(rows.compactMap { $0.first(where: { $0.perplexity != nil })?.perplexity })
        lastPerplexity = SeedSpread(rows.compactMap { $0.last(where: { $0.perplexity != nil })?.perplexity })
    }

    private static func curve(_ metric: ReportMetric, _ rows: [[ReportEpoch]]) -> [CurvePoint] {
        var valuesByEpoch: [Int: [Double]] = [:]
        for row in rows.joined() {
            if let value = metric.value(of: row), value.isFinite { valuesByEpoch[row.epoch, default: []].append(value) }
        }
        return valuesByEpoch.keys.sorted().compactMap { epoch in
            SeedSpread(valuesByEpoch[epoch] ?? []).map { CurvePoint(epoch: epoch, spread: $0) }
        }
    }
}
