// Expansion of sweep specs: counts, order, overrides, what each setting sets,
// and the trial keys' stability and sensitivity.
@testable import Coordinator
import Core
import Foundation
import TestSupport
import Testing
import Trial

@Suite struct SweepPlanTests {
    let fixture: SpecFixture
    init() throws { fixture = try SpecFixture() }

    /// (condition, method, rank, lr, seed) of every trial, in plan order.
    func rows(_ plan: SweepPlan) -> [String] {
        plan.trials.map {
            let t = $0.config.training
            return "\($0.condition) \(t.method.kind.rawValue) r\(t.method.rank) lr\(t.learningRate) s\(t.seed)"
        }
    }

    @Test func conditionsInFileOrderThenAxesInSettingOrderSeedFastest() throws {
        let plan = try fixture.plan(fixture.spec(
            conditions: #"[{"name": "b", "method": "lora"}, {"name": "a", "method": "full"}]"#,
            grid: #"{"seed": [3, 1], "lr": [0.001, 0.002], "rank": [4, 8]}"#))
        #expect(plan.name == "t")
        #expect(rows(plan) == [
            "b lora r4 lr0.001 s3", "b lora r4 lr0.001 s1", "b lora r4 lr0.002 s3", "b lora r4 lr0.002 s1",
            "b lora r8 lr0.001 s3", "b lora r8 lr0.001 s1", "b lora r8 lr0.002 s3", "b lora r8 lr0.002 s1",
            // rank does not apply to full: no axis there.
            "a full r8 lr0.001 s3", "a full r8 lr0.001 s1", "a full r8 lr0.002 s3", "a full r8 lr0.002 s1",
        ])
    }

