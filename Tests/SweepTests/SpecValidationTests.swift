// Validation of sweep specs: every refusal names the JSON path, the field and
// (inside a condition) the condition, and all problems come back together.
@testable import Coordinator
import Foundation
import Testing
import Trial
import TestSupport

@Suite struct SpecValidationTests {
    let fixture: SpecFixture
    init() throws { fixture = try SpecFixture() }

    /// A refusal: the condition list (or defaults/grid) of a spec, and the problem it must give.
    struct Case: Sendable, CustomTestStringConvertible {
        var conditions = #"[{"name": "c", "method": "lora"}]"#
        var defaults = "{}"
        var grid = "{}"
        let path: String
        let field: String?
        var condition: String? = "c"
        let message: String
        var testDescription: String { "\(path): \(message)" }
    }

    static let cases: [Case] = [
        Case(conditions: #"[{"name": "c", "method": "lora", "rank": 0}]"#, path: "conditions[0].rank", field: "rank", message: "must be at least 1 (got 0)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "lr": -0.1}]"#, path: "conditions[0].lr", field: "lr", message: "must be a positive number"),
        Case(conditions: #"[{"name": "c", "method": "full", "epochs": 0}]"#, path: "conditions[0].epochs", field: "epochs", message: "must be at least 1"),
        Case(conditions: #"[{"name": "c", "method": "dora"}]"#, path: "conditions[0].method", field: "method", message: #"unknown method "dora""#),
        Case(conditions: #"[{"name": "c", "method": "lroa"}]"#, path: "conditions[0].method", field: "method", message: #"did you mean "lora"?"#),
        Case(conditions: #"[{"name": "c", "method": ["lora", "ia3"]}]"#, path: "conditions[0].method", field: "method", message: "one method per condition"),
        Case(conditions: #"[{"name": "c"}]"#, path: "conditions[0].method", field: "method", message: "missing"),
        Case(conditions: #"[{"method": "lora"}]"#, path: "conditions[0].name", field: "name", condition: nil, message: "missing"),
        Case(conditions: #"[{"name": "a b", "method": "lora"}]"#, path: "conditions[0].name", field: "name", condition: "a b", message: "a condition name is"),
        Case(conditions: #"[{"name": "c", "method": "lora"}, {"name": "c", "method": "ia3"}]"#,
             path: "conditions[1].name", field: "name", message: "conditions[0] has the same name"),
        Case(conditions: #"[{"name": "c", "method": "full", "threshold": 1.01}]"#, path: "conditions[0].threshold", field: "threshold", message: "[0, 1]"),
        Case(conditions: #"[{"name": "c", "method": "full", "threshold": -0.5}]"#, path: "conditions[0].threshold", field: "threshold", message: "[0, 1]"),
        Case(conditions: #"[{"name": "c", "method": "ia3", "rank": 4}]"#, path: "conditions[0].rank", field: "rank", message: "does not apply to method ia3"),
        Case(conditions: #"[{"name": "c", "method": "full", "targets": "q_proj"}]"#, path: "conditions[0].targets", field: "targets", message: "does not apply to method full"),
        Case(conditions: #"[{"name": "c", "method": "lora", "alpha": "16"}]"#, path: "conditions[0].alpha", field: "alpha", message: "got a string"),
        Case(conditions: #"[{"name": "c", "method": "lora", "epochs": 2.5}]"#, path: "conditions[0].epochs", field: "epochs", message: "expected an integer"),
        Case(conditions: #"[{"name": "c", "method": "lora", "rank": null}]"#, path: "conditions[0].rank", field: "rank", message: "expected an integer, got null"),
        Case(conditions: #"[{"name": "c", "method": "lora", "rslora": 1}]"#, path: "conditions[0].rslora", field: "rslora", message: "expected true or false"),
        Case(conditions: #"[{"name": "c", "method": "lora", "dropout": 1}]"#, path: "conditions[0].dropout", field: "dropout", message: "[0, 1)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "targets": "q_proj,qq_proj"}]"#, path: "conditions[0].targets", field: "targets", message: "qq_proj"),
        Case(conditions: #"[{"name": "c", "method": "lora", "targets": ""}]"#, path: "conditions[0].targets", field: "targets", message: "no target modules"),
        Case(conditions: #"[{"name": "c", "method": "lora", "schedule": "cosin"}]"#, path: "conditions[0].schedule", field: "schedule", message: #"did you mean "cosine"?"#),
        Case(conditions: #"[{"name": "c", "method": "lora", "precision": "bf61"}]"#, path: "conditions[0].precision", field: "precision", message: #"unknown precision "bf61" (expected f32, bf16)"#),
        Case(conditions: #"[{"name": "c", "method": "lora", "precision": 16}]"#, path: "conditions[0].precision", field: "precision", message: "expected a string (f32, bf16)"),
        Case(conditions: #"[{"name": "c", "method": "full", "update_in_backward": true}]"#, path: "conditions[0].update_in_backward",
             field: "update_in_backward", message: "update_in_backward needs clip 0 (got 1.0)"),
        // Set in defaults or the grid, the refusal points there, still naming the condition whose trials it stops.
        Case(conditions: #"[{"name": "c", "method": "full"}]"#, defaults: #"{"update_in_backward": true}"#,
             path: "defaults.update_in_backward", field: "update_in_backward", message: "needs clip 0 (got 1.0)"),
        Case(conditions: #"[{"name": "c", "method": "full"}]"#, grid: #"{"update_in_backward": [false, true]}"#,
             path: "grid.update_in_backward", field: "update_in_backward", message: "needs clip 0 (got 1.0)"),
        Case(conditions: #"[{"name": "c", "method": "full", "update_in_backward": true}]"#, defaults: #"{"clip": 0.5}"#,
             path: "conditions[0].update_in_backward", field: "update_in_backward", message: "needs clip 0 (got 0.5)"),
        Case(conditions: #"[{"name": "c", "method": "full", "update_in_backward": 1}]"#, path: "conditions[0].update_in_backward",
             field: "update_in_backward", message: "expected true or false"),
        Case(conditions: #"[{"name": "c", "method": "lora", "batch_size": -1}]"#, path: "conditions[0].batch_size", field: "batch_size", message: "at least 0"),
        Case(conditions: #"[{"name": "c", "method": "lora", "seed": -1}]"#, path: "conditions[0].seed", field: "seed", message: "at least 0"),
        Case(conditions: #"[{"name": "c", "method": "lora", "clip": -1}]"#, path: "conditions[0].clip", field: "clip", message: "≥ 0"),
        Case(conditions: #"[{"name": "c", "method": "lora", "weight_decay": 1e39}]"#, path: "conditions[0].weight_decay", field: "weight_decay", message: "must be a number ≥ 0 (got 1e+39)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "max_new_tokens": 0}]"#, path: "conditions[0].max_new_tokens", field: "max_new_tokens", message: "at least 1"),
        Case(conditions: #"[{"name": "c", "method": "lora", "checkpoint_every": 0}]"#, path: "conditions[0].checkpoint_every", field: "checkpoint_every", message: "at least 1"),
        Case(conditions: #"[{"name": "c", "method": "lora", "eval_every": -1}]"#, path: "conditions[0].eval_every", field: "eval_every", message: "at least 0"),
        // Counts past any study: the planner's epoch arithmetic (asha's rungs at checkpoints) trapped on them.
        Case(conditions: #"[{"name": "c", "method": "lora", "epochs": 1000001}]"#, path: "conditions[0].epochs", field: "epochs",
             message: "must be at most 1000000 (got 1000001)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "epochs": 10, "checkpoint_every": 9223372036854775807, "#
                 + #""stopping": {"rule": "asha", "metric": "loss", "reduction_factor": 2, "grace_epochs": 2}}]"#,
             path: "conditions[0].checkpoint_every", field: "checkpoint_every", message: "must be at most 1000000 (got 9223372036854775807)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "eval_every": 1000000000000000000}]"#, path: "conditions[0].eval_every",
             field: "eval_every", message: "must be at most 1000000"),
        Case(conditions: #"[{"name": "c", "method": "lora", "eval_epochs": [0, 2000000]}]"#, path: "conditions[0].eval_epochs",
             field: "eval_epochs", message: "must be at most 1000000 (got 2000000)"),
        Case(conditions: #"[{"name": "c", "method": "lora", "max_new_tokens": 1000001}]"#, path: "conditions[0].max_new_tokens",
             field: "max_new_tokens", message: "must be at most 1000000"),
        Case(conditions: #"[{"name": "c", "method": "lora", "embedder": "nowhere"}]"#, path: "conditions[0].embedder", field: "embedder", message: "no such file or directory"),
        Case(conditions: #"[{"name": "c", "method": "lora", "held_out": "none.txt"}]"#, path: "conditions[0].held_out", field: "held_out", message: "none.txt"),
        Case(conditions: #"[{"name": "c", "method": "lora", "rnak": 4}]"#, path: "conditions[0].rnak", field: "rnak", message: #"unknown setting "rnak" (did you mean "rank"?)"#),
        Case(conditions: #"[{"name": "c", "method": "lora", "learning_rate": 0.1}]"#, path: "conditions[0].learning_rate", field: "learning_rate", message: #"did you mean "lr"?"#),
        Case(conditions: #"[{"name": "c", "method": "lora", "seed": [1, 1]}]"#, path: "conditions[0].seed[1]", field: "seed", message: "already in the list"),
        Case(conditions: #"[{"name": "c", "method": "lora", "seed": []}]"#, path: "conditions[0].seed", field: "seed", message: "empty list"),
        Case(conditions: #"[{"name": "c", "method": "lora", "seed": [[1]]}]"#, path: "conditions[0].seed[0]", field: "seed", message: "got a list"),
        Case(conditions: #"[{"name": "c", "method": "lora", "lr": [0.1, 0]}]"#, path: "conditions[0].lr[1]", field: "lr", message: "positive"),
        Case(conditions: #"[{"name": "a", "method": "lora"}, {"name": "c", "method": "lora", "targets": "q_proj,v_proj"}]"#,
             path: "conditions[1]", field: nil, message: #"same trial as number 1 of the plan (condition "a""#),
        Case(conditions: #"["lora"]"#, path: "conditions[0]", field: nil, condition: nil, message: "expected a condition object"),
        Case(conditions: "[]", path: "conditions", field: "conditions", condition: nil, message: "got an empty list"),
        Case(defaults: #"{"rank": 0}"#, path: "defaults.rank", field: "rank", condition: nil, message: "at least 1"),
        Case(defaults: #"{"method": "lora"}"#, path: "defaults.method", field: "method", condition: nil, message: "belongs in each condition"),
        Case(defaults: #"{"batchSize": 4}"#, path: "defaults.batchSize", field: "batchSize", condition: nil, message: #"did you mean "batch_size"?"#),
        Case(defaults: #"[]"#, path: "defaults", field: "defaults", condition: nil, message: "expected an object of settings"),
        Case(defaults: #"{"seed": 1}"#, grid: #"{"seed": [2]}"#, path: "grid.seed", field: "seed", condition: nil, message: "also set in defaults"),
        Case(grid: #"{"lr": 0.1}"#, path: "grid.lr", field: "lr", condition: nil, message: "write [0.1] for one"),
        Case(grid: #"{"threshold": [0.5, 2]}"#, path: "grid.threshold[1]", field: "threshold", condition: nil, message: "[0, 1]"),
        Case(grid: #"{"seed": [0, "1"]}"#, path: "grid.seed[1]", field: "seed", condition: nil, message: "expected an integer"),
    ]

    @Test(arguments: cases)
    func refusalNamesPathFieldAndCondition(_ c: Case) {
        let problems = fixture.problems(fixture.spec(conditions: c.conditions, defaults: c.defaults, grid: c.grid))
        let match = problems.first { $0.path == c.path }
        #expect(match != nil, "no problem at \(c.path): \(problems)")
        #expect(match?.field == c.field)
        #expect(match?.condition == c.condition)
        #expect(match?.message.contains(c.message) == true, "\(match?.message ?? "")")
    }

    @Test func missingModelAndDataNameTheFiles() {
        let problems = fixture.problems(fixture.spec(conditions: #"[{"name": "c", "method": "full"}]"#, model: "absent", data: "model"))
        let root = fixture.directory.url.standardizedFileURL.path
        #expect(problems.map(\.path) == ["model", "data"])
        #expect(problems[0].message.contains(root + "/absent"))
        #expect(problems[1].message.contains(root + "/model is a directory"))
    }

    @Test func topLevelMembers() {
        let problems = fixture.problems(#"{"nmae": "t", "modle": "model", "data": 3, "conditions": {}, "extra": 1, "description": 2}"#)
        #expect(problems.map(\.path) == ["extra", "modle", "nmae", "name", "description", "model", "data", "conditions"])
        #expect(problems[1].message == #"unknown member "modle" (did you mean "model"?)"#)
        #expect(problems[2].message.hasSuffix(#"(did you mean "name"?)"#))
        #expect(problems[6].message.contains("got a number 3"))
        #expect(fixture.problems("[1]").map(\.message) == ["expected a JSON object with name, model, data and conditions, got a list"])
        #expect(fixture.problems(#"{"name": "#).first?.message.hasPrefix("not valid JSON") == true)
    }

    @Test func allProblemsComeBackTogetherInAFixedOrder() {
        let json = fixture.spec(
            conditions: #"[{"name": "a", "method": "lora", "rank": 0, "alpha": -1}, {"name": "b", "method": "ia3", "dropout": 0.1}, {"name": "b", "method": "x"}]"#,
            defaults: #"{"epochs": 0, "lr": "fast"}"#, grid: #"{"seed": [0, 0]}"#, data: "missing.jsonl")
        let problems = fixture.problems(json)
        #expect(problems.map(\.path) == [
            "data", "defaults.lr", "defaults.epochs", "conditions[0].rank", "conditions[0].alpha", "conditions[1].dropout",
            "conditions[2].name", "conditions[2].method", "grid.seed[1]",
        ])
        #expect(problems.map(\.condition) == [nil, nil, nil, "a", "a", "b", "b", "b", nil])
        let error = SpecError(file: "s.json", problems: problems)
        #expect(error.description.split(separator: "\n").count == problems.count)
        #expect(error.description.hasPrefix("s.json: data: no such file: "))
        #expect(error.description.contains(#"s.json: conditions[0].rank: must be at least 1 (got 0) (condition "a")"#))
    }

    @Test func aGridTooLargeIsRefused() {
        let values = "[" + (0..<100).map(String.init).joined(separator: ", ") + "]"
        let problems = fixture.problems(fixture.spec(conditions: #"[{"name": "c", "method": "lora"}]"#,
                                                     grid: #"{"seed": \#(values), "epochs": \#(values.replacingOccurrences(of: "[0, ", with: "[")), "warmup_steps": \#(values)}"#))
        #expect(problems.count == 1)
        #expect(problems.first?.message.contains("more than \(SweepPlan.maximumTrials) trials") == true)
        #expect(problems.first?.condition == "c")
    }

    @Test func nameSuggestions() {
        let known = TrialSetting.allCases.map(\.rawValue)
        #expect(NameSuggestion.closest(to: "maxNewTokens", in: known) == "max_new_tokens")
        #expect(NameSuggestion.closest(to: "heldout", in: known) == "held_out")
        #expect(NameSuggestion.closest(to: "sead", in: known) == "seed")
        #expect(NameSuggestion.closest(to: "lora_alpha", in: known) == "alpha")
        #expect(NameSuggestion.closest(to: "temperature", in: known) == nil)
    }
}
