// The shipped example spec plans cleanly, and `factsweep plan` prints it, or
// every problem with exit status 2, as a user would see it.
@testable import Coordinator
import Core
import Foundation
import TestSupport
import Testing
import Trial

@Suite struct PlanCommandTests {
    static let example = TestPaths.repositoryRoot.appendingPathComponent("examples/small.json")

    @Test func smallExamplePlansTheFiveStudyConditions() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")  // fetched by scripts/setup.sh
        let plan = try SweepPlan.load(Self.example)
        #expect(plan.name == "small")
        #expect(plan.trials.count == 10)
        let conditions = plan.trials.map(\.condition)
        #expect(conditions == ["full", "full", "lora-r4", "lora-r4", "lora-r8", "lora-r8", "qlora-r8", "qlora-r8", "ia3", "ia3"])
        let methods = plan.trials.map { trial -> String in
            let m = trial.config.training.method
            return m.kind == .lora || m.kind == .qlora ? "\(m.kind.rawValue) \(m.rank) \(Int(m.alpha))" : m.kind.rawValue
        }
        #expect(methods == ["full", "full", "lora 4 16", "lora 4 16", "lora 8 32", "lora 8 32", "qlora 8 32", "qlora 8 32", "ia3", "ia3"])
        #expect(plan.trials.map(\.config.training.seed) == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
        #expect(plan.trials.allSatisfy { $0.config.model == TestPaths.repositoryRoot.appendingPathComponent("models/smollm2-135m-instruct").standardizedFileURL.path })
        #expect(Set(plan.trials.map(\.key)).count == 10)
    }

    /// A grid over the precision, the moments' storage and where AdamW updates shows each as a column.
    @Test func planShowsTheOptimizerAndPrecisionAxes() throws {
        let model = try TestPaths.model("smollm2-135m-instruct")
        let folder = try TemporaryDirectory()
        let spec = folder.file("axes.json")
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        try Data(#"""
            {"name": "axes", "model": "\#(model.path)", "data": "\#(data)",
             "conditions": [{"name": "full", "method": "full", "clip": 0}],
             "grid": {"precision": ["f32", "bf16"], "adam_moments": ["f32", "bf16"], "update_in_backward": [false, true]}}
            """#.utf8).write(to: spec)
        let result = try FactSweepBinary.run(["plan", spec.path])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        let header = lines.first?.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ?? []
        #expect(["precision", "moments", "update_in_backward"].allSatisfy(header.contains), "\(header)")
        #expect(lines.last == #"8 trials in 1 condition of sweep "axes""#)
        let rows = lines.dropFirst().dropLast().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        let column = try #require(header.firstIndex(of: "update_in_backward"))
        #expect(Set(rows.map { $0[column] }) == ["false", "true"])
    }

    @Test func planPrintsATableAndTheCount() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let result = try FactSweepBinary.run(["plan", "examples/small.json"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["condition", "method", "rank", "alpha", "lr", "epochs", "seed", "batch", "key"])
        #expect(lines.count == 12)
        #expect(lines.last == #"10 trials in 5 conditions of sweep "small""#)
        let keys = try SweepPlan.load(Self.example).trials.map { String($0.key.prefix(12)) }
        #expect(lines.dropFirst().dropLast().map { String($0.split(separator: " ").last ?? "") } == keys)
    }

    @Test func planJSONHasEveryTrialsConfiguration() throws {
        _ = try TestPaths.model("smollm2-135m-instruct")
        let result = try FactSweepBinary.run(["plan", "examples/small.json", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        struct Document: Decodable { let name: String; let count: Int; let trials: [PlannedTrial] }
        let document = try JSONDecoder().decode(Document.self, from: Data(result.stdout.utf8))
        #expect(document.count == 10)
        #expect(document.trials == (try SweepPlan.load(Self.example)).trials)
    }

    @Test func invalidSpecPrintsEveryProblemAndExitsWithStatusTwo() throws {
        let directory = try TemporaryDirectory()
        let spec = directory.file("bad.json")
        try Data(#"{"name": "b", "model": "no-model", "data": "no.jsonl", "conditions": [{"name": "x", "method": "ia3", "rank": 4}]}"#.utf8).write(to: spec)
        let result = try FactSweepBinary.run(["plan", spec.path])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(result.stderr)")
        #expect(lines.prefix(3).allSatisfy { $0.hasPrefix(spec.path + ": ") })
        #expect(lines[2].contains(#"conditions[0].rank: rank does not apply to method ia3"#))
        #expect(lines.last == "3 problems")
    }
}

@Suite struct ExampleSpecTests {
    /// Every shipped example plans cleanly, with the counts its description promises.
    @Test(arguments: [("paper.json", 5), ("paper-quick.json", 5), ("small.json", 10), ("beyond-the-paper.json", 45), ("precision.json", 10)])
    func examplePlans(file: String, trials: Int) throws {
        let plan = try SweepPlan.load(TestPaths.repositoryRoot.appendingPathComponent("examples").appendingPathComponent(file))
        #expect(plan.trials.count == trials)
        #expect(Set(plan.trials.map(\.config.training.method.kind)) == Set(MethodKind.allCases))
    }

    /// examples/README.md lists every example with the trials it plans, and the default learning rates.
    @Test func readmeListsEveryExampleWithItsTrialCount() throws {
        let examples = TestPaths.repositoryRoot.appendingPathComponent("examples")
        let readme = try String(contentsOf: examples.appendingPathComponent("README.md"), encoding: .utf8)
        // Table rows: | `FILE` | what it runs | TRIALS | …
        var listed: [String: Int] = [:]
        for line in readme.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else { continue }
            listed[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = Int(cells[2])
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(listed.keys.sorted() == files)
        for file in files {
            let plan = try SweepPlan.load(examples.appendingPathComponent(file))
            #expect(listed[file] == plan.trials.count, "\(file) plans \(plan.trials.count) trials")
        }
        func written(_ method: MethodKind) -> String {
            // 5e-05 → 5e-5, as the README writes rates.
            String(format: "%.0e", Double(TrainingSettings.defaultLearningRate(for: method))).replacingOccurrences(of: "e-0", with: "e-")
        }
        let prose = readme.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(prose.contains("(full \(written(.full)), LoRA/QLoRA \(written(.lora)), IA³ \(written(.ia3));"), "default learning rates")
    }
}
