// PlateauRule: a trial whose loss (or accuracy) has stopped improving stops —
// `evaluations` evaluations in a row at none of which the metric beat its best
// before them by more than `minDelta` (Keras' EarlyStopping: min_delta,
// patience). Judged at evaluated epochs only, whichever the metric, as the
// median rule is: a trial then stops at an epoch whose answers were scored, so
// its last accuracy is that of the epoch it stopped at, not of an older one.
// A pure function of the trial's recorded epochs.
import Store
import Trial

enum PlateauRule {
    /// The decision at `epoch` (just recorded), or nil to go on. Only evaluated epochs count (those with an
    /// accuracy); of those, epochs without a value of the metric (epoch 0's loss, a non-finite loss) are skipped.
    static func decide(_ history: [RecordedMetrics], metric: StoppingMetric, minDelta: Double, evaluations: Int,
                       epoch: Int) -> StoppingDecision? {
        let values = history.filter { $0.epoch <= epoch && $0.accuracy != nil }.sorted { $0.epoch < $1.epoch }
            .compactMap { point in point.value(of: metric).map { (epoch: point.epoch, value: $0) } }
        guard let first = values.first, values.last?.epoch == epoch else { return nil }
        var best = first
        var sinceBest = 0
        for point in values.dropFirst() {
            let gain = metric.higherIsBetter ? point.value - best.value : best.value - point.value
            if gain > minDelta {
                best = point
                sinceBest = 0
            } else {
                sinceBest += 1
            }
        }
        guard sinceBest >= evaluations else { return nil }
        let name = metric.rawValue
        return StoppingDecision(rule: "plateau", epoch: epoch,
                                reason: "\(name) not better than \(StoppingFormat.number(best.value)) (epoch \(best.epoch)) by more than "
                                    + "\(StoppingFormat.number(minDelta)) in the \(sinceBest) evaluations since; now \(StoppingFormat.number(values.last?.value ?? .nan))")
    }
}
