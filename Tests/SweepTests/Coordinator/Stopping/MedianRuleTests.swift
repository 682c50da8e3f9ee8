// MedianRule: a trial worse than the median of its condition's other trials at
// the same evaluated epoch stops, after the grace period and with enough others.
import Testing
@testable import Coordinator
import Store

@Suite struct MedianRuleTests {
    static func point(_ epoch: Int, accuracy: Double?, loss: Double? = 1) -> RecordedMetrics {
        RecordedMetrics(epoch: epoch, loss: loss, accuracy: accuracy)
    }

    @Test func belowTheMedianOfTheOthersStops() throws {
        let others = [0.6, 0.8, 0.7].map { Self.point(4, accuracy: $0) }
        let decision = try #require(MedianRule.decide(Self.point(4, accuracy: 0.65), others: others, metric: .accuracy, graceEpochs: 2, minTrials: 3))
        #expect(decision.rule == "median" && decision.epoch == 4)
        #expect(decision.reason == "accuracy 0.65 < median 0.7 of 3 other trials of the condition at epoch 4", "\(decision.reason)")
        #expect(MedianRule.decide(Self.point(4, accuracy: 0.7), others: others, metric: .accuracy, graceEpochs: 2, minTrials: 3) == nil,
                "at the median goes on")
        // An even count: the mean of the two middle values (0.65 here).
        let four = others + [Self.point(4, accuracy: 0.5)]
        #expect(MedianRule.decide(Self.point(4, accuracy: 0.64), others: four, metric: .accuracy, graceEpochs: 2, minTrials: 3) != nil)
        #expect(MedianRule.decide(Self.point(4, accuracy: 0.66), others: four, metric: .accuracy, graceEpochs: 2, minTrials: 3) == nil)
    }

    @Test func theGracePeriodAndTheMinimumOfOtherTrialsHoldItBack() {
        let others = [0.6, 0.8, 0.7].map { Self.point(2, accuracy: $0) }
        #expect(MedianRule.decide(Self.point(2, accuracy: 0.1), others: others, metric: .accuracy, graceEpochs: 2, minTrials: 3) == nil,
                "epoch 2 is within the grace period")
        #expect(MedianRule.decide(Self.point(2, accuracy: 0.1), others: others, metric: .accuracy, graceEpochs: 1, minTrials: 3) != nil)
        #expect(MedianRule.decide(Self.point(2, accuracy: 0.1), others: others, metric: .accuracy, graceEpochs: 1, minTrials: 4) == nil,
                "three others report the epoch, four are needed")
        let unevaluated = [Self.point(2, accuracy: nil), Self.point(2, accuracy: nil), Self.point(2, accuracy: 0.9)]
        #expect(MedianRule.decide(Self.point(2, accuracy: 0.1), others: unevaluated, metric: .accuracy, graceEpochs: 1, minTrials: 2) == nil,
                "only others with a value count")
    }

    @Test func lossIsLowerIsBetterAndJudgedOnlyAtEvaluatedEpochs() {
        let others = [1.0, 2.0, 3.0].map { Self.point(5, accuracy: 0.5, loss: $0) }
        #expect(MedianRule.decide(Self.point(5, accuracy: 0.5, loss: 2.5), others: others, metric: .loss, graceEpochs: 0, minTrials: 3)?.reason
                == "loss 2.5 > median 2 of 3 other trials of the condition at epoch 5")
        #expect(MedianRule.decide(Self.point(5, accuracy: 0.5, loss: 1.5), others: others, metric: .loss, graceEpochs: 0, minTrials: 3) == nil)
        #expect(MedianRule.decide(Self.point(5, accuracy: nil, loss: 2.5), others: others, metric: .loss, graceEpochs: 0, minTrials: 3) == nil,
                "epoch 5 of this trial was not evaluated")
    }
}
