// Real processes, simulated trials: a coordinator applies the spec's target
// rule — the trials of the condition whose target is reachable stop early
// (state `stopped`, their recorded epochs kept, the decision stored), the
// others run to the end — and a coordinator killed with SIGKILL in the middle
// and started again keeps the decisions it had stored. The plateau and median
// rules in one sweep of `factsweep run`: plateau stops each trial at the
// evaluated epoch the rule predicts from the simulated losses, median stops the
// slow learning rate against the fast one's recorded epochs.
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
        let port = TestPorts.unused()
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

    @Test func plateauAndMedianRulesStopTrialsInARealSweep() throws {
        let dir = try TemporaryDirectory()
        let epochs = 16
        // Evaluated every 2 epochs: the plateau is counted in evaluations, so it must stop on an even epoch.
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "plateau-median", """
            "defaults": {"epochs": \(epochs), "eval_every": 2, "checkpoint_every": 2},
            "conditions": [
                {"name": "plateau", "method": "lora", "rank": 4, "lr": 0.001,
                 "stopping": {"rule": "plateau", "metric": "loss", "min_delta": 0.05, "evaluations": 2}},
                {"name": "median", "method": "lora", "lr": [0.001, 0.0001],
                 "stopping": {"rule": "median", "metric": "loss", "grace_epochs": 1, "min_trials": 2}}],
            "grid": {"seed": [0, 1]}
            """)
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", spec.path, "--workers", "2", "--threads-per-worker", "1",
                                             "--simulate", "0.15", "--run-dir", run.path, "--heartbeat", "0.2"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        let trials = try SweepProcessTests.rows(db, "SELECT key, condition, lr, config, status, last_epoch FROM trials ORDER BY rowid")
        let decisions = try SweepProcessTests.rows(db, "SELECT trial_key, rule, action, epoch, reason, decided_at FROM stopping_decisions")
        #expect(trials.count == 6)
        func recorded(_ key: String) throws -> [Int] {
            try SweepProcessTests.rows(db, "SELECT epoch FROM epoch_metrics WHERE trial_key = '\(key)' AND epoch > 0 ORDER BY epoch")
                .map { $0["epoch"] as Int }
        }
        for trial in trials {
            let key: String = trial["key"], status: String = trial["status"], lr: Double = trial["lr"]
            let decision = decisions.first { $0["trial_key"] == key }
            let epochsRun = try recorded(key)
            let config = try JSONDecoder().decode(TrialConfig.self, from: Data((trial["config"] as String).utf8))
            // The spec's rates are Float in the config: 1e-3 is stored as 0.0010000000474974513.
            let fast = lr > 5e-4
            switch (trial["condition"] as String, fast) {
            case ("plateau", _):
                // The epoch the rule must stop at, from the simulated trainer's own (deterministic) losses at its evaluated epochs.
                let history = (1...epochs).map { RecordedMetrics(epoch: $0, loss: Double(SimulatedTrainer.loss(config, epoch: $0)),
                                                                   accuracy: config.evaluates(epoch: $0) ? 0.5 : nil) }
                let expected = try #require((1..<epochs).first {
                    PlateauRule.decide(history, metric: .loss, minDelta: 0.05, evaluations: 2, epoch: $0) != nil
                }, "the plateau must come before the last epoch for this test to mean anything")
                #expect(expected % 2 == 0, "stopped at an evaluated epoch")
                #expect(status == "stopped" && decision?["rule"] == "plateau" && decision?["epoch"] == expected,
                        "\(key): \(status), \(String(describing: decision)), expected epoch \(expected)")
                #expect(epochsRun == Array(1...expected), "\(key): its epochs up to the stop are kept and none after: \(epochsRun)")
            case ("median", true):
                // Each fast trial has one other fast trial to compare with (min_trials 2): never judged; the slow ones
                // start only after both fast ones were claimed.
                #expect(status == "done" && decision == nil && epochsRun == Array(1...epochs), "\(key): \(status), \(epochsRun)")
            default:
                // A slow trial is judged against what the database held when its epoch was recorded: at least two
                // others at that epoch, and a loss above their median — checked here from the stored rows.
                let decision = try #require(decision, "\(key): the slow learning rate should have been stopped: \(status)")
                let epoch: Int = decision["epoch"], decidedAt: String = decision["decided_at"]
                #expect(status == "stopped" && decision["rule"] == "median" && epoch > 1 && epoch % 2 == 0, "\(key): \(status) \(decision)")
                #expect(epochsRun == Array(1...epoch), "\(key): \(epochsRun)")
                let own = try #require(try SweepProcessTests.rows(db, "SELECT loss FROM epoch_metrics WHERE trial_key = '\(key)' AND epoch = \(epoch)").first)
                let others = try SweepProcessTests.rows(db, """
                    SELECT e.loss FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
                    WHERE t.condition = 'median' AND e.trial_key <> '\(key)' AND e.epoch = \(epoch) AND e.recorded_at <= '\(decidedAt)'
                    ORDER BY e.loss
                    """).map { $0["loss"] as Double }
                #expect(others.count >= 2, "\(key): judged with \(others.count) others")
                let median = others.count % 2 == 1 ? others[others.count / 2] : (others[others.count / 2 - 1] + others[others.count / 2]) / 2
                #expect((own["loss"] as Double) > median, "\(key): loss \(own["loss"] as Double) against the median \(median) of \(others)")
            }
        }
    }
}
