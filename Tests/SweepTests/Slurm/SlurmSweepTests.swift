// Sweeps under real Slurm (scripts/slurm-local.sh: one node, this machine),
// with simulated trials: `factsweep slurm` completes a sweep with the trials
// and metrics of a local run; --coordinator-here submits only the array; an
// array task cancelled mid-trial hands its trial back and another worker
// resumes it from the checkpoint; a requeued task rejoins as a new worker; a
// cancelled coordinator job, resubmitted with the same command, resumes and
// re-adopts the running workers; --cancel stops the sweep's jobs; and a short
// real run (SmolLM2, LoRA) whose worker, cancelled mid-epoch, checkpoints
// within Slurm's grace and whose trial a resubmitted array finishes. Each test
// starts Slurm and stops it after; a Slurm that cannot start fails the test.
import Foundation
import GRDB
import Testing
@testable import Coordinator
import TestSupport

@Suite(.serialized) struct SlurmSweepTests {
    /// A simulated sweep: `seeds` trials of `epochs` epochs, checkpointed only at the end and when stopped,
    /// so that a resumed attempt can only have started from a release's checkpoint.
    static func spec(in dir: URL, name: String, seeds: Int, epochs: Int) throws -> URL {
        let model = dir.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let text = """
            {"name": "\(name)", "model": "\(model.path)", "data": "\(data)",
             "defaults": {"epochs": \(epochs), "eval_every": 0, "checkpoint_every": 1000, "lr": 0.001},
             "conditions": [{"name": "lora", "method": "lora", "rank": 2, "alpha": 4}],
             "grid": {"seed": [\((0..<seeds).map(String.init).joined(separator: ", "))]}}
            """
        let url = dir.appendingPathComponent("spec.json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// The job ids `factsweep slurm` recorded for the run.
    static func jobs(_ run: URL) throws -> (coordinators: [String], workers: [String]) {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("slurm/jobs.json"))) as? [String: [String]]
        return (object?["coordinator_jobs"] ?? [], object?["worker_arrays"] ?? [])
    }

    static func rows(_ run: URL, _ sql: String) throws -> [Row] {
        try SweepProcessTests.rows(run.appendingPathComponent("run.db"), sql)
    }

    /// The first running trial past `epoch`, with the worker running it.
    static func runningTrial(_ run: URL, pastEpoch epoch: Int) -> (trial: String, worker: String)? {
        guard FileManager.default.fileExists(atPath: run.appendingPathComponent("run.db").path),
              let row = try? rows(run, """
                SELECT t.key AS trial, a.worker_id AS worker FROM trials t JOIN attempts a ON a.attempt_id = t.current_attempt_id
                WHERE t.status = 'running' AND t.last_epoch >= \(epoch) ORDER BY t.key LIMIT 1
                """).first else { return nil }
        return (row["trial"], row["worker"])
    }

    /// Waits for every job of the run to leave the queue (the sweep ended and the workers were shut down).
    static func waitForTheJobsToEnd(_ slurm: LocalSlurm, _ run: URL, seconds: Double) throws -> Bool {
        let jobs = try Self.jobs(run)
        return try LocalSlurm.wait(seconds: seconds) { try slurm.queued(jobs.coordinators + jobs.workers).isEmpty }
    }

