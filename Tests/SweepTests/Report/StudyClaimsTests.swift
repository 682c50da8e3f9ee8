// The claims table: each claim holds, differs or is not measured according
// to the run's numbers, with arms found by method/rank/alpha.
import Foundation
import Testing
@testable import Report
@testable import Store
@testable import Core
import TestSupport
import Trial

@Suite struct StudyClaimsTests {
    func claims(_ conditions: [SyntheticCondition], plannedEpochs: Int) -> [ClaimCheck] {
        StudyClaims.check(ConditionAggregate.all(in: SyntheticStudy.snapshot(conditions, plannedEpochs: plannedEpochs)))
    }

    @Test func aShortRunMeasuresOnlyWhatItCan() {
        // Eight epochs: full fine-tuning is already above 0.9, but its loss is
        // not yet below 0.05 and no curve has settled.
        let checks = claims(SyntheticStudy.conditions(recording: 8), plannedEpochs: 100)
        #expect(checks.map(\.verdict) == [.holds, .notMeasured, .notMeasured, .notMeasured, .notMeasured, .notMeasured, .holds])
        #expect(checks[1].measured.contains("has not reached epoch 100"))
        #expect(checks[2].measured.contains("too few epochs (needs 10)"))
    }

    @Test func absentArmsAreNotMeasured() {
        let onlyAdapters = SyntheticStudy.conditions.filter { $0.method.kind == .lora }
        let checks = claims(onlyAdapters, plannedEpochs: 30)
        #expect(checks.map(\.verdict) == [.notMeasured, .notMeasured, .notMeasured, .differs, .notMeasured, .notMeasured, .notMeasured])
        #expect(checks[0].measured == "no condition for full fine-tuning")
        #expect(checks[6].measured.contains("no condition for full fine-tuning, QLoRA r=8 α=32, IA³"))
    }

    @Test func armsAreFoundBySettingsNotNames() {
        var renamed = SyntheticStudy.conditions
        for index in renamed.indices { renamed[index].name = "arm \(renamed.count - index)" }
        #expect(claims(renamed, plannedEpochs: 30).map(\.verdict) == [.holds, .holds, .holds, .differs, .holds, .differs, .holds])
        // A LoRA with other settings is no arm of the study.
        #expect(StudyArm(method: "lora", rank: 16, alpha: 32) == nil)
        #expect(StudyArm(method: "qlora", rank: 8, alpha: 32) == .qloraRank8)
    }

    @Test func slowFullFineTuningAndRuntimeOrderDiffer() {
        var conditions = SyntheticStudy.conditions(recording: 100)
        conditions[0].accuracyTau = 2.5  // full: above 0.9 only at epoch 6
        conditions[0].loss = { 0.06 + 2.4 * exp(-Double($0) / 10) }  // never below 0.05
        conditions[1].secondsPerEpoch = 1.2  // LoRA r=4 no longer the cheapest
        let checks = claims(conditions, plannedEpochs: 100)
        #expect(checks[0].verdict == .differs && checks[0].measured.contains("at epoch 6"))
        #expect(checks[1].verdict == .differs && checks[1].measured.contains("never below 0.05"))
        #expect(checks[6].verdict == .differs)
        #expect(checks[6].measured.hasSuffix("not so: LoRA r=4 cheapest, r=8 slightly above r=4"))
    }

    /// Issue 15: a sweep evaluating every 5 epochs never measured epoch 3, so claim 1 ("within 3
    /// epochs") is not measured, not "differs"; evaluated at epoch 3 and below 0.9 there, it differs.
    @Test func claimOneIsDecidedOnlyWhereEpochThreeWasEvaluated() {
        var conditions = SyntheticStudy.conditions(recording: 30)
        conditions[0].accuracyTau = 2.5  // full: above 0.9 only at epoch 6
        var aggregates = ConditionAggregate.all(in: SyntheticStudy.snapshot(conditions, plannedEpochs: 30))
        let everyEpoch = StudyClaims.check(aggregates)[0]
        #expect(everyEpoch.verdict == .differs && everyEpoch.measured.contains("at epoch 6"))
        for index in aggregates.indices { aggregates[index].accuracy.removeAll { $0.epoch % 5 != 0 } }
        let everyFifth = StudyClaims.check(aggregates)[0]
        #expect(everyFifth.verdict == .notMeasured, "\(everyFifth)")
        #expect(everyFifth.measured.contains("first above 0.9 at epoch 10") && everyFifth.measured.contains("epoch 3 was not evaluated"))
    }

