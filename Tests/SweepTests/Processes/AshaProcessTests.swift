// Real processes, simulated trials, the asha rule: trials are paused at their
// rungs, promoted as better-ranked reports arrive, resumed from the checkpoint
// at the rung by the ordinary claim, and the ones nothing can promote end
// stopped — every epoch recorded once.
import Foundation
import GRDB
import Testing
@testable import Coordinator
@testable import Worker
import Store
import TestSupport
import Trial

@Suite(.serialized) struct AshaProcessTests {
    /// A coordinator and one simulated worker (one thread) on four trials of one condition under
    /// asha (η = 2, rungs 2 and 4 of 6 epochs, a checkpoint every epoch). Loss falls faster with a higher learning
    /// rate (SimulatedTrainer.loss), and the worker claims the trials in the grid's order: the best arrives first,
    /// waits alone at rung 2, and is promoted when the next ranks below it.
    struct Sweep {
        let spec: URL
        let cluster: URL
        let run: URL
        let coordinator: FactSweepChild
        let worker: FactSweepChild

        init(in dir: TemporaryDirectory) throws {
            spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "asha", """
                "defaults": {"epochs": 6, "eval_every": 2, "checkpoint_every": 1},
                "conditions": [{"name": "lora", "method": "lora"}],
                "grid": {"lr": [4e-4, 3e-4, 2e-4, 1e-4]},
                "stopping": {"rule": "asha", "metric": "loss", "reduction_factor": 2, "grace_epochs": 2}
                """)
            run = dir.url.appendingPathComponent("run")
            let port = TestPorts.unused()
            cluster = try SweepProcessTests.cluster(in: dir.url, run: run, port: port)
            coordinator = try FactSweepChild(["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator-1.log"))
            worker = try FactSweepChild(["worker", "--connect", "tcp://127.0.0.1:\(port)", "--threads", "1", "--id", "w0", "--cluster",
                                         cluster.path, "--simulate", "0.2"], log: dir.file("worker.log"))
        }
    }

    @Test func trialsPauseArePromotedResumeFromTheRungAndTheRestStop() throws {
        let dir = try TemporaryDirectory()
        let sweep = try Sweep(in: dir)
        let (run, coordinator, worker) = (sweep.run, sweep.coordinator, sweep.worker)
        defer {
            for child in [worker, coordinator] { child.stop() }
            if ProcessInfo.processInfo.environment["FACTSWEEP_TEST_LOGS"] != nil {
                for child in [coordinator, worker] { print("== \(child.log.lastPathComponent)\n\(child.output)") }
            }
        }
        #expect(coordinator.wait(seconds: 120) && coordinator.status == 0, "the coordinator should finish the sweep:\n\(coordinator.output)")

        let db = run.appendingPathComponent("run.db")
        let trials = try SweepProcessTests.rows(db, "SELECT key, lr, status, epochs, last_epoch FROM trials ORDER BY lr DESC")
        let decisions = try SweepProcessTests.rows(db, "SELECT trial_key, rule, action, epoch FROM stopping_decisions ORDER BY id")
        let byLR = Dictionary(uniqueKeysWithValues: trials.map { (($0["lr"] as Double), $0["key"] as String) })
        func actions(_ lr: Double) -> [String] {
            decisions.filter { $0["trial_key"] == byLR[lr] }.map { "\($0["action"] as String) \($0["epoch"] as Int)" }
        }
        #expect(decisions.allSatisfy { $0["rule"] == "asha" })
        // The sequence the rule makes of this order (AshaRuleTests has the ranking): 4e-4 waits at 2, is promoted
        // by 3e-4, waits at 4, is promoted by 3e-4 again and runs to the end; 3e-4 is promoted at 2 by 1e-4.
        #expect(actions(4e-4) == ["pause 2", "promote 2", "pause 4", "promote 4"], "\(decisions)")
        #expect(actions(3e-4) == ["pause 2", "promote 2", "pause 4", "stop 4"], "\(decisions)")
        #expect(actions(2e-4) == ["pause 2", "stop 2"], "\(decisions)")
        #expect(actions(1e-4) == ["pause 2", "stop 2"], "\(decisions)")
        #expect(trials.map { $0["status"] as String } == ["done", "stopped", "stopped", "stopped"], "\(trials)")

        // Each promotion resumed from the checkpoint at its rung, through the ordinary claim.
        for lr in [4e-4, 3e-4] {
            let key = try #require(byLR[lr])
            let resumed = try SweepProcessTests.rows(db, "SELECT resumed_from_epoch FROM attempts WHERE trial_key = '\(key)' ORDER BY attempt_id")
                .map { $0["resumed_from_epoch"] as Int }
            let promotions = actions(lr).filter { $0.hasPrefix("promote") }.map { Int($0.split(separator: " ")[1])! }
            #expect(Array(resumed.dropFirst().prefix(promotions.count)) == promotions, "lr \(lr): attempts resumed from \(resumed)")
        }
        // Every epoch recorded exactly once, up to where each trial ended.
        for trial in trials {
            let key: String = trial["key"]
            let epochs = try SweepProcessTests.rows(db, "SELECT epoch FROM epoch_metrics WHERE trial_key = '\(key)' AND epoch > 0 ORDER BY epoch")
                .map { $0["epoch"] as Int }
            let last: Int = trial["last_epoch"]
            #expect(epochs == Array(1...max(1, last)) && last >= 2, "\(key): epochs \(epochs), last \(last)")
            if trial["status"] == "done" { #expect(last == trial["epochs"]) }
        }
        // status shows the stopped trials' asha decisions.
        let status = try FactSweepBinary.run(["status", run.path])
        #expect(status.status == 0 && status.stdout.contains("stopped 3") && status.stdout.contains("asha rule"), "\(status.stdout)")
    }

    @Test func aCoordinatorKilledAfterAPauseKeepsTheDecisionsAndFinishes() throws {
        let dir = try TemporaryDirectory()
        let sweep = try Sweep(in: dir)
        let (spec, cluster, run, worker) = (sweep.spec, sweep.cluster, sweep.run, sweep.worker)
        var coordinator = sweep.coordinator
        defer {
            for child in [worker, coordinator] { child.stop() }
            if ProcessInfo.processInfo.environment["FACTSWEEP_TEST_LOGS"] != nil {
                for child in [coordinator, worker] { print("== \(child.log.lastPathComponent)\n\(child.output)") }
            }
        }
        let db = run.appendingPathComponent("run.db")
        func decisions() -> [Row] {
            (try? SweepProcessTests.rows(db, "SELECT id, trial_key, action, epoch, reason, decided_at FROM stopping_decisions ORDER BY id")) ?? []
        }
        // Killed once the second trial has paused and promoted the first, while the others wait.
        let deadline = Date().addingTimeInterval(60)
        while decisions().count < 3 && coordinator.isRunning && Date() < deadline { usleep(50_000) }
        let before = decisions()
        #expect(before.count >= 3, "no promotion before the kill:\n\(coordinator.output)")
        coordinator.kill9()
        usleep(300_000)
        coordinator = try FactSweepChild(["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator-2.log"))
        #expect(coordinator.wait(seconds: 120) && coordinator.status == 0, "the restarted coordinator should finish the sweep:\n\(coordinator.output)")

        let after = decisions()
        #expect(Array(after.prefix(before.count)) == before, "the stored decisions are kept, unchanged: \(after)")
        let trials = try SweepProcessTests.rows(db, "SELECT key, status, epochs, last_epoch FROM trials")
        #expect(trials.filter { $0["status"] == "done" }.count >= 1 && trials.allSatisfy { ["done", "stopped"].contains($0["status"] as String) },
                "\(trials)")
        for trial in trials {
            let key: String = trial["key"]
            let epochs = try SweepProcessTests.rows(db, "SELECT epoch FROM epoch_metrics WHERE trial_key = '\(key)' AND epoch > 0 ORDER BY epoch")
                .map { $0["epoch"] as Int }
            #expect(epochs == Array(1...max(1, trial["last_epoch"] as Int)), "\(key): every epoch once, \(epochs)")
            if trial["status"] == "stopped" {
                #expect(after.last { $0["trial_key"] == key }?["action"] == "stop", "\(key): ends with its stop decision")
            }
        }
    }
}
