// Real processes, simulated trials: `factsweep run --simulate` on four worker
// processes (the scale benchmark's path at a tiny scale) — every trial done
// with exactly one metrics row per epoch, the synthetic metrics and answers
// recorded as a real trial's would be, and the coordinator's and workers'
// statistics written; and `factsweep bench sweep` end to end.
import Foundation
import GRDB
import Testing
@testable import Coordinator
@testable import Core
@testable import Worker
import TestSupport
import Trial

@Suite(.serialized) struct SimulatedSweepTests {
    /// `dir/spec.json`: a spec named `name` with `members` (JSON object members), over a placeholder model that a
    /// simulated worker never opens and the shipped facts.
    static func simulatedSpec(in dir: URL, name: String, _ members: String) throws -> URL {
        let model = dir.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let url = dir.appendingPathComponent("spec.json")
        try #"{"name": "\#(name)", "model": "\#(model.path)", "data": "\#(data)", \#(members)}"#.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// 20 trials (4 learning rates × 5 seeds) of 3 epochs, evaluated at epochs 2 and 3, checkpointed at 2 and 3.
    static func spec(in dir: URL) throws -> URL {
        try simulatedSpec(in: dir, name: "simulated", """
            "defaults": {"epochs": 3, "eval_every": 2, "checkpoint_every": 2},
            "conditions": [{"name": "lora", "method": "lora"}],
            "grid": {"lr": [1e-4, 2e-4, 3e-4, 4e-4], "seed": [0, 1, 2, 3, 4]}
            """)
    }

    @Test func simulatedSweepOnFourWorkerProcesses() throws {
        let dir = try TemporaryDirectory()
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", try Self.spec(in: dir.url).path, "--workers", "4", "--threads-per-worker", "1",
                                             "--simulate", "0.05", "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        try SweepProcessTests.expectComplete(db, trials: 20, epochs: 3)

        // The synthetic metrics are the trainer's, for each trial's own configuration.
        let rows = try SweepProcessTests.rows(db, """
            SELECT t.config, e.epoch, e.loss, e.accuracy, t.checkpoint_epoch,
                   (SELECT COUNT(*) FROM question_outputs q WHERE q.trial_key = e.trial_key AND q.epoch = e.epoch) AS answers
            FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
            """)
        #expect(rows.count == 60)
        let questions = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl")).facts
            .map { 1 + ($0.evalQuestions?.count ?? 0) }.reduce(0, +)
        for row in rows {
            let config = try JSONDecoder().decode(TrialConfig.self, from: Data((row["config"] as String).utf8))
            let epoch: Int = row["epoch"]
            #expect(abs((row["loss"] as Double) - Double(SimulatedTrainer.loss(config, epoch: epoch))) < 1e-6)
            let evaluated = epoch >= 2
            #expect(((row["accuracy"] as Double?) != nil) == evaluated, "epoch \(epoch)")
            #expect(row["answers"] == (evaluated ? questions : 0), "epoch \(epoch)")
            #expect(row["checkpoint_epoch"] == 3)
        }

        // The coordinator's statistics: every message counted, every assign timed or deferred.
        let stats = try CoordinatorStatistics.read(from: run.appendingPathComponent("coordinator-stats.json"))
        // (At least: a worker that reconnects resends what was not acknowledged.)
        #expect(stats.received["progress", default: 0] >= 60 && stats.received["done", default: 0] >= 20, "\(stats.received)")
        #expect(stats.received["checkpoint", default: 0] >= 40 && stats.received["hello", default: 0] >= 4, "\(stats.received)")
        #expect(stats.sent["assign"] == 20 && stats.sent["ack", default: 0] >= 120, "\(stats.sent)")
        // Each worker's first assign (at start-up) is counted apart.
        #expect(stats.dispatch.count + stats.firstDispatch.count + stats.deferredAssigns == 20, "\(stats)")
        #expect(stats.firstDispatch.count <= 4 && stats.dispatch.count >= 12, "\(stats)")
        #expect((stats.dispatch.p99Seconds ?? .infinity) < 1 && stats.dispatchAfterClaim.count == stats.dispatch.count)
        // Each batch of messages is one transaction (housekeeping rounds add theirs).
        #expect(stats.batches > 0 && stats.largestBatch >= 1 && stats.sqliteWrites.count >= stats.batches, "\(stats)")
        #expect(stats.sqliteWrites.totalSeconds > 0)
        #expect(stats.workersSeen == 4)
        // 20 trials of 3 × 0.05 s on 4 workers take at least 0.75 s.
        let sweep = try #require(stats.sweepSeconds)
        #expect(sweep >= 0.75 && sweep <= stats.serveSeconds, "\(stats)")

        // Each worker's statistics, and together they started every trial once.
        var started = 0
        for i in 0..<4 {
            let file = run.appendingPathComponent("logs/worker-\(i).stats.json")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
            started += object["attempts_started"] as? Int ?? 0
            #expect((object["ready_to_assign_seconds"] as? [Double])?.count == object["attempts_started"] as? Int)
        }
        #expect(started == 20)
    }

    /// Every sampler (log_uniform, uniform, int, choice) and an evaluation schedule from epoch 0, through real
    /// processes: `plan` shows the drawn learning rates, the sweep runs exactly the planned trials with the drawn
    /// settings, and each stores its base-model evaluation as epoch 0 (answers, no loss) before epochs 1 and 2.
    @Test func sampledLearningRatesAndAnEpochZeroEvaluation() throws {
        let dir = try TemporaryDirectory()
        let spec = try Self.simulatedSpec(in: dir.url, name: "sampled", """
            "defaults": {"epochs": 2, "eval_every": 2, "eval_epochs": [0], "checkpoint_every": 2},
            "conditions": [{"name": "lora", "method": "lora", "lr": {"log_uniform": [1e-5, 1e-2]},
                            "alpha": {"uniform": [8, 32]}, "rank": {"int": [2, 16]}, "dropout": {"choice": [0, 0.05, 0.1]}}],
            "sampling": {"samples": 3, "seed": 11}
            """)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let plan = try SweepPlan.load(spec)
        let planned = try FactSweepBinary.run(["plan", spec.path])
        #expect(planned.status == 0, "\(planned.stderr)")
        for trial in plan.trials { #expect(planned.stdout.contains("\(trial.config.training.learningRate)"), "\(planned.stdout)") }

        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", spec.path, "--workers", "2", "--threads-per-worker", "1",
                                             "--simulate", "0.05", "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        let trials = try SweepProcessTests.rows(db, "SELECT key, lr, status, last_epoch FROM trials ORDER BY rowid")
        #expect(trials.map { $0["key"] as String } == plan.trials.map(\.key))
        #expect(trials.map { Float($0["lr"] as Double) } == plan.trials.map(\.config.training.learningRate))
        // The drawn settings reached the run database (and so the workers) as planned, and they vary.
        let stored = try SweepProcessTests.rows(db, "SELECT config FROM trials ORDER BY rowid")
            .map { try JSONDecoder().decode(TrialConfig.self, from: Data(($0["config"] as String).utf8)) }
        #expect(stored == plan.trials.map(\.config))
        let methods = plan.trials.map(\.config.training.method)
        #expect(Set(methods.map(\.rank)).count > 1 && Set(methods.map(\.alpha)).count > 1, "\(methods)")
        #expect(methods.allSatisfy { (2...16).contains($0.rank) && (8..<32).contains($0.alpha) && [0, 0.05, 0.1].contains($0.dropout) })
        #expect(trials.allSatisfy { $0["status"] == "done" && $0["last_epoch"] == 2 })
        let questions = try FactDataset.load(URL(fileURLWithPath: data)).facts.map { 1 + ($0.evalQuestions?.count ?? 0) }.reduce(0, +)
        let epochs = try SweepProcessTests.rows(db, """
            SELECT e.epoch, e.loss, e.accuracy,
                   (SELECT COUNT(*) FROM question_outputs q WHERE q.trial_key = e.trial_key AND q.epoch = e.epoch) AS answers
            FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key ORDER BY t.rowid, e.epoch
            """)
        #expect(epochs.map { $0["epoch"] as Int } == [0, 1, 2, 0, 1, 2, 0, 1, 2])
        for row in epochs where row["epoch"] == 0 {
            #expect((row["loss"] as Double?) == nil && (row["accuracy"] as Double?) != nil && row["answers"] == questions, "\(row)")
        }
        #expect(epochs.filter { $0["epoch"] == 1 }.allSatisfy { ($0["accuracy"] as Double?) == nil && $0["answers"] == 0 })
    }

    @Test func benchSweepReportsAgainstTheIdeal() throws {
        let dir = try TemporaryDirectory()
        let run = dir.url.appendingPathComponent("bench")
        let result = try FactSweepBinary.run(["bench", "sweep", "--trials", "6", "--epochs", "2", "--workers", "2",
                                             "--epoch-seconds", "0.05", "--run-dir", run.path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        #expect(object["trials_done"] as? Int == 6 && object["epochs_recorded"] as? Int == 12)
        #expect(abs((object["ideal_seconds"] as? Double ?? 0) - 0.3) < 1e-9)
        let sweep = try #require(object["sweep_seconds"] as? Double)
        #expect(sweep >= 0.3 && sweep < 30)
        #expect((object["messages_received"] as? Int ?? 0) >= 12 + 6 + 6)
        #expect(object["dispatch_p99_ms"] is Double && object["sqlite_write_p99_ms"] is Double)
        // The grid: 2 learning rates × 3 seeds.
        let plan = try SweepPlan.load(run.appendingPathComponent("spec.json"))
        #expect(Set(plan.trials.map(\.config.training.learningRate)).count == 2)
    }
}
