// AshaRule: asynchronous successive halving (Li et al., "A System for
// Massively Parallel Hyperparameter Tuning", 2020). At each rung epoch a trial
// goes on only while it ranks in the top 1/η of its condition's trials that
// have reported the rung so far; otherwise it is paused with its checkpoint.
// As more trials report the rung, a paused trial that now ranks in the top
// 1/η is promoted (resumed from its checkpoint). Pure functions of what the
// run database holds when a rung is judged.
import Store
import Trial

enum AshaRule {
    /// What judging one trial at a rung decides: the trial's own pause (nil: it goes on) and the paused
    /// trials of the rung it promotes.
    struct Judgement: Equatable {
        var pause: StoppingDecision?
        var promote: [Promotion]
    }

    struct Promotion: Equatable {
        var key: String
        var decision: StoppingDecision
    }

    /// The rung a checkpoint at `checkpoint` passes, given the trial's previous checkpoint: the highest rung in
    /// (`previous`, `checkpoint`] — a rung is judged at the first checkpoint at or after it, so that the
    /// paused trial has a checkpoint to resume from. Nil when it passes none.
    static func rung(_ rungs: [Int], previous: Int?, checkpoint: Int) -> Int? {
        rungs.last { $0 > (previous ?? 0) && $0 <= checkpoint }
    }

    /// The keys ranking in the top ⌊n/η⌋ of `entries` (the n trials with a value of `metric` at the rung):
    /// best first, equal values in key order, so that the ranking depends on stored values only.
    static func top(_ entries: [RungEntry], metric: StoppingMetric, reductionFactor: Int) -> [String] {
        var ranked: [Ranked] = []
        for entry in entries {
            if let value = entry.metrics.value(of: metric) { ranked.append(Ranked(key: entry.trialKey, value: value)) }
        }
        ranked.sort { a, b in
            if a.value == b.value { return a.key < b.key }
            return metric.higherIsBetter ? a.value > b.value : a.value < b.value
        }
        return ranked.prefix(ranked.count / reductionFactor).map { (r: Ranked) -> String in r.key }
    }

    private struct Ranked {
        var key: String
        var value: Double
    }

    /// Judges `trialKey`, just checkpointed past `rung`, among `entries` (every trial of the condition that has
    /// recorded the rung, itself included). A trial without a value of the metric at the rung (an accuracy
    /// rung that was not evaluated) is not judged and goes on.
    static func judge(_ trialKey: String, rung: Int, entries: [RungEntry], metric: StoppingMetric, reductionFactor: Int) -> Judgement {
        guard let own = entries.first(where: { $0.trialKey == trialKey }), let value = own.metrics.value(of: metric) else {
            return Judgement(pause: nil, promote: [])
        }
        let top = top(entries, metric: metric, reductionFactor: reductionFactor)
        let ranked = entries.filter { $0.metrics.value(of: metric) != nil }.count
        let keep = top.count
        func describe(_ v: Double) -> String {
            "\(metric.rawValue) \(StoppingFormat.number(v)) at epoch \(rung): not in the top \(keep) (1/\(reductionFactor)) of \(ranked) trials"
        }
        let pause = top.contains(trialKey) ? nil
            : StoppingDecision(rule: "asha", epoch: rung, reason: describe(value))
        let promote = entries.filter { $0.pausedAt == rung && $0.trialKey != trialKey && top.contains($0.trialKey) }.map { entry in
            Promotion(key: entry.trialKey,
                      decision: StoppingDecision(rule: "asha", epoch: rung,
                                        reason: "\(metric.rawValue) \(StoppingFormat.number(entry.metrics.value(of: metric) ?? .nan)) at epoch \(rung): "
                                            + "in the top \(keep) (1/\(reductionFactor)) of \(ranked) trials"))
        }
        return Judgement(pause: pause, promote: promote)
    }
}
