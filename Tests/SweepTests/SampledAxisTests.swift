// Sampled axes in sweep specs: refusals name the field, draws are frozen into
// the trials (same spec, same trials and keys), stay in their ranges, and
// cross with the listed axes.
@testable import Coordinator
import Foundation
import Testing
import Trial

@Suite struct SampledAxisTests {
    let fixture: SpecFixture
    init() throws { fixture = try SpecFixture() }

    static let oneLoRA = #"[{"name": "c", "method": "lora"}]"#
    static let sampling = #"{"samples": 4, "seed": 7}"#

    /// A refusal: the grid and sampling of a spec, and the problem it must give.
    struct Case: Sendable, CustomTestStringConvertible {
        var conditions = SampledAxisTests.oneLoRA
        var grid = "{}"
        var sampling: String? = SampledAxisTests.sampling
        let path: String
        let field: String?
        var condition: String? = nil
        let message: String
        var testDescription: String { "\(path): \(message)" }
    }

    static let cases: [Case] = [
        Case(grid: #"{"lr": {"uniform": [0.01, 0.001]}}"#, path: "grid.lr.uniform", field: "lr", message: "low must be below high"),
        Case(grid: #"{"lr": {"log_uniform": [0, 0.001]}}"#, path: "grid.lr.log_uniform[0]", field: "lr", message: "must be a positive number"),
        Case(grid: #"{"weight_decay": {"log_uniform": [0, 0.1]}}"#, path: "grid.weight_decay.log_uniform[0]", field: "weight_decay",
             message: "log_uniform needs bounds above 0 (got 0.0)"),
        Case(grid: #"{"dropout": {"uniform": [0, 1.5]}}"#, path: "grid.dropout.uniform[1]", field: "dropout", message: "[0, 1)"),
        Case(grid: #"{"lr": {"uniform": [0.001]}}"#, path: "grid.lr.uniform", field: "lr", message: "expected [low, high], got a list of 1"),
        Case(grid: #"{"lr": {"uniform": 0.001}}"#, path: "grid.lr.uniform", field: "lr", message: "expected a list, got"),
        Case(grid: #"{"rank": {"int": [8, 2]}}"#, path: "grid.rank.int", field: "rank", message: "low must not exceed high (got [8, 2])"),
        Case(grid: #"{"rank": {"int": [0, 4]}}"#, path: "grid.rank.int[0]", field: "rank", message: "at least 1"),
        Case(grid: #"{"rank": {"int": [1.5, 4]}}"#, path: "grid.rank.int[0]", field: "rank", message: "expected an integer"),
        Case(grid: #"{"lr": {"int": [1, 4]}}"#, path: "grid.lr.int", field: "lr", message: "int draws integers; lr is a number"),
        Case(grid: #"{"rank": {"uniform": [1, 4]}}"#, path: "grid.rank.uniform", field: "rank", message: "use int or choice"),
        Case(grid: #"{"schedule": {"uniform": [1, 4]}}"#, path: "grid.schedule.uniform", field: "schedule", message: "use choice"),
        Case(grid: #"{"schedule": {"choice": []}}"#, path: "grid.schedule.choice", field: "schedule", message: "empty choice"),
        Case(grid: #"{"schedule": {"choice": ["cosine", "cosine"]}}"#, path: "grid.schedule.choice[1]", field: "schedule", message: "already in the choice"),
        Case(grid: #"{"schedule": {"choice": ["cosin"]}}"#, path: "grid.schedule.choice[0]", field: "schedule", message: #"did you mean "cosine"?"#),
        Case(grid: #"{"lr": {"normal": [0, 1]}}"#, path: "grid.lr.normal", field: "lr", message: #"unknown distribution "normal""#),
        Case(grid: #"{"lr": {"loguniform": [0, 1]}}"#, path: "grid.lr.loguniform", field: "lr", message: #"did you mean "log_uniform"?"#),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2], "int": [1, 2]}}"#, path: "grid.lr", field: "lr", message: "got 2 members"),
        Case(conditions: #"[{"name": "c", "method": "ia3", "rank": {"int": [1, 4]}}]"#, path: "conditions[0].rank", field: "rank", condition: "c",
             message: "does not apply to method ia3"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: nil, path: "sampling", field: "sampling", message: "needs \"sampling\""),
        Case(grid: #"{"lr": [0.1, 0.2]}"#, path: "sampling", field: "sampling", message: "no setting is sampled"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: #"{"samples": 0, "seed": 1}"#, path: "sampling.samples", field: "samples",
             message: "must be at least 1 (got 0)"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: #"{"samples": 2, "seed": -1}"#, path: "sampling.seed", field: "seed",
             message: "must be at least 0"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: #"{"samples": 2}"#, path: "sampling.seed", field: "seed", message: "missing"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: #"{"samples": "2", "seed": 0}"#, path: "sampling.samples", field: "samples",
             message: "expected an integer"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: #"{"samples": 2, "seed": 0, "sede": 1}"#, path: "sampling.sede", field: "sede",
             message: "unknown member"),
        Case(grid: #"{"lr": {"uniform": [0.1, 0.2]}}"#, sampling: "[]", path: "sampling", field: "sampling", message: "got a list"),
        // Three ranks cannot give four distinct trials.
        Case(grid: #"{"rank": {"int": [2, 4]}}"#, path: "sampling.samples", field: "samples", condition: "c",
             message: "4 distinct points cannot be drawn from the sampled rank"),
    ]

    @Test(arguments: cases)
    func refusalNamesTheField(_ c: Case) {
        let problems = fixture.problems(fixture.spec(conditions: c.conditions, grid: c.grid, sampling: c.sampling))
        let match = problems.first { $0.path == c.path }
        #expect(match != nil, "no problem at \(c.path): \(problems)")
        #expect(match?.field == c.field)
        #expect(match?.condition == c.condition)
        #expect(match?.message.contains(c.message) == true, "\(match?.message ?? "")")
    }

    /// lr, rank and schedule sampled, crossed with two seeds.
    func searchSpec(seed: Int = 7, samples: Int = 4, conditions: String = oneLoRA) -> String {
        fixture.spec(conditions: conditions,
                     grid: #"{"lr": {"log_uniform": [1e-5, 1e-2]}, "rank": {"int": [2, 16]}, "schedule": {"choice": ["constant", "cosine"]}, "seed": [0, 1]}"#,
                     sampling: #"{"samples": \#(samples), "seed": \#(seed)}"#)
    }

    @Test func drawsAreFrozenIntoKeysAndCrossTheListedAxes() throws {
        let plan = try fixture.plan(searchSpec())
        #expect(plan.trials.count == 8)
        // The sampled point is the outermost axis: each point's seeds stand together.
        for pair in stride(from: 0, to: 8, by: 2) {
            let (a, b) = (plan.trials[pair].config.training, plan.trials[pair + 1].config.training)
            #expect(a.learningRate == b.learningRate && a.method.rank == b.method.rank && a.decay == b.decay)
            #expect(a.seed == 0 && b.seed == 1)
        }
        for trial in plan.trials {
            let t = trial.config.training
            #expect((1e-5...1e-2).contains(t.learningRate))
            #expect((2...16).contains(t.method.rank))
        }
        #expect(Set(plan.trials.map(\.config.training.learningRate)).count == 4)
        // Planned again (a resumed sweep): the same trials, key for key.
        #expect(try fixture.plan(searchSpec()).trials.map(\.key) == plan.trials.map(\.key))
        // Another seed draws other values.
        let other = try fixture.plan(searchSpec(seed: 8))
        #expect(Set(other.trials.map(\.key)).isDisjoint(with: plan.trials.map(\.key)))
    }

    @Test func moreSamplesKeepTheEarlierPointsAndRenamingKeepsThemAll() throws {
        let four = try fixture.plan(searchSpec()).trials.map(\.key)
        let six = try fixture.plan(searchSpec(samples: 6)).trials.map(\.key)
        #expect(Array(six.prefix(8)) == four)
        #expect(six.count == 12)
        let renamed = try fixture.plan(searchSpec(conditions: #"[{"name": "other-name", "method": "lora"}]"#)).trials.map(\.key)
        #expect(renamed == four)
    }

    @Test func conditionsMaySampleTheirOwnRanges() throws {
        let plan = try fixture.plan(fixture.spec(
            conditions: #"""
            [{"name": "full", "method": "full", "lr": {"log_uniform": [1e-6, 1e-4]}},
             {"name": "lora", "method": "lora", "lr": {"log_uniform": [1e-4, 1e-2]}, "rank": 4}]
            """#, sampling: #"{"samples": 3, "seed": 0}"#))
        #expect(plan.trials.map(\.condition) == ["full", "full", "full", "lora", "lora", "lora"])
        #expect(plan.trials.prefix(3).allSatisfy { (1e-6...1e-4).contains($0.config.training.learningRate) })
        #expect(plan.trials.suffix(3).allSatisfy { (1e-4...1e-2).contains($0.config.training.learningRate) })
    }

    @Test func splitMix64MatchesTheReferenceSequence() {
        // Vigna's splitmix64.c from seed 1234567.
        var random = SplitMix64(seed: 1_234_567)
        #expect((0..<5).map { _ in random.next() } == [
            6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
            4_593_380_528_125_082_431, 16_408_922_859_458_223_821,
        ])
    }

    @Test func distributionsCoverTheirRanges() throws {
        let draws = 3000
        var random = SplitMix64(seed: 1)
        // log_uniform over three decades: about a third in each.
        var decades = [0, 0, 0]
        for _ in 0..<draws {
            guard case .float(let v) = SampledAxis.logUniform(low: 1e-5, high: 1e-2).value(&random) else { Issue.record("not a number"); return }
            decades[min(2, Int(floor(log10(Double(v)))) + 5)] += 1
        }
        #expect(decades.allSatisfy { abs($0 - draws / 3) < draws / 20 }, "\(decades)")
        // int includes both ends, each about equally.
        var counts: [Int: Int] = [:]
        for _ in 0..<draws {
            guard case .int(let v) = SampledAxis.int(low: 2, high: 4).value(&random) else { Issue.record("not an integer"); return }
            counts[v, default: 0] += 1
        }
        #expect(counts.keys.sorted() == [2, 3, 4])
        #expect(counts.values.allSatisfy { abs($0 - draws / 3) < draws / 20 }, "\(counts)")
        // uniform stays in [low, high].
        for _ in 0..<draws {
            guard case .float(let v) = SampledAxis.uniform(low: 0.1, high: 0.2).value(&random) else { Issue.record("not a number"); return }
            #expect((0.1...0.2).contains(v))
        }
    }
}
