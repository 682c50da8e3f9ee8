// TargetRule: a trial stops once its accuracy has been at least the target at
// the given number of consecutive evaluations — decided from recorded epochs only.
import Testing
@testable import Coordinator
import Store

@Suite struct TargetRuleTests {
    /// Epochs 1… with these accuracies (nil: not evaluated), loss 1.
    static func history(_ accuracies: [Double?]) -> [RecordedMetrics] {
        accuracies.enumerated().map { RecordedMetrics(epoch: $0.offset + 1, loss: 1, accuracy: $0.element) }
    }

    @Test func stopsAtTheEvaluationCompletingTheRun() throws {
        let history = Self.history([0.5, 0.91, 0.92])
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 2) == nil, "one evaluation at the target is not two")
        let decision = try #require(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 3))
        #expect(decision.rule == "target" && decision.epoch == 3)
        #expect(decision.reason == "accuracy ≥ 0.9 at epochs 2, 3 (0.91, 0.92)", "\(decision.reason)")
    }

    @Test func anEvaluationBelowTheTargetBreaksTheRun() {
        #expect(TargetRule.decide(Self.history([0.95, 0.85, 0.95]), accuracy: 0.9, evaluations: 2, epoch: 3) == nil)
        #expect(TargetRule.decide(Self.history([0.95, 0.85, 0.95, 0.9]), accuracy: 0.9, evaluations: 2, epoch: 4) != nil,
                "equal to the target counts")
    }

    @Test func epochsWithoutAnEvaluationAreSkippedAndDecideNothing() {
        let history = Self.history([0.95, nil, 0.96, nil])
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 3)?.reason == "accuracy ≥ 0.9 at epochs 1, 3 (0.95, 0.96)")
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 4) == nil, "no evaluation at epoch 4")
    }

    @Test func laterEpochsThanTheOneDecidedAreNotLookedAt() {
        // A decision on epoch 2 (say, re-recorded after a rewind) reads epochs up to 2 only.
        let history = Self.history([0.95, 0.5, 0.97, 0.98])
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 2) == nil)
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 1, epoch: 1)?.epoch == 1)
    }

    @Test func epochZeroIsAnEvaluationLikeAnyOther() {
        let history = [RecordedMetrics(epoch: 0, loss: nil, accuracy: 0.93)] + Self.history([0.94])
        #expect(TargetRule.decide(history, accuracy: 0.9, evaluations: 2, epoch: 1)?.reason == "accuracy ≥ 0.9 at epochs 0, 1 (0.93, 0.94)")
    }
}
