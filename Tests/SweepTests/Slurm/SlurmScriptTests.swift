// `factsweep slurm --dry-run`: the batch scripts it writes and prints — the
// worker array with its CPUs, requeue and preemption signal, each task a
// worker that finds the coordinator through the run directory — without
// Slurm; and the errors of a run that was never submitted.
import Foundation
import Testing
import TestSupport

struct SlurmScriptTests {
    @Test func dryRunPrintsTheScriptsItWrites() throws {
        let dir = try TemporaryDirectory()
        let spec = try SlurmSweepTests.spec(in: dir.url, name: "dry", seeds: 2, epochs: 2)
        let run = dir.url.appendingPathComponent("run dir")
        let result = try FactSweepBinary.run(["slurm", spec.path, "--workers", "5", "--cpus-per-worker", "4", "--partition", "cpu",
                                             "--time", "12:00:00", "--account", "lab", "--run-dir", run.path, "--dry-run"],
                                            environment: ["PATH": "/nonexistent"])
        #expect(result.status == 0, "\(result.stderr)")
        let workers = try String(contentsOf: run.appendingPathComponent("slurm/workers.sbatch"), encoding: .utf8)
        let coordinator = try String(contentsOf: run.appendingPathComponent("slurm/coordinator.sbatch"), encoding: .utf8)
        #expect(result.stdout.contains(workers) && result.stdout.contains(coordinator))
        for directive in ["--array=0-4", "--cpus-per-task=4", "--requeue", "--signal=B:TERM@90", "--partition=cpu", "--time=12:00:00",
                          "--account=lab", "--job-name=factsweep-dry-workers"] {
            #expect(workers.contains("#SBATCH \(directive)\n"), "\(directive)")
        }
        // Off loopback, so the sweep's own CURVE keys: the workers' key pair in RUN/keys, 0600.
        #expect(workers.contains("exec \"$FACTSWEEP\" worker --run-dir '\(run.path)' --key '\(run.path)/keys/workers.key'\n"), "\(workers)")
        let keyMode = try FileManager.default.attributesOfItem(atPath: run.appendingPathComponent("keys/workers.key").path)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(try String(contentsOf: run.appendingPathComponent("slurm/cluster.json"), encoding: .utf8).contains("allowed-workers"))
        #expect(coordinator.contains("#SBATCH --job-name=factsweep-dry-coordinator\n") && coordinator.contains("#SBATCH --partition=cpu\n"))
        #expect(coordinator.contains("coordinator \(spec.path) --cluster '\(run.path)/slurm/cluster.json' --leave-workers\n"), "\(coordinator)")
        // The coordinator binds a free port on every interface and publishes where it is.
        let cluster = try String(contentsOf: run.appendingPathComponent("slurm/cluster.json"), encoding: .utf8)
        #expect(cluster.contains(#""bind" : "tcp:\/\/0.0.0.0:*""#), "\(cluster)")
        // Nothing was submitted (no sbatch on PATH was needed).
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("slurm/jobs.json").path))
    }

    /// `--model-cache-mib` goes to every worker of the array; without it each takes its job's default.
    @Test func aModelCacheBudgetReachesEveryWorker() throws {
        let dir = try TemporaryDirectory()
        let spec = try SlurmSweepTests.spec(in: dir.url, name: "budget", seeds: 1, epochs: 1)
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["slurm", spec.path, "--workers", "2", "--run-dir", run.path, "--model-cache-mib", "512",
                                             "--dry-run"], environment: ["PATH": "/nonexistent"])
        #expect(result.status == 0, "\(result.stderr)")
        let workers = try String(contentsOf: run.appendingPathComponent("slurm/workers.sbatch"), encoding: .utf8)
        #expect(workers.contains("keys/workers.key --model-cache-mib 512\n"), "\(workers)")
        let negative = try FactSweepBinary.run(["slurm", spec.path, "--run-dir", run.path, "--model-cache-mib=-1", "--dry-run"],
                                               environment: ["PATH": "/nonexistent"])
        #expect(negative.status != 0 && negative.stderr.contains("--model-cache-mib must be 0 or more"), "\(negative.stderr)")
    }

    @Test func withoutSlurmOrJobsTheErrorsSayWhatToDo() throws {
        let dir = try TemporaryDirectory()
        let spec = try SlurmSweepTests.spec(in: dir.url, name: "nosl", seeds: 1, epochs: 1)
        let run = dir.url.appendingPathComponent("run")
        let submit = try FactSweepBinary.run(["slurm", spec.path, "--run-dir", run.path], environment: ["PATH": "/nonexistent"])
        #expect(submit.status != 0 && submit.stderr.contains("sbatch not found"), "\(submit.stderr)")
        let cancel = try FactSweepBinary.run(["slurm", "--cancel", run.path])
        #expect(cancel.status != 0 && cancel.stderr.contains("no Slurm jobs recorded"), "\(cancel.stderr)")
    }
}