    @Test func conditionOverridesWinAndListsAnywhereExpand() throws {
        let plan = try fixture.plan(fixture.spec(
            conditions: #"""
            [{"name": "one-seed", "method": "lora", "seed": 7},
             {"name": "own-list", "method": "lora", "seed": [5, 6], "epochs": [1, 2]},
             {"name": "inherits", "method": "ia3"}]
            """#,
            defaults: #"{"epochs": 4, "lr": [0.01, 0.02]}"#, grid: #"{"seed": [0, 1]}"#))
        let summary = plan.trials.map { "\($0.condition) e\($0.config.training.epochs) lr\($0.config.training.learningRate) s\($0.config.training.seed)" }
        #expect(summary == [
            "one-seed e4 lr0.01 s7", "one-seed e4 lr0.02 s7",
            // lr comes before epochs in the axis order.
            "own-list e1 lr0.01 s5", "own-list e1 lr0.01 s6", "own-list e2 lr0.01 s5", "own-list e2 lr0.01 s6",
            "own-list e1 lr0.02 s5", "own-list e1 lr0.02 s6", "own-list e2 lr0.02 s5", "own-list e2 lr0.02 s6",
            "inherits e4 lr0.01 s0", "inherits e4 lr0.01 s1", "inherits e4 lr0.02 s0", "inherits e4 lr0.02 s1",
        ])
    }

    @Test func methodDefaultsAndSkippedMethodSettings() throws {
        let plan = try fixture.plan(fixture.spec(
            conditions: #"[{"name": "f", "method": "full"}, {"name": "l", "method": "lora"}, {"name": "q", "method": "qlora"}, {"name": "i", "method": "ia3"}]"#,
            defaults: #"{"rank": 4, "alpha": 8, "dropout": 0.1, "targets": "all-linear"}"#))
        let byName = Dictionary(uniqueKeysWithValues: plan.trials.map { ($0.condition, $0.config.training) })
        #expect(byName["f"]?.learningRate == TrainingSettings.defaultLearningRate(for: .full))
        #expect(byName["i"]?.learningRate == TrainingSettings.defaultLearningRate(for: .ia3))
        #expect(byName["f"]?.method == MethodSettings(kind: .full))
        #expect(byName["l"]?.method == MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0.1, targets: ProjectionKind.allCases))
        #expect(byName["q"]?.method == MethodSettings(kind: .qlora, rank: 4, alpha: 8, dropout: 0.1, targets: ProjectionKind.allCases))
        #expect(byName["i"]?.method == MethodSettings(kind: .ia3, targets: ProjectionKind.allCases))
    }

    @Test func everySettingReachesTheConfiguration() throws {
        let plan = try fixture.plan(fixture.spec(conditions: #"""
            [{"name": "x", "method": "lora", "rank": 2, "alpha": 3, "dropout": 0.25, "rslora": true, "targets": "v_proj, q_proj,o_proj",
              "lr": 0.5, "epochs": 6, "batch_size": 0, "warmup_steps": 2, "schedule": "cosine", "weight_decay": 0.01, "clip": 0,
              "train_on_prompt": true, "eval_every": 3, "threshold": 0.75, "max_new_tokens": 20, "embedder": "embedder",
              "held_out": "none", "checkpoint_every": 2, "seed": 9, "eval_epochs": [2, 0]}]
            """#))
        let c = try #require(plan.trials.first).config
        var training = TrainingSettings()
        training.method = MethodSettings(kind: .lora, rank: 2, alpha: 3, dropout: 0.25, rsLoRA: true, targets: [.q, .v, .o])
        training.learningRate = 0.5; training.epochs = 6; training.batchSize = 0; training.warmupSteps = 2
        training.decay = .cosine; training.optimizer.weightDecay = 0.01; training.optimizer.maxGradNorm = nil
        training.lossScope = .all; training.seed = 9
        let root = fixture.directory.url.standardizedFileURL
        #expect(c == TrialConfig(model: root.appendingPathComponent("model").path, data: root.appendingPathComponent("facts.jsonl").path,
                                 training: training, evalEvery: 3, threshold: 0.75, maxNewTokens: 20,
                                 embedder: root.appendingPathComponent("embedder").path, heldOut: "none", checkpointEvery: 2,
                                 evalEpochs: [0, 2]))
    }

    @Test func relativePathsResolveAgainstTheSpecFileNotTheWorkingDirectory() throws {
        let sub = fixture.directory.file("specs")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let file = sub.appendingPathComponent("s.json")
        try Data(fixture.spec(conditions: #"[{"name": "a", "method": "full", "held_out": "../heldout.txt"}]"#,
                              model: "../model", data: "./../facts.jsonl").utf8).write(to: file)
        let config = try #require(try SweepPlan.load(file).trials.first).config
        let root = fixture.directory.url.standardizedFileURL.path
        #expect(config.model == root + "/model")
        #expect(config.data == root + "/facts.jsonl")
        #expect(config.heldOut == root + "/heldout.txt")
    }

    // MARK: Keys

    @Test func keyIsTheSHA256OfTheCanonicalJSON() throws {
        let trial = try #require(try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "full"}]"#)).trials.first)
        #expect(trial.key == SHA256.hex(try trial.config.canonicalJSON()))
        #expect(trial.key.count == 64)
    }

    @Test func keysAreStableAcrossReplanningKeyOrderAndSpelling() throws {
        let a = try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "lora", "rank": 4, "alpha": 16}]"#,
                                              grid: #"{"seed": [0, 1], "lr": [0.001]}"#))
        let again = try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "lora", "rank": 4, "alpha": 16}]"#,
                                                  grid: #"{"seed": [0, 1], "lr": [0.001]}"#))
        let reordered = try fixture.plan(#"""
            {"grid": {"lr": [1e-3], "seed": [0, 1]},
             "conditions": [{"alpha": 16.0, "rank": 4, "method": "lora", "name": "renamed"}],
             "data": "./facts.jsonl", "defaults": {}, "model": "model/", "name": "other"}
            """#)
        #expect(a.trials.map(\.key) == again.trials.map(\.key))
        #expect(a.trials.map(\.key) == reordered.trials.map(\.key))
        #expect(Set(a.trials.map(\.key)).count == 2)
    }

    @Test func addingASeedAddsOnlyTheNewTrials() throws {
        let conditions = #"[{"name": "a", "method": "lora"}, {"name": "b", "method": "ia3"}]"#
        let before = try fixture.plan(fixture.spec(conditions: conditions, grid: #"{"seed": [0, 1]}"#))
        let after = try fixture.plan(fixture.spec(conditions: conditions, grid: #"{"seed": [0, 1, 2]}"#))
        let old = Set(before.trials.map(\.key)), new = Set(after.trials.map(\.key))
        #expect(old.isSubset(of: new))
        #expect(new.subtracting(old).count == 2)
        #expect(after.trials.filter { !old.contains($0.key) }.map(\.config.training.seed) == [2, 2])
    }

    /// Each change of one setting, from a LoRA trial with every setting at a non-default value.
    static let changes: [(String, String)] = [
        ("rank", "3"), ("alpha", "5"), ("dropout", "0.2"), ("rslora", "false"), ("targets", #""q_proj""#), ("lr", "0.25"),
        ("epochs", "7"), ("batch_size", "2"), ("warmup_steps", "1"), ("schedule", #""linear""#), ("weight_decay", "0.02"),
        ("clip", "0.5"), ("train_on_prompt", "false"), ("eval_every", "4"), ("threshold", "0.8"), ("max_new_tokens", "21"),
        ("embedder", #""model""#), ("held_out", #""heldout.txt""#), ("checkpoint_every", "3"), ("precision", #""f32""#), ("seed", "10"),
        ("eval_epochs", "[0, 2]"), ("adam_moments", #""f32""#), ("update_in_backward", "true"),
    ]

    @Test func changingAnySettingChangesTheKey() throws {
        let base: [String: String] = [
            "rank": "2", "alpha": "3", "dropout": "0.25", "rslora": "true", "targets": #""o_proj""#, "lr": "0.5", "epochs": "6",
            "batch_size": "0", "warmup_steps": "2", "schedule": #""cosine""#, "weight_decay": "0.01", "clip": "0",
            "train_on_prompt": "true", "eval_every": "3", "threshold": "0.75", "max_new_tokens": "20", "embedder": #""embedder""#,
            "held_out": #""none""#, "checkpoint_every": "2", "precision": #""bf16""#, "seed": "9", "eval_epochs": "[0]",
            "adam_moments": #""bf16""#, "update_in_backward": "false",
        ]
        #expect(Set(base.keys) == Set(TrialSetting.allCases.map(\.rawValue)))
        #expect(Set(Self.changes.map(\.0)) == Set(TrialSetting.allCases.map(\.rawValue)))
        func key(_ settings: [String: String], model: String = "model", data: String = "facts.jsonl") throws -> String {
            let members = settings.map { #""\#($0.key)": \#($0.value)"# }.joined(separator: ", ")
            let json = fixture.spec(conditions: #"[{"name": "a", "method": "lora", \#(members)}]"#, model: model, data: data)
            return try #require(try fixture.plan(json).trials.first).key
        }
        let original = try key(base)
        var keys: Set = [original]
        for (name, value) in Self.changes {
            var changed = base
            changed[name] = value
            let k = try key(changed)
            #expect(k != original, "changing \(name) kept the key")
            keys.insert(k)
        }
        keys.insert(try key(base, model: "model2"))
        keys.insert(try key(base, data: "facts2.jsonl"))
        #expect(keys.count == Self.changes.count + 3)
    }

    // MARK: Evaluation schedule

    @Test func evalEpochsIsOneListValueAndAListOfListsIsAnAxis() throws {
        let plan = try fixture.plan(fixture.spec(
            conditions: #"[{"name": "a", "method": "full", "eval_epochs": [3, 0, 1]}, {"name": "b", "method": "ia3"}]"#,
            grid: #"{"eval_epochs": [[0], [0, 5]]}"#))
        #expect(plan.trials.map(\.config.evalEpochs) == [[0, 1, 3], [0], [0, 5]])
        // Any order, one key.
        let reordered = try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "full", "eval_epochs": [0, 1, 3]}]"#))
        #expect(reordered.trials.map(\.key) == [plan.trials[0].key])
    }

    /// A spec without eval_epochs plans the keys it planned before the setting existed: the canonical
    /// JSON has no evalEpochs member, and an empty list is the same trial.
    @Test func absentEvalEpochsKeepTheKeys() throws {
        let plan = try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "full"}]"#))
        let json = String(decoding: try plan.trials[0].config.canonicalJSON(), as: UTF8.self)
        #expect(!json.contains("evalEpochs"))
        let empty = try fixture.plan(fixture.spec(conditions: #"[{"name": "a", "method": "full", "eval_epochs": []}]"#))
        #expect(empty.trials.map(\.key) == plan.trials.map(\.key))
        // The key of a trial written down before the schedule existed (this fixture's paths aside).
        var config = plan.trials[0].config
        config.model = "/m"; config.data = "/d"
        #expect(String(decoding: try config.canonicalJSON(), as: UTF8.self).hasPrefix(#"{"checkpointEvery":10,"data":"/d","evalEvery":1,"model":"/m","threshold":0.9,"#))
    }

    @Test func evaluationScheduleIsTheUnionOfEveryAndTheList() {
        var config = TrialConfig(model: "m", data: "d", training: TrainingSettings(method: .full), evalEvery: 5)
        config.training.epochs = 12
        #expect((0...12).filter(config.evaluates(epoch:)) == [5, 10, 12])
        config.evalEpochs = [0, 1, 2, 3]
        #expect((0...12).filter(config.evaluates(epoch:)) == [0, 1, 2, 3, 5, 10, 12])
        config.evalEvery = 0
        #expect((0...12).filter(config.evaluates(epoch:)) == [0, 1, 2, 3])
        #expect(config.evaluatesAny)
        config.evalEpochs = nil
        #expect(!config.evaluatesAny && (0...12).filter(config.evaluates(epoch:)).isEmpty)
    }

    @Test func evalEpochsRefusals() {
        func problem(_ conditions: String, grid: String = "{}") -> SpecProblem? { fixture.problems(fixture.spec(conditions: conditions, grid: grid)).first }
        let late = problem(#"[{"name": "a", "method": "full", "epochs": 4, "eval_epochs": [0, 5]}]"#)
        #expect(late?.field == "eval_epochs" && late?.condition == "a" && late?.message.contains("epoch 5, past the trial's 4 epochs") == true)
        let negative = problem(#"[{"name": "a", "method": "full", "eval_epochs": [-1]}]"#)
        #expect(negative?.path == "conditions[0].eval_epochs" && negative?.message.contains("0 (the base model) and up") == true)
        #expect(problem(#"[{"name": "a", "method": "full", "eval_epochs": [1, 1]}]"#)?.message.contains("listed twice") == true)
        #expect(problem(#"[{"name": "a", "method": "full", "eval_epochs": [1, "2"]}]"#)?.message.contains("expected an integer") == true)
        #expect(problem(#"[{"name": "a", "method": "full", "eval_epochs": 3}]"#)?.message.contains("expected a list of epochs") == true)
        let flatGrid = problem(#"[{"name": "a", "method": "full"}]"#, grid: #"{"eval_epochs": [0, 1]}"#)
        #expect(flatGrid?.path == "grid.eval_epochs" && flatGrid?.message.contains("list of lists") == true)
    }

    @Test func methodChangesTheKeyAndExplicitDefaultsDoNot() throws {
        let plan = try fixture.plan(fixture.spec(conditions: #"""
            [{"name": "lora", "method": "lora"}, {"name": "qlora", "method": "qlora"}]
            """#))
        #expect(Set(plan.trials.map(\.key)).count == 2)
        // PEFT's default targets and the method's default lr written out are the same trial.
        let written = try fixture.plan(fixture.spec(conditions: #"[{"name": "x", "method": "lora", "targets": "v_proj,q_proj", "lr": 0.001}]"#))
        #expect(written.trials.map(\.key) == [plan.trials[0].key])
        // f32 written out is the trial from before the setting existed: its JSON has no "precision".
        let f32 = try fixture.plan(fixture.spec(conditions: #"[{"name": "x", "method": "lora", "precision": "f32"}]"#))
        #expect(f32.trials.map(\.key) == [plan.trials[0].key])
        #expect(try !String(decoding: f32.trials[0].config.canonicalJSON(), as: UTF8.self).contains("precision"))
    }

    @Test func precisionIsAnAxis() throws {
        let plan = try fixture.plan(fixture.spec(conditions: #"[{"name": "x", "method": "lora"}]"#, grid: #"{"precision": ["f32", "bf16"]}"#))
        #expect(plan.trials.map(\.config.training.productPrecision) == [.f32, .bf16])
        #expect(Set(plan.trials.map(\.key)).count == 2)
    }
}
