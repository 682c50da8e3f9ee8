// Leases follow the attempt's phase, with real processes (`factsweep run
// --simulate`): an evaluation longer than the lease keeps the attempt (the
// worker's heartbeats say `evaluating`, from a timer, while no step moves),
// and the phase reaches `attempts.phase`; a training loop stuck inside a step
// still loses its lease while its worker stays alive, and the trial is
// requeued to another worker.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct PhaseLeaseTests {
    /// Trials of a LoRA condition on a placeholder model (simulated workers never open it).
    static func spec(in dir: URL, epochs: Int, evalEvery: Int, seeds: Int) throws -> URL {
        let model = dir.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let url = dir.appendingPathComponent("spec.json")
        try """
            {"name": "phases", "model": "\(model.path)", "data": "\(data)",
             "defaults": {"epochs": \(epochs), "eval_every": \(evalEvery), "checkpoint_every": 1},
             "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": \(Array(0..<seeds))}}
            """.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Evaluations of 2.5 s against a 1 s lease: before phases, every attempt lost its lease in its first
    /// evaluation, and each trial failed after three.
    @Test func anEvaluationLongerThanTheLeaseKeepsTheAttempt() throws {
        let dir = try TemporaryDirectory()
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run([
            "run", try Self.spec(in: dir.url, epochs: 2, evalEvery: 1, seeds: 2).path, "--workers", "2", "--threads-per-worker", "1",
            "--simulate", "0.05", "--simulate-evaluation", "2.5", "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        try SweepProcessTests.expectComplete(db, trials: 2, epochs: 2)
        let attempts = try SweepProcessTests.rows(db, "SELECT outcome, reason, phase FROM attempts")
        #expect(attempts.count == 2 && attempts.allSatisfy { $0["outcome"] == "done" }, "\(attempts)")
        // The last phase each attempt reported (its heartbeats went on to the end of the trial).
        let phases = Set(attempts.compactMap { $0["phase"] as String? })
        #expect(!phases.isEmpty && phases.isSubset(of: ["training", "evaluating", "checkpointing", "exporting"]), "\(attempts)")
    }

    /// The training loop hangs inside a step of epoch 2 on every worker: each attempt is lost ("lease
    /// expired") although its worker keeps heartbeating; after three the trial fails (retry limit 2).
    @Test func aTrainingLoopStuckInAStepLosesItsLease() throws {
        let dir = try TemporaryDirectory()
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run([
            "run", try Self.spec(in: dir.url, epochs: 3, evalEvery: 0, seeds: 1).path, "--workers", "3", "--threads-per-worker", "1",
            "--simulate", "0.05", "--simulate-stall-epoch", "1", "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "1.5",
            "--retry-backoff", "0.2"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        let attempts = try SweepProcessTests.rows(db, "SELECT worker_id, outcome, reason, phase FROM attempts ORDER BY attempt_id")
        #expect(attempts.count == 3, "\(attempts)")
        for attempt in attempts {
            #expect(attempt["outcome"] == "lost" && attempt["reason"] == "lease expired" && attempt["phase"] == "training", "\(attempt)")
        }
        // Three workers, each stuck in turn in the first epoch: no attempt made progress, so each counted against
        // the retry limit (2), and the trial moved on to a free worker every time.
        #expect(Set(attempts.map { $0["worker_id"] as String }).count == 3, "\(attempts)")
        let trial = try #require(try SweepProcessTests.rows(db, "SELECT status, last_epoch FROM trials").first)
        #expect(trial["status"] == "failed" && trial["last_epoch"] == 0, "\(trial)")
    }
}
