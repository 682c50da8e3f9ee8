// StoppingJudge: applies a trial's stopping rule when the coordinator records
// one of its epochs — reading only what the run database holds, so that the
// decision depends on the recorded evaluations and not on timing, and is
// stored with the trial (a restarted coordinator never decides it again).
import Store
import Trial

enum StoppingJudge {
    /// The rule's decision on `epoch` of `subject`, just recorded, or nil to go on. The last planned epoch
    /// decides nothing: the trial ends there anyway, as `done`.
    static func decide(_ subject: StoppingSubject, epoch: Int, in transaction: RunTransaction) throws -> StoppingDecision? {
        guard epoch < subject.plannedEpochs else { return nil }
        switch subject.rule {
        case let .target(accuracy, evaluations):
            return TargetRule.decide(try transaction.recordedMetrics(of: subject.trialKey), accuracy: accuracy,
                                     evaluations: evaluations, epoch: epoch)
        case let .plateau(metric, minDelta, evaluations):
            return PlateauRule.decide(try transaction.recordedMetrics(of: subject.trialKey), metric: metric, minDelta: minDelta,
                                      evaluations: evaluations, epoch: epoch)
        case let .median(metric, graceEpochs, minTrials):
            guard epoch > graceEpochs,
                  let own = try transaction.recordedMetrics(of: subject.trialKey).first(where: { $0.epoch == epoch }) else { return nil }
            let others = try transaction.conditionMetrics(sweepID: subject.sweepID, condition: subject.condition, epoch: epoch,
                                                          excluding: subject.trialKey)
            return MedianRule.decide(own, others: others, metric: metric, graceEpochs: graceEpochs, minTrials: minTrials)
        case .asha:
            // Judged when a checkpoint passes a rung (`judgeRung`): a paused trial needs one to resume from.
            return nil
        }
    }
}

extension StoppingJudge {
    /// The asha rule's judgement of `subject`, whose checkpoint at `checkpoint` was just recorded (`previous`:
    /// the checkpoint stored before it), or nil when the trial has no asha rule or the checkpoint passes no rung.
    static func judgeRung(_ subject: StoppingSubject, previous: Int?, checkpoint: Int,
                          in transaction: RunTransaction) throws -> AshaRule.Judgement? {
        guard case let .asha(metric, reductionFactor, _, _) = subject.rule,
              let rung = AshaRule.rung(subject.rule.rungs(plannedEpochs: subject.plannedEpochs), previous: previous, checkpoint: checkpoint)
        else { return nil }
        let entries = try transaction.rungEntries(sweepID: subject.sweepID, condition: subject.condition, epoch: rung)
        return AshaRule.judge(subject.trialKey, rung: rung, entries: entries, metric: metric, reductionFactor: reductionFactor)
    }
}