    /// examples/paper-quick.json's schedule (epoch 0, every epoch to 10, then every 5) evaluates epoch 3, so
    /// claim 1 is decided there; its old schedule (every 5) left it not measured.
    @Test func paperQuickScheduleMeasuresClaimOne() throws {
        let file = TestPaths.repositoryRoot.appendingPathComponent("examples/paper-quick.json")
        let spec = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let defaults = try #require(spec["defaults"] as? [String: Any])
        var config = TrialConfig(model: "m", data: "d", training: TrainingSettings(method: .full),
                                 evalEvery: try #require(defaults["eval_every"] as? Int))
        config.evalEpochs = defaults["eval_epochs"] as? [Int]
        config.training.epochs = try #require(defaults["epochs"] as? Int)
        #expect(config.evaluates(epoch: 0) && config.evaluates(epoch: 3))
        var conditions = SyntheticStudy.conditions(recording: 30)
        conditions[0].accuracyTau = 2.5  // full: above 0.9 only at epoch 6
        for (schedule, verdict) in [(config, ClaimVerdict.differs),
                                    (TrialConfig(model: "m", data: "d", training: config.training, evalEvery: 5), .notMeasured)] {
            var aggregates = ConditionAggregate.all(in: SyntheticStudy.snapshot(conditions, plannedEpochs: 30))
            for index in aggregates.indices { aggregates[index].accuracy.removeAll { !schedule.evaluates(epoch: $0.epoch) } }
            #expect(StudyClaims.check(aggregates)[0].verdict == verdict, "\(StudyClaims.check(aggregates)[0])")
        }
    }

    /// The study's arms crossed with a precision axis: every condition has an
    /// f32 and a bf16 line (`lines` the bf16 curves), told apart by the
    /// trials' configurations.
    static func crossed(_ f32: [SyntheticCondition], _ bf16: [SyntheticCondition], plannedEpochs: Int,
                        bf16Conditions: Bool = false) -> RunSnapshot {
        func settings(_ trial: ReportTrial, bf16: Bool) -> TrialSettings {
            var values = ["training.method.kind": trial.method, "training.learningRate": "\(trial.learningRate)"]
            if let rank = trial.rank { values["training.method.rank"] = "\(rank)" }
            if let alpha = trial.alpha { values["training.method.alpha"] = "\(alpha)" }
            if bf16 { values["training.precision"] = "bf16" }
            return TrialSettings(values)
        }
        var snapshot = SyntheticStudy.snapshot(f32, plannedEpochs: plannedEpochs)
        let second = SyntheticStudy.snapshot(bf16, plannedEpochs: plannedEpochs)
        // Each condition's bf16 trials after its f32 ones, as a grid expands a precision axis.
        var trials: [ReportTrial] = []
        for condition in f32.map(\.name) {
            for trial in snapshot.trials where trial.condition == condition {
                var t = trial
                t.settings = settings(trial, bf16: false)
                trials.append(t)
            }
            for trial in second.trials where trial.condition == condition {
                var t = trial
                t.key += "-bf16"
                t.settings = settings(trial, bf16: true)
                // Or a condition of its own for each precision, as a spec can set it.
                if bf16Conditions { t.condition += "-bf16" }
                trials.append(t)
            }
        }
        snapshot.trials = trials
        snapshot.epochs += second.epochs.map { row in
            var r = row
            r.trialKey += "-bf16"
            return r
        }
        return snapshot
    }

    /// Under a precision axis the claims are checked on each precision's
    /// lines apart (here full fine-tuning learns slower in bf16: claim 1
    /// differs there alone); with an arm missing from one precision, they
    /// read each arm's first line, as before.
    @Test func aPrecisionAxisGetsTheClaimsOncePerPrecision() throws {
        let f32 = SyntheticStudy.conditions(recording: 30)
        var bf16 = f32
        bf16[0].accuracyTau = 2.5  // full: above 0.9 only at epoch 6
        let conditions = ConditionAggregate.all(in: Self.crossed(f32, bf16, plannedEpochs: 30))
        #expect(conditions.count == 10)
        let groups = try #require(StudyClaims.groups(conditions))
        #expect(groups.map(\.label) == ["f32", "bf16"])
        #expect(groups.map { $0.claims[0].verdict } == [.holds, .differs], "\(groups.map { $0.claims[0] })")
        #expect(groups[1].claims[0].measured.contains("at epoch 6"))
        #expect(groups[0].claims == StudyClaims.check(conditions), "the f32 lines are each arm's first")
        #expect(groups[0].claims == claims(f32, plannedEpochs: 30), "the f32 table reads the f32 lines alone")
        #expect(groups[1].claims == claims(bf16, plannedEpochs: 30), "the bf16 table reads the bf16 lines alone")

        // The report gives a table per precision and says why.
        let report = RunReport(snapshot: Self.crossed(f32, bf16, plannedEpochs: 30))
        #expect(report.claimGroups == groups)
        let markdown = MarkdownReportWriter.markdown(ReportDocument(report, generated: Date(timeIntervalSince1970: 0)))
        #expect(markdown.contains("### Lines with f32") && markdown.contains("### Lines with bf16"), "\(markdown)")
        #expect(markdown.contains("Every arm has a line with each of f32; bf16"))

        // IA³ in f32 alone: not every arm in each precision.
        let partial = conditions.filter { !($0.arm == .ia3 && $0.condition.hasSuffix("bf16")) }
        #expect(partial.count == 9)
        #expect(StudyClaims.groups(partial) == nil)
        // No axis: one line per arm.
        #expect(StudyClaims.groups(ConditionAggregate.all(in: SyntheticStudy.snapshot(f32, plannedEpochs: 30))) == nil)

        // The precision set per condition ("full-bf16", …) instead of a grid axis: the same groups.
        let separate = ConditionAggregate.all(in: Self.crossed(f32, bf16, plannedEpochs: 30, bf16Conditions: true))
        #expect(separate.count == 10 && Set(separate.map(\.condition)).count == 10, "\(separate.map(\.condition))")
        let separateGroups = try #require(StudyClaims.groups(separate))
        #expect(separateGroups.map(\.label) == ["f32", "bf16"])
        #expect(separateGroups.map(\.claims) == groups.map(\.claims))
    }
}
