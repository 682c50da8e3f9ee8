// MedianRule: a trial worse than the median of its condition's other trials at
// the same evaluated epoch stops (the median stopping rule of Google Vizier,
// compared epoch by epoch) — after a grace period, and only once enough other
// trials report that epoch. A pure function of recorded epochs: what the run
// database holds when the trial's epoch is recorded (trials that report the
// epoch later do not revisit the decision).
import Store
import Trial

enum MedianRule {
    /// The decision on `own` (the trial's epoch just recorded), given the same epoch of its condition's other
    /// trials, or nil to go on. Only evaluated epochs are judged, whichever the metric; epochs up to
    /// `graceEpochs` never are.
    static func decide(_ own: RecordedMetrics, others: [RecordedMetrics], metric: StoppingMetric, graceEpochs: Int,
                       minTrials: Int) -> StoppingDecision? {
        guard own.epoch > graceEpochs, own.accuracy != nil, let value = own.value(of: metric) else { return nil }
        let peers = others.filter { $0.epoch == own.epoch }.compactMap { $0.value(of: metric) }.sorted()
        guard peers.count >= minTrials, !peers.isEmpty else { return nil }
        let middle = peers.count / 2
        let median = peers.count % 2 == 1 ? peers[middle] : (peers[middle - 1] + peers[middle]) / 2
        let worse = metric.higherIsBetter ? value < median : value > median
        guard worse else { return nil }
        return StoppingDecision(rule: "median", epoch: own.epoch,
                                reason: "\(metric.rawValue) \(StoppingFormat.number(value)) \(metric.higherIsBetter ? "<" : ">") median "
                                    + "\(StoppingFormat.number(median)) of \(peers.count) other trials of the condition at epoch \(own.epoch)")
    }
}
