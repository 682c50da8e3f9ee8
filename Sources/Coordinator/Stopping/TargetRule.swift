// TargetRule: a trial that has reached its target accuracy stops — at least
// `accuracy` at `evaluations` consecutive evaluations (docs/sweep-spec.md).
// A pure function of the trial's recorded epochs.
import Store
import Trial

enum TargetRule {
    /// The decision at `epoch` (the evaluation just recorded), or nil to go on. Epochs without an evaluation
    /// are not counted and do not break a run of evaluations.
    static func decide(_ history: [RecordedMetrics], accuracy target: Double, evaluations: Int, epoch: Int) -> StoppingDecision? {
        let evaluated = history.filter { $0.epoch <= epoch && $0.accuracy != nil }.sorted { $0.epoch < $1.epoch }
        guard evaluated.last?.epoch == epoch, evaluated.count >= evaluations else { return nil }
        let run = evaluated.suffix(evaluations)
        guard run.allSatisfy({ ($0.accuracy ?? -.infinity) >= target }) else { return nil }
        let epochs = run.map { "\($0.epoch)" }.joined(separator: ", ")
        let values = run.map { StoppingFormat.number($0.accuracy ?? .nan) }.joined(separator: ", ")
        return StoppingDecision(rule: "target", epoch: epoch,
                                reason: "accuracy ≥ \(StoppingFormat.number(target)) at epochs \(epochs) (\(values))")
    }
}

/// Numbers in a decision's reason: four significant digits, as the report prints them.
enum StoppingFormat {
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        var text = String(format: "%.4g", value)
        if text.contains("e") { text = text.replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+0", with: "e+") }
        return text
    }
}
