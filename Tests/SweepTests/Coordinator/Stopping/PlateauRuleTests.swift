// PlateauRule: a trial stops once its metric has gone `evaluations`
// evaluations without beating its best by more than min_delta — decided from
// recorded epochs only, at evaluated epochs only, loss lower-is-better and
// accuracy higher-is-better.
import Testing
@testable import Coordinator
import Store

@Suite struct PlateauRuleTests {
    /// Evaluated epochs 1, 2, … with these losses (and some accuracy).
    static func losses(_ values: [Double?]) -> [RecordedMetrics] {
        values.enumerated().map { RecordedMetrics(epoch: $0.offset + 1, loss: $0.element, accuracy: 0.5) }
    }

    @Test func aLossThatStopsFallingByMoreThanDeltaStops() throws {
        // 2.0 → 1.0 improves; 0.95 and 0.92 improve on 1.0 by less than 0.1.
        let history = Self.losses([2.0, 1.0, 0.95, 0.92])
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0.1, evaluations: 2, epoch: 3) == nil, "one value since the best")
        let decision = try #require(PlateauRule.decide(history, metric: .loss, minDelta: 0.1, evaluations: 2, epoch: 4))
        #expect(decision.rule == "plateau" && decision.epoch == 4)
        #expect(decision.reason == "loss not better than 1 (epoch 2) by more than 0.1 in the 2 evaluations since; now 0.92", "\(decision.reason)")
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0.01, evaluations: 2, epoch: 4) == nil,
                "each beat the best by more than 0.01")
    }

    @Test func anImprovementResetsTheCount() {
        let history = Self.losses([1.0, 1.0, 0.5, 0.5, 0.5])
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 2, epoch: 3) == nil)
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 2, epoch: 4) == nil)
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 2, epoch: 5)?.epoch == 5, "equal is no improvement")
        #expect(PlateauRule.decide(Self.losses([1.0, 1.2, 1.3]), metric: .loss, minDelta: 0, evaluations: 2, epoch: 3) != nil,
                "a rising loss is no improvement")
    }

    @Test func accuracyIsHigherIsBetterAndSkipsEpochsWithoutAnEvaluation() {
        let history = [0.5, nil, 0.8, nil, 0.81, 0.79].enumerated().map {
            RecordedMetrics(epoch: $0.offset, loss: $0.offset == 0 ? nil : 3, accuracy: $0.element)
        }
        #expect(PlateauRule.decide(history, metric: .accuracy, minDelta: 0.05, evaluations: 2, epoch: 4) == nil, "not evaluated")
        #expect(PlateauRule.decide(history, metric: .accuracy, minDelta: 0.05, evaluations: 2, epoch: 5)?.epoch == 5)
        #expect(PlateauRule.decide(history, metric: .accuracy, minDelta: 0, evaluations: 2, epoch: 5) == nil, "0.81 beat 0.8")
        // The loss is constant from epoch 1 (epoch 0 has none); only evaluated epochs 2, 4 and 5 count, so it
        // plateaus at the second evaluation after epoch 2's: epoch 5.
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 1, epoch: 3) == nil, "not evaluated")
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 2, epoch: 4) == nil)
        #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0, evaluations: 2, epoch: 5)?.epoch == 5)
    }

    /// The loss is judged at evaluated epochs, so a stopped trial's last accuracy is of the epoch it stopped at:
    /// losses between evaluations neither count towards the plateau nor reset it.
    @Test func theLossIsJudgedAtEvaluatedEpochsOnly() throws {
        // Evaluated every 3 epochs (3, 6, 9, 12); the loss flattens at epoch 4.
        let losses = [2.0, 1.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
        let history = losses.enumerated().map { RecordedMetrics(epoch: $0.offset + 1, loss: $0.element,
                                                                accuracy: ($0.offset + 1) % 3 == 0 ? 0.7 : nil) }
        for epoch in 1...11 {
            #expect(PlateauRule.decide(history, metric: .loss, minDelta: 0.01, evaluations: 2, epoch: epoch) == nil, "epoch \(epoch)")
        }
        // Best 0.5 at epoch 6; epochs 9 and 12 do not beat it: the stop is at evaluated epoch 12, not at 6.
        let decision = try #require(PlateauRule.decide(history, metric: .loss, minDelta: 0.01, evaluations: 2, epoch: 12))
        #expect(decision.reason == "loss not better than 0.5 (epoch 6) by more than 0.01 in the 2 evaluations since; now 0.5", "\(decision.reason)")
    }
}