    /// Attaches the run's Slurm logs to a failure.
    static func logs(_ run: URL) -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("logs").path)) ?? []
        return names.sorted().filter { $0.hasPrefix("slurm-") }.map { name in
            "== \(name)\n" + ((try? String(contentsOf: run.appendingPathComponent("logs/\(name)"), encoding: .utf8))?.suffix(3000) ?? "")
        }.joined(separator: "\n")
    }

    @Test func aSweepSubmittedWithFactsweepSlurmCompletesWithALocalRunsTrials() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(in: dir.url, name: "slurm-complete", seeds: 6, epochs: 4)
        let run = dir.url.appendingPathComponent("run")
        let submitted = try slurm.factsweep(["slurm", spec.path, "--workers", "3", "--run-dir", run.path, "--simulate", "0.4",
                                             "--heartbeat", "0.25", "--lease", "20"])
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let jobs = try Self.jobs(run)
        #expect(jobs.coordinators.count == 1 && jobs.workers.count == 1, "\(jobs)")
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 150), "\(Self.logs(run))")
        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 6, epochs: 4)
        #expect(try CoordinatorAddressFile.read(RunDirectory(run).coordinatorAddress)?.state == .finished)

        // The same spec run locally: the same trials, with the same metrics epoch by epoch.
        let local = dir.url.appendingPathComponent("local")
        let localRun = try FactSweepBinary.run(["run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--simulate", "0.01",
                                                "--run-dir", local.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(localRun.status == 0, "\(localRun.stderr)")
        let metrics = "SELECT trial_key, epoch, loss FROM epoch_metrics ORDER BY trial_key, epoch"
        let onSlurm = try Self.rows(run, metrics).map { "\($0["trial_key"] as String) \($0["epoch"] as Int) \($0["loss"] as Double)" }
        let onThisHost = try Self.rows(local, metrics).map { "\($0["trial_key"] as String) \($0["epoch"] as Int) \($0["loss"] as Double)" }
        #expect(onSlurm.count == 24 && onSlurm == onThisHost)

        // factsweep status lists each worker with its array job and task, as squeue shows them.
        let array = try #require(jobs.workers.first)
        let status = try FactSweepBinary.run(["status", run.path, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stderr)")
        let workers = try #require(object["workers"] as? [[String: Any]])
        #expect(workers.count >= 2, "\(workers)")
        for worker in workers {
            let task = try #require(worker["slurm_array_task_id"] as? Int, "\(worker)")
            #expect(worker["slurm_job_id"] as? String == array && (0..<3).contains(task), "\(worker)")
            #expect(worker["id"] as? String == "slurm-\(array)_\(task)")
        }
        let table = try FactSweepBinary.run(["status", run.path])
        #expect(table.stdout.contains("slurm job") && table.stdout.contains(" \(array)_"), "\(table.stdout)")
    }

    @Test func withTheCoordinatorHereOnlyTheArrayIsSubmitted() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(in: dir.url, name: "slurm-here", seeds: 4, epochs: 3)
        let run = dir.url.appendingPathComponent("run")
        // This process becomes the coordinator and returns when the sweep is done.
        let result = try slurm.factsweep(["slurm", spec.path, "--workers", "2", "--run-dir", run.path, "--simulate", "0.3",
                                          "--heartbeat", "0.25", "--lease", "20", "--coordinator-here"])
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(result.status == 0, "\(result.stderr)")
        let jobs = try Self.jobs(run)
        #expect(jobs.coordinators.isEmpty && jobs.workers.count == 1, "\(jobs)")
        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 4, epochs: 3)
        let address = try #require(try CoordinatorAddressFile.read(RunDirectory(run).coordinatorAddress))
        #expect(address.host == ProcessInfo.processInfo.hostName && address.state == .finished)
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 60), "\(Self.logs(run))")
    }

    @Test func anArrayTaskCancelledMidTrialHandsItBackToAnotherWorker() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let epochs = 14
        let spec = try Self.spec(in: dir.url, name: "slurm-scancel", seeds: 2, epochs: epochs)
        let run = dir.url.appendingPathComponent("run")
        let submitted = try slurm.factsweep(["slurm", spec.path, "--workers", "2", "--run-dir", run.path, "--simulate", "0.4",
                                             "--heartbeat", "0.25", "--lease", "20"])
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(submitted.status == 0, "\(submitted.stderr)")
        var running: (trial: String, worker: String)?
        #expect(LocalSlurm.wait(seconds: 90) { running = Self.runningTrial(run, pastEpoch: 2); return running != nil }, "\(Self.logs(run))")
        let (trial, victim) = try #require(running)
        let task = String(victim.dropFirst("slurm-".count))
        #expect(try slurm.run(["scancel", task]).status == 0)
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 150), "\(Self.logs(run))")

        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 2, epochs: epochs)
        let attempts = try Self.rows(run, "SELECT attempt_id, worker_id, outcome, reason, resumed_from_epoch FROM attempts WHERE trial_key = '\(trial)' ORDER BY attempt_id")
        // Handed back on SIGTERM (not lost to a lease), then finished by the other worker from the checkpoint.
        #expect(attempts.first?["worker_id"] == victim && attempts.first?["outcome"] == "superseded", "\(attempts)")
        #expect((attempts.first?["reason"] as String?)?.contains("SIGTERM") == true, "\(attempts)")
        let last = try #require(attempts.last)
        let resumedFrom: Int = last["resumed_from_epoch"]
        #expect(last["outcome"] == "done" && last["worker_id"] != victim && resumedFrom >= 2, "\(attempts)")
        // No epoch twice: the finishing attempt recorded exactly the epochs after its checkpoint.
        let recorded: Int = try Self.rows(run, "SELECT COUNT(*) AS n FROM epoch_metrics WHERE attempt_id = \(last["attempt_id"] as Int64)").first?["n"] ?? -1
        #expect(recorded == epochs - resumedFrom)
    }

    @Test func aRequeuedArrayTaskRejoinsAsANewWorker() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let epochs = 14
        let spec = try Self.spec(in: dir.url, name: "slurm-requeue", seeds: 1, epochs: epochs)
        let run = dir.url.appendingPathComponent("run")
        let submitted = try slurm.factsweep(["slurm", spec.path, "--workers", "1", "--run-dir", run.path, "--simulate", "0.4",
                                             "--heartbeat", "0.25", "--lease", "20"])
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let array = try #require(try Self.jobs(run).workers.first)
        var running: (trial: String, worker: String)?
        #expect(LocalSlurm.wait(seconds: 90) { running = Self.runningTrial(run, pastEpoch: 2); return running != nil }, "\(Self.logs(run))")
        #expect(running?.worker == "slurm-\(array)_0")
        #expect(try slurm.run(["scontrol", "requeue", "\(array)_0"]).status == 0)
        // Slurm holds a requeued job back for two minutes (its BeginTime); the test lets it start at once.
        #expect(try LocalSlurm.wait(seconds: 60) {
            _ = try slurm.run(["scontrol", "update", "JobId=\(array)_0", "StartTime=now"])
            return try Self.rows(run, "SELECT id FROM workers WHERE id = 'slurm-\(array)_0-r1'").count == 1
        }, "\(Self.logs(run))")
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 120), "\(Self.logs(run))")

        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 1, epochs: epochs)
        let workers = try Self.rows(run, "SELECT id, slurm_job_id, slurm_array_task_id FROM workers ORDER BY id")
        #expect(workers.map { $0["id"] as String } == ["slurm-\(array)_0", "slurm-\(array)_0-r1"])
        #expect(workers.allSatisfy { $0["slurm_job_id"] == array && $0["slurm_array_task_id"] == 0 }, "\(workers)")
        let done = try Self.rows(run, "SELECT worker_id, resumed_from_epoch FROM attempts WHERE outcome = 'done'")
        #expect(done.count == 1 && done.first?["worker_id"] == "slurm-\(array)_0-r1", "\(done)")
        #expect((done.first?["resumed_from_epoch"] as Int?) ?? 0 >= 2, "\(done)")
    }

    @Test func aCancelledCoordinatorResubmittedWithTheSameCommandResumes() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let epochs = 12
        let spec = try Self.spec(in: dir.url, name: "slurm-coordinator", seeds: 3, epochs: epochs)
        let run = dir.url.appendingPathComponent("run")
        let command = ["slurm", spec.path, "--workers", "2", "--run-dir", run.path, "--simulate", "0.4", "--heartbeat", "0.25", "--lease", "60"]
        let submitted = try slurm.factsweep(command)
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let first = try #require(try Self.jobs(run).coordinators.first)
        #expect(LocalSlurm.wait(seconds: 90) { Self.runningTrial(run, pastEpoch: 2) != nil }, "\(Self.logs(run))")
        #expect(try slurm.run(["scancel", first]).status == 0)
        #expect(try LocalSlurm.wait(seconds: 60) { try slurm.queued([first]).isEmpty })
        let endpoint = try CoordinatorAddressFile.read(RunDirectory(run).coordinatorAddress)?.endpoint

        // The same command again: the workers are still running, so only a coordinator is submitted.
        let again = try slurm.factsweep(command)
        #expect(again.status == 0 && again.stderr.contains("not resubmitted") && again.stderr.contains("submitted coordinator"), "\(again.stderr)")
        let jobs = try Self.jobs(run)
        #expect(jobs.coordinators.count == 2 && jobs.workers.count == 1, "\(jobs)")
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 180), "\(Self.logs(run))")

        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 3, epochs: epochs)
        #expect(try CoordinatorAddressFile.read(RunDirectory(run).coordinatorAddress)?.endpoint != endpoint, "a new coordinator, a new port")
        // The workers that were running were re-adopted: no new worker, and no trial ran to completion twice.
        let workers = try Self.rows(run, "SELECT id FROM workers").map { $0["id"] as String }
        #expect(Set(workers) == Set((0..<2).map { "slurm-\(jobs.workers[0])_\($0)" }), "\(workers)")
        let readopted = try Self.rows(run, "SELECT COUNT(*) AS n FROM events WHERE kind = 'attempt-readopted'").first?["n"] as Int?
        #expect((readopted ?? 0) >= 1)
        let completions = try Self.rows(run, "SELECT trial_key, COUNT(*) AS n FROM attempts WHERE outcome = 'done' GROUP BY trial_key")
        #expect(completions.count == 3 && completions.allSatisfy { ($0["n"] as Int?) == 1 }, "\(completions)")
    }

    @Test func cancelStopsTheSweepsJobsAndTheirTrialsAreHandedBack() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(in: dir.url, name: "slurm-cancel", seeds: 2, epochs: 40)
        let run = dir.url.appendingPathComponent("run")
        let submitted = try slurm.factsweep(["slurm", spec.path, "--workers", "2", "--run-dir", run.path, "--simulate", "0.4",
                                             "--heartbeat", "0.25", "--lease", "20"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(LocalSlurm.wait(seconds: 90) { Self.runningTrial(run, pastEpoch: 1) != nil }, "\(Self.logs(run))")
        let cancelled = try slurm.factsweep(["slurm", "--cancel", run.path])
        #expect(cancelled.status == 0 && cancelled.stderr.contains("cancelled workers") && cancelled.stderr.contains("cancelled coordinator"), "\(cancelled.stderr)")
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 60), "\(Self.logs(run))")
        // Nothing left running: each started trial was handed back with its checkpoint, to resume later.
        let trials = try Self.rows(run, "SELECT status, checkpoint_epoch FROM trials")
        #expect(trials.allSatisfy { $0["status"] == "pending" }, "\(trials)")
        #expect(trials.contains { ($0["checkpoint_epoch"] as Int?) ?? 0 >= 1 }, "\(trials)")
        let again = try slurm.factsweep(["slurm", "--cancel", run.path])
        #expect(again.status == 0 && again.stderr.contains("no job"), "\(again.stderr)")
    }

    @Test func aRealTrialCancelledMidEpochCheckpointsInTimeAndAResubmittedArrayFinishesIt() throws {
        let slurm = try LocalSlurm.start()
        defer { slurm.stop() }
        let dir = try TemporaryDirectory()
        let model = try TestPaths.model("smollm2-135m-instruct")
        // The six facts four times over: an epoch of a few seconds even on the fastest machine here (one
        // pass of the six takes under a second on a Zen 5 VM), so the cancel below lands in the first, and
        // well under Slurm's KillWait on the slowest (about 2 s a pass on a Zen 3 VM without AVX-512): the
        // worker finishes its epoch before it checkpoints.
        let facts = try String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"), encoding: .utf8)
        let data = dir.file("facts.jsonl")
        try String(repeating: facts.hasSuffix("\n") ? facts : facts + "\n", count: 4).write(to: data, atomically: true, encoding: .utf8)
        let spec = dir.file("spec.json")
        try """
            {"name": "slurm-real", "model": "\(model.path)", "data": "\(data.path)",
             "defaults": {"epochs": 2, "eval_every": 0, "checkpoint_every": 1000, "batch_size": 1, "lr": 0.0002},
             "conditions": [{"name": "lora", "method": "lora", "rank": 4, "alpha": 16}]}
            """.write(to: spec, atomically: true, encoding: .utf8)
        let run = dir.url.appendingPathComponent("run")
        let command = ["slurm", spec.path, "--workers", "1", "--cpus-per-worker", "2", "--run-dir", run.path,
                       "--heartbeat", "0.5", "--lease", "120"]
        let submitted = try slurm.factsweep(command)
        defer { _ = try? slurm.factsweep(["slurm", "--cancel", run.path]) }
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let array = try #require(try Self.jobs(run).workers.first)
        // The trial is training its first epoch: its heartbeats say so (the model is loaded; the attempt
        // starts before, and a cancel during the load used to be timed with the load).
        #expect(LocalSlurm.wait(seconds: 240) {
            Self.runningTrial(run, pastEpoch: 0) != nil
                && (try? Self.rows(run, "SELECT phase FROM attempts ORDER BY attempt_id DESC LIMIT 1").first?["phase"] as String?) == "training"
        }, "\(Self.logs(run))")
        let cancelledAt = Date()
        #expect(try slurm.run(["scancel", "\(array)_0"]).status == 0)
        #expect(try LocalSlurm.wait(seconds: 120) { try slurm.queued([array]).isEmpty }, "\(Self.logs(run))")
        let stopSeconds = Date().timeIntervalSince(cancelledAt)
        print("the worker stopped \(stopSeconds) s after scancel")
        // Handed back with a checkpoint of the epoch it was in, before Slurm's KillWait (30 s) ran out.
        let released = try Self.rows(run, "SELECT outcome, reason FROM attempts ORDER BY attempt_id")
        #expect(released.first?["outcome"] == "superseded" && (released.first?["reason"] as String?)?.contains("SIGTERM") == true,
                "\(released) \(Self.logs(run))")
        let checkpoint = try Self.rows(run, "SELECT status, checkpoint_epoch FROM trials").first
        #expect(checkpoint?["status"] == "pending" && checkpoint?["checkpoint_epoch"] == 1, "\(String(describing: checkpoint))")
        #expect(stopSeconds < 30, "the worker took \(stopSeconds) s to stop")

        // The same command again: a new array (the old one ended) resumes the trial at epoch 2.
        let again = try slurm.factsweep(command)
        #expect(again.status == 0 && again.stderr.contains("submitted workers") && again.stderr.contains("not resubmitted"), "\(again.stderr)")
        #expect(try Self.waitForTheJobsToEnd(slurm, run, seconds: 300), "\(Self.logs(run))")
        try SweepProcessTests.expectComplete(run.appendingPathComponent("run.db"), trials: 1, epochs: 2)
        let done = try Self.rows(run, "SELECT resumed_from_epoch FROM attempts WHERE outcome = 'done'")
        #expect(done.count == 1 && done.first?["resumed_from_epoch"] == 1, "\(done)")
    }
}
