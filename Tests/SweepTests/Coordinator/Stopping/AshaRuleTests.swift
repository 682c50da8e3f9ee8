// AshaRule: the rungs of a trial, which rung a checkpoint passes, and who is
// paused or promoted at a rung — the top ⌊n/η⌋ of the trials reporting it.
import Testing
@testable import Coordinator
import Store
import Trial

@Suite struct AshaRuleTests {
    static func entry(_ key: String, loss: Double?, accuracy: Double? = nil, rung: Int = 2, pausedAt: Int? = nil) -> RungEntry {
        RungEntry(trialKey: key, metrics: RecordedMetrics(epoch: rung, loss: loss, accuracy: accuracy), pausedAt: pausedAt)
    }

    @Test func rungsAreWrittenOrGraceTimesPowersOfTheReductionFactorBeforeTheLastEpoch() {
        #expect(StoppingRule.asha(metric: .loss, reductionFactor: 3, graceEpochs: 1, rungs: nil).rungs(plannedEpochs: 10) == [1, 3, 9])
        #expect(StoppingRule.asha(metric: .loss, reductionFactor: 3, graceEpochs: 1, rungs: nil).rungs(plannedEpochs: 9) == [1, 3])
        #expect(StoppingRule.asha(metric: .loss, reductionFactor: 2, graceEpochs: 2, rungs: nil).rungs(plannedEpochs: 20) == [2, 4, 8, 16])
        #expect(StoppingRule.asha(metric: .loss, reductionFactor: 2, graceEpochs: 1, rungs: [2, 4, 8]).rungs(plannedEpochs: 8) == [2, 4])
        #expect(StoppingRule.median(metric: .loss, graceEpochs: 1, minTrials: 1).rungs(plannedEpochs: 8).isEmpty)
    }

    @Test func aRungIsJudgedAtTheFirstCheckpointAtOrAfterIt() {
        #expect(AshaRule.rung([1, 3, 9], previous: nil, checkpoint: 1) == 1)
        #expect(AshaRule.rung([1, 3, 9], previous: 1, checkpoint: 2) == nil, "no rung in (1, 2]")
        #expect(AshaRule.rung([1, 3, 9], previous: 2, checkpoint: 4) == 3, "rung 3 passed by the checkpoint at 4")
        #expect(AshaRule.rung([1, 3, 9], previous: nil, checkpoint: 9) == 9, "the highest rung passed")
        #expect(AshaRule.rung([1, 3, 9], previous: 9, checkpoint: 9) == nil, "a rung is judged once")
    }

    @Test func theFirstAtARungWaitsAndIsPromotedWhenOthersRankItInTheTopHalf() throws {
        // Alone at the rung: ⌊1/2⌋ = 0 go on, so it pauses.
        let alone = AshaRule.judge("a", rung: 2, entries: [Self.entry("a", loss: 1.0)], metric: .loss, reductionFactor: 2)
        let pause = try #require(alone.pause)
        #expect(pause.rule == "asha" && pause.epoch == 2 && alone.promote.isEmpty)
        #expect(pause.reason == "loss 1 at epoch 2: not in the top 0 (1/2) of 1 trials", "\(pause.reason)")
        // b reports worse: the top 1 of 2 is a, paused at this rung: b pauses, a is promoted.
        let worse = AshaRule.judge("b", rung: 2, entries: [Self.entry("a", loss: 1.0, pausedAt: 2), Self.entry("b", loss: 1.5)],
                                   metric: .loss, reductionFactor: 2)
        #expect(worse.pause?.epoch == 2)
        #expect(worse.promote.map(\.key) == ["a"])
        #expect(worse.promote.first?.decision.reason == "loss 1 at epoch 2: in the top 1 (1/2) of 2 trials")
        // b reports better: b goes on, a stays paused.
        let better = AshaRule.judge("b", rung: 2, entries: [Self.entry("a", loss: 1.0, pausedAt: 2), Self.entry("b", loss: 0.5)],
                                    metric: .loss, reductionFactor: 2)
        #expect(better == AshaRule.Judgement(pause: nil, promote: []))
    }

    @Test func accuracyRanksHigherFirstAndOnlyTrialsPausedAtThisRungArePromoted() {
        let entries = [Self.entry("a", loss: 1, accuracy: 0.9, pausedAt: 2), Self.entry("b", loss: 1, accuracy: 0.8, pausedAt: 4),
                       Self.entry("c", loss: 1, accuracy: 0.1), Self.entry("d", loss: 1, accuracy: 0.2, pausedAt: 2),
                       Self.entry("e", loss: 1, accuracy: 0.3)]
        // η = 2: the top 2 of 5 are a and b; b waits at rung 4, not this one (2), so only a is promoted.
        #expect(AshaRule.top(entries, metric: .accuracy, reductionFactor: 2) == ["a", "b"])
        let judged = AshaRule.judge("c", rung: 2, entries: entries, metric: .accuracy, reductionFactor: 2)
        #expect(judged.pause != nil && judged.promote.map(\.key) == ["a"])
        #expect(AshaRule.judge("a", rung: 2, entries: entries, metric: .accuracy, reductionFactor: 2).pause == nil)
    }

    @Test func equalValuesRankInKeyOrderAndATrialWithoutTheMetricIsNotJudged() {
        let tied = [Self.entry("b", loss: 1), Self.entry("a", loss: 1), Self.entry("c", loss: 2)]
        #expect(AshaRule.top(tied, metric: .loss, reductionFactor: 2) == ["a"])
        #expect(AshaRule.judge("b", rung: 2, entries: tied, metric: .loss, reductionFactor: 2).pause != nil)
        // An accuracy rung that was not evaluated: no value, no judgement, and it is not counted among the n.
        let unevaluated = [Self.entry("a", loss: 1, accuracy: nil), Self.entry("b", loss: 1, accuracy: 0.5)]
        #expect(AshaRule.judge("a", rung: 2, entries: unevaluated, metric: .accuracy, reductionFactor: 2) == AshaRule.Judgement(pause: nil, promote: []))
        #expect(AshaRule.top(unevaluated, metric: .accuracy, reductionFactor: 2).isEmpty, "⌊1/2⌋ = 0")
    }
}
