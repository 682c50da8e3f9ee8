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
    @Test func trialsPauseArePromotedResumeFromTheRungAndTheRestStop() throws {
        let dir = try TemporaryDirectory()
        // Loss falls faster with a higher learning rate (SimulatedTrainer.loss), and one worker claims the trials in
        // the grid's order: the best arrives first, waits alone at rung 2, and is promoted when the next ranks below it.
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "asha", """
            "defaults": {"epochs": 6, "eval_every": 2, "checkpoint_every": 1},
            "conditions": [{"name": "lora", "method": "lora"}],
            "grid": {"lr": [4e-4, 3e-4, 2e-4, 1e-4]},
            "stopping": {"rule": "asha", "metric": "loss", "reduction_factor": 2, "grace_epochs": 2}
            """)
        let run = dir.url.appendingPathComponent("run")
        let port = Int.random(in: 20_000..<40_000)
        let cluster = try SweepProcessTests.cluster(in: dir.url, run: run, port: port)
        let coordinator = try FactSweepChild(["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator.log"))
        let worker = try FactSweepChild(["worker", "--connect", "tcp://127.0.0.1:\(port)", "--threads", "1", "--id", "w0", "--cluster", cluster.path,
                                         "--simulate", "0.2"], log: dir.file("worker.log"))
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
}
