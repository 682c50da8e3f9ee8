// Real processes, simulated trials: a coordinator applies the spec's target
// rule — the trials of the condition whose target is reachable stop early
// (state `stopped`, their recorded epochs kept, the decision stored), the
// others run to the end — and a coordinator killed with SIGKILL in the middle
// and started again keeps the decisions it had stored.
import Foundation
import GRDB
import Testing
@testable import Coordinator
@testable import Core
import Dashboard
import Logging
@testable import Worker
import Store
import TestSupport
import Trial

@Suite(.serialized) struct StoppingProcessTests {
    static let epochs = 8
    /// "quick" stops once accuracy ≥ 0.45 at two consecutive evaluations (the simulated trainer's accuracy
    /// passes it around epoch 3); "slow" has the top-level target 0.99, which it never reaches.
    static let quickTarget = 0.45

    @Test func targetRuleStopsTrialsAndARestartedCoordinatorKeepsTheDecisions() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "stopping", """
            "defaults": {"epochs": \(Self.epochs), "eval_every": 1, "checkpoint_every": 1},
            "conditions": [
                {"name": "quick", "method": "lora", "lr": 0.001,
                 "stopping": {"rule": "target", "accuracy": \(Self.quickTarget), "evaluations": 2}},
                {"name": "slow", "method": "lora", "lr": 0.002}],
            "grid": {"seed": [0, 1]},
            "stopping": {"rule": "target", "accuracy": 0.99, "evaluations": 1}
            """)
        let run = dir.url.appendingPathComponent("run")
        let port = Int.random(in: 20_000..<40_000)
        let cluster = try SweepProcessTests.cluster(in: dir.url, run: run, port: port)
        var coordinator = try FactSweepChild(["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator-1.log"))
        let workers = try (0..<2).map { i in
            try FactSweepChild(["worker", "--connect", "tcp://127.0.0.1:\(port)", "--threads", "1", "--id", "w\(i)", "--cluster", cluster.path,
                                "--simulate", "0.4"], log: dir.file("worker-\(i).log"))
        }
        defer {
            for child in workers + [coordinator] { child.stop() }
            if ProcessInfo.processInfo.environment["FACTSWEEP_TEST_LOGS"] != nil {
                for child in [coordinator] + workers { print("== \(child.log.lastPathComponent)\n\(child.output)") }
            }
        }
        let db = run.appendingPathComponent("run.db")
        func decisions() -> [Row] {
            (try? SweepProcessTests.rows(db, "SELECT trial_key, rule, epoch, reason, decided_at FROM stopping_decisions ORDER BY trial_key")) ?? []
        }

        // Killed as soon as the first decision is stored, while other trials still run.
        let deadline = Date().addingTimeInterval(60)
        while decisions().isEmpty && coordinator.isRunning && Date() < deadline { usleep(100_000) }
        let before = decisions()
        #expect(!before.isEmpty, "no trial stopped before the kill:\n\(coordinator.output)")
        coordinator.kill9()
        usleep(300_000)
        coordinator = try FactSweepChild(["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator-2.log"))
        #expect(coordinator.wait(seconds: 90) && coordinator.status == 0, "the restarted coordinator should finish the sweep:\n\(coordinator.output)")

        // The decisions stored before the kill are the ones after it, unchanged.
        let after = decisions()
        for row in before {
            #expect(after.contains(row), "decision \(row) changed or vanished: \(after)")
        }
        let trials = try SweepProcessTests.rows(db, "SELECT key, condition, config, status, last_epoch FROM trials ORDER BY condition, key")
        #expect(trials.count == 4)
        let facts = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl")).facts
        for trial in trials {
            let key: String = trial["key"], status: String = trial["status"]
            let epochs = try SweepProcessTests.rows(db, "SELECT epoch FROM epoch_metrics WHERE trial_key = '\(key)' ORDER BY epoch")
                .map { $0["epoch"] as Int }
            if trial["condition"] == "slow" {
                #expect(status == "done" && epochs == Array(1...Self.epochs), "\(key): \(status), epochs \(epochs)")
                #expect(!after.contains { $0["trial_key"] == key })
                continue
            }
            // The epoch the rule must stop at: the second of two consecutive evaluations at the target, from the
            // simulated trainer's own (deterministic) accuracies for this configuration.
            let config = try JSONDecoder().decode(TrialConfig.self, from: Data((trial["config"] as String).utf8))
            let accuracies = (1...Self.epochs).map { Double(SimulatedTrainer.evaluation(config, facts: facts, epoch: $0).accuracy) }
            let expected = try #require((2...Self.epochs).first { accuracies[$0 - 2] >= Self.quickTarget && accuracies[$0 - 1] >= Self.quickTarget })
            #expect(expected < Self.epochs, "the target must be reached before the last epoch for this test to mean anything")
            let decision = try #require(after.first { $0["trial_key"] == key }, "\(key) has no decision")
            #expect(status == "stopped" && decision["rule"] == "target" && decision["epoch"] == expected, "\(key): \(status), \(decision)")
            #expect(epochs == Array(1...expected) && trial["last_epoch"] == expected,
                    "\(key): its epochs up to the stop are kept and none after: \(epochs)")
        }
        // The reports show it: status lists the decisions, the report a stopped-trials table.
        let status = try FactSweepBinary.run(["status", run.path])
        #expect(status.status == 0 && status.stdout.contains("stopped 2") && status.stdout.contains("target rule at epoch"), "\(status.stdout)")
        let report = try FactSweepBinary.run(["report", run.path, "--out", dir.file("report").path])
        #expect(report.status == 0, "\(report.stderr)")
        let markdown = try String(contentsOf: dir.file("report/report.md"), encoding: .utf8)
        #expect(markdown.contains("Trials stopped by a stopping rule") && markdown.contains("2 done") && markdown.contains("2 stopped"))
        // The dashboard's trials table: the state and, for stopped trials only, the decision.
        let state = try DashboardReader(location: run.path, logger: Logger(label: "test")).state()
        for row in state.trials {
            #expect((row.status == "stopped") == (row.condition == "quick") && (row.decision != nil) == (row.status == "stopped"), "\(row)")
        }
        #expect(state.trials.contains { $0.decision?.hasPrefix("target rule at epoch") == true })
    }
}
