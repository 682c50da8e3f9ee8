// The `stopping` member of a sweep spec: at the top level for every condition
// or in a condition for that one, refused with the field named, and no part
// of any trial's key.
import Foundation
import Testing
@testable import Coordinator
import TestSupport
import Trial

@Suite struct StoppingSpecTests {
    let fixture: SpecFixture
    init() throws { fixture = try SpecFixture() }

    /// Trials of 10 epochs (the default), evaluated every epoch; checkpointed every 10 unless `defaults` says otherwise.
    func spec(_ stopping: String?, conditions: String = #"[{"name": "a", "method": "lora"}, {"name": "b", "method": "ia3"}]"#,
              defaults: String = "{}") -> String {
        let base = fixture.spec(conditions: conditions, defaults: defaults, grid: #"{"seed": [0, 1]}"#)
        guard let stopping else { return base }
        return String(base.dropLast()) + #", "stopping": \#(stopping)}"#
    }

    @Test func aTopLevelRuleAppliesToEveryConditionWithoutItsOwn() throws {
        let plan = try fixture.plan(spec(#"{"rule": "target", "accuracy": 0.9, "evaluations": 2}"#, conditions: """
            [{"name": "a", "method": "lora"},
             {"name": "b", "method": "ia3", "stopping": {"rule": "target", "accuracy": 0.5, "evaluations": 1}}]
            """))
        #expect(plan.stopping == ["a": .target(accuracy: 0.9, evaluations: 2), "b": .target(accuracy: 0.5, evaluations: 1)])
        let conditionOnly = try fixture.plan(spec(nil, conditions: """
            [{"name": "a", "method": "lora"}, {"name": "b", "method": "ia3", "stopping": {"rule": "target", "accuracy": 0.5, "evaluations": 1}}]
            """))
        #expect(conditionOnly.stopping == ["b": .target(accuracy: 0.5, evaluations: 1)])
        #expect(try fixture.plan(spec(nil)).stopping.isEmpty, "absent: no rule")
    }

    @Test func aPlateauRuleNamesItsMetric() throws {
        let plan = try fixture.plan(spec(#"{"rule": "plateau", "metric": "loss", "min_delta": 0.01, "evaluations": 3}"#))
        #expect(plan.stopping["a"] == .plateau(metric: .loss, minDelta: 0.01, evaluations: 3))
        for rule in [StoppingRule.plateau(metric: .accuracy, minDelta: 0, evaluations: 2), .median(metric: .loss, graceEpochs: 3, minTrials: 2)] {
            #expect(try JSONDecoder().decode(StoppingRule.self, from: try JSONEncoder().encode(rule)) == rule)
        }
        let median = try fixture.plan(spec(#"{"rule": "median", "metric": "accuracy", "grace_epochs": 2, "min_trials": 3}"#))
        #expect(median.stopping["b"] == .median(metric: .accuracy, graceEpochs: 2, minTrials: 3))
        let asha = try fixture.plan(spec(#"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 1}"#,
                                         defaults: #"{"checkpoint_every": 1}"#))
        #expect(asha.stopping["a"] == .asha(metric: .loss, reductionFactor: 3, graceEpochs: 1, rungs: nil))
        let written = try fixture.plan(spec(#"{"rule": "asha", "metric": "accuracy", "reduction_factor": 2, "grace_epochs": 1, "rungs": [2, 4]}"#,
                                            defaults: #"{"checkpoint_every": 2}"#))
        #expect(written.stopping["b"] == .asha(metric: .accuracy, reductionFactor: 2, graceEpochs: 1, rungs: [2, 4]))
        for rule in [StoppingRule.asha(metric: .loss, reductionFactor: 3, graceEpochs: 1, rungs: nil),
                     .asha(metric: .accuracy, reductionFactor: 2, graceEpochs: 1, rungs: [2, 4])] {
            #expect(try JSONDecoder().decode(StoppingRule.self, from: try JSONEncoder().encode(rule)) == rule)
        }
    }

    @Test func stoppingRulesDoNotChangeTrialKeys() throws {
        let without = try fixture.plan(spec(nil))
        let with = try fixture.plan(spec(#"{"rule": "target", "accuracy": 0.9, "evaluations": 2}"#))
        #expect(without.trials.map(\.key) == with.trials.map(\.key) && with.trials.count == 4)
    }

    @Test func theStoredRuleReadsLikeTheSpec() throws {
        let rule = StoppingRule.target(accuracy: 0.9, evaluations: 2)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(rule), as: UTF8.self) == #"{"accuracy":0.9,"evaluations":2,"rule":"target"}"#)
        #expect(try JSONDecoder().decode(StoppingRule.self, from: try encoder.encode(rule)) == rule)
    }

    @Test(arguments: [
        (#""target""#, "stopping", "expected a stopping rule {\"rule\": \"target\" | \"plateau\" | \"median\" | \"asha\", …}, got a string"),
        (#"{"accuracy": 0.9, "evaluations": 2}"#, "stopping.rule", "missing: which rule (target, plateau, median or asha)"),
        (#"{"rule": "targt", "accuracy": 0.9, "evaluations": 2}"#, "stopping.rule", "unknown stopping rule \"targt\" (expected target, plateau, median or asha) (did you mean \"target\"?)"),
        (#"{"rule": "target", "accuracy": 1.5, "evaluations": 2}"#, "stopping.accuracy", "must be a number in [0, 1] (got 1.5)"),
        (#"{"rule": "target", "accuracy": 0.9, "evaluations": 0}"#, "stopping.evaluations", "must be an integer ≥ 1 (got 0)"),
        (#"{"rule": "target", "accuracy": 0.9, "evaluations": 2.5}"#, "stopping.evaluations", "must be an integer ≥ 1 (got 2.5)"),
        (#"{"rule": "target", "accuracy": 0.9}"#, "stopping.evaluations", "missing: an integer ≥ 1"),
        (#"{"rule": "target", "accuracy": 0.9, "evaluations": 2, "patience": 3}"#, "stopping.patience",
         "unknown member \"patience\" of a target rule (expected accuracy, evaluations)"),
        (#"{"rule": "plateau", "metric": "perplexity", "min_delta": 0.01, "evaluations": 3}"#, "stopping.metric",
         "must be \"loss\" or \"accuracy\" (got \"perplexity\")"),
        (#"{"rule": "plateau", "metric": "loss", "min_delta": -0.1, "evaluations": 3}"#, "stopping.min_delta", "must be a number ≥ 0 (got -0.1)"),
        (#"{"rule": "plateau", "metric": "loss", "min_delta": 0.1}"#, "stopping.evaluations", "missing: an integer ≥ 1"),
        (#"{"rule": "median", "metric": "accuracy", "grace_epochs": -1, "min_trials": 3}"#, "stopping.grace_epochs", "must be an integer ≥ 0 (got -1)"),
        (#"{"rule": "median", "metric": "accuracy", "grace_epochs": 2, "min_trials": 0}"#, "stopping.min_trials", "must be an integer ≥ 1 (got 0)"),
        (#"{"rule": "median", "grace_epochs": 2, "min_trials": 3}"#, "stopping.metric", "missing: loss or accuracy"),
        (#"{"rule": "asha", "metric": "loss", "reduction_factor": 1, "grace_epochs": 2}"#, "stopping.reduction_factor",
         "must be an integer ≥ 2 (got 1)"),
        (#"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 0}"#, "stopping.grace_epochs", "must be an integer ≥ 1 (got 0)"),
        (#"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 1, "rungs": [3, 2]}"#, "stopping.rungs",
         "must be increasing epochs ≥ 1 (got 2 in [3, 2])"),
        (#"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 1, "rungs": []}"#, "stopping.rungs",
         "must be a non-empty array of increasing epochs ≥ 1 (got [])"),
        (#"{"rule": "asha", "metric": "loss", "reduction_factor": 3}"#, "stopping.grace_epochs", "missing: an integer ≥ 1"),
    ])
    func refusedRulesNameTheirField(stopping: String, path: String, message: String) {
        let problems = fixture.problems(spec(stopping))
        #expect(problems.map(\.path) == [path] && problems.first?.message == message, "\(problems)")
    }

    @Test func aConditionsRuleIsRefusedWithTheConditionNamed() {
        let problems = fixture.problems(spec(nil, conditions: """
            [{"name": "a", "method": "lora", "stopping": {"rule": "target", "accuracy": -1, "evaluations": 2}}]
            """))
        #expect(problems.map(\.description) == ["conditions[0].stopping.accuracy: must be a number in [0, 1] (got -1) (condition \"a\")"])
    }

    @Test func planShowsEachConditionsRule() throws {
        let file = fixture.directory.file("spec.json")
        try spec(#"{"rule": "median", "metric": "accuracy", "grace_epochs": 2, "min_trials": 3}"#).write(to: file, atomically: true, encoding: .utf8)
        let result = try FactSweepBinary.run(["plan", file.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains(#"stopping rule of a: {"grace_epochs":2,"metric":"accuracy","min_trials":3,"rule":"median"}"#), "\(result.stdout)")
        let json = try FactSweepBinary.run(["plan", file.path, "--json"])
        let document = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((document?["stopping"] as? [String: Any])?.keys.sorted() == ["a", "b"])
    }

    @Test func stoppingIsNotASetting() {
        let json = fixture.spec(conditions: #"[{"name": "a", "method": "lora"}]"#,
                                defaults: #"{"stopping": {"rule": "target", "accuracy": 0.9, "evaluations": 2}}"#)
        #expect(fixture.problems(json).map(\.path) == ["defaults.stopping"])
    }

    /// A rule that could never act on the condition's trials is refused, not left silently inert: the rules decide
    /// at evaluated epochs before the last (asha at a checkpoint at or after a rung).
    @Test func aRuleThatCouldNeverActIsRefused() throws {
        let plateau = #"{"rule": "plateau", "metric": "loss", "min_delta": 0.01, "evaluations": 2}"#
        #expect(fixture.problems(spec(plateau, defaults: #"{"eval_every": 0}"#)).map(\.description) == [
            "stopping: the plateau rule decides at evaluated epochs, and these trials (10 epochs, eval_every 0) evaluate at none "
                + "before their last: set eval_every or eval_epochs (condition \"a\")",
            "stopping: the plateau rule decides at evaluated epochs, and these trials (10 epochs, eval_every 0) evaluate at none "
                + "before their last: set eval_every or eval_epochs (condition \"b\")",
        ])
        // Evaluated at the last epoch only (eval_every 10): nothing to decide before it.
        #expect(fixture.problems(spec(nil, conditions: #"[{"name": "a", "method": "lora", "stopping": \#(plateau)}]"#,
                                      defaults: #"{"eval_every": 10}"#)).map(\.path) == ["conditions[0].stopping"])
        #expect(fixture.problems(spec(plateau, defaults: #"{"eval_every": 0, "eval_epochs": [5]}"#)).isEmpty, "epoch 5 is evaluated")
        let target = #"{"rule": "target", "accuracy": 0.9, "evaluations": 1}"#
        #expect(fixture.problems(spec(target, defaults: #"{"eval_every": 0, "eval_epochs": [0]}"#)).isEmpty, "the base model is evaluated")

        // asha: rungs 1, 3 and 9 of 10 epochs, checkpointed every 10 (the default): no rung is ever judged.
        let asha = #"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 1}"#
        let problems = fixture.problems(spec(asha))
        #expect(problems.count == 2 && problems.allSatisfy { $0.path == "stopping" }, "\(problems)")
        #expect(problems.first?.message == "the asha rule judges a rung at the first checkpoint at or after it, and these trials "
                + "(10 epochs, checkpoint_every 10) have no rung with a checkpoint before their last epoch: lower grace_epochs or list rungs, "
                + "and set checkpoint_every")
        #expect(fixture.problems(spec(asha, defaults: #"{"checkpoint_every": 3}"#)).isEmpty, "rung 3 is judged at epoch 3")
    }

    /// `median` and `asha` judge a trial against its condition's others: a condition whose trials
    /// compute differently (a precision axis) would have its bf16 trials stopped for their f32
    /// neighbours' numbers. Refused with the condition and the settings named; the rules that judge a
    /// trial alone, and a precision per condition, are fine.
    @Test func aComparingRuleOverTrialsOfOtherPrecisionsIsRefused() throws {
        func withRule(_ rule: String, grid: String, conditions: String = #"[{"name": "a", "method": "lora"}]"#) -> String {
            let base = fixture.spec(conditions: conditions, defaults: #"{"checkpoint_every": 1}"#, grid: grid)
            return String(base.dropLast()) + #", "stopping": \#(rule)}"#
        }
        let median = #"{"rule": "median", "metric": "accuracy", "grace_epochs": 2, "min_trials": 1}"#
        let asha = #"{"rule": "asha", "metric": "loss", "reduction_factor": 3, "grace_epochs": 1}"#
        for rule in [median, asha] {
            let problems = fixture.problems(withRule(rule, grid: #"{"precision": ["f32", "bf16"], "seed": [0, 1]}"#))
            #expect(problems.count == 1 && problems.first?.path == "stopping", "\(problems)")
            #expect(problems.first?.description.contains("differ in precision (f32, bf16)") == true
                    && problems.first?.description.contains("(condition \"a\")") == true, "\(problems)")
            let moments = fixture.problems(withRule(rule, grid: #"{"adam_moments": ["f32", "bf16"]}"#))
            #expect(moments.first?.description.contains("adam_moments (f32, bf16)") == true, "\(moments)")
            #expect(fixture.problems(withRule(rule, grid: #"{"seed": [0, 1], "lr": [0.001, 0.0001]}"#)).isEmpty, "a learning rate competes")
            #expect(fixture.problems(withRule(rule, grid: #"{"seed": [0, 1]}"#, conditions: """
                [{"name": "a", "method": "lora"}, {"name": "a-bf16", "method": "lora", "precision": "bf16"}]
                """)).isEmpty, "a precision per condition")
        }
        let target = #"{"rule": "target", "accuracy": 0.9, "evaluations": 1}"#
        #expect(fixture.problems(withRule(target, grid: #"{"precision": ["f32", "bf16"]}"#)).isEmpty, "target judges a trial alone")
    }
}
