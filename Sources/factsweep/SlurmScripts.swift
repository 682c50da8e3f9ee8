// SlurmScripts: the two batch scripts `factsweep slurm` writes — the
// coordinator job and the worker array — as a user would write them by hand,
// so that --dry-run's output can be read, adapted and submitted with sbatch.
import Coordinator
import Foundation

struct SlurmScripts {
    var sweep: String
    /// The factsweep executable, by a path the compute nodes see.
    var factsweep: String
    var spec: String
    var runDirectory: RunDirectory
    /// The coordinator's cluster.json (bind address, run directory, timing).
    var cluster: String
    var workers: Int
    var cpusPerWorker: Int
    var partition: String?
    var time: String?
    var account: String?
    var simulate: Double?
    /// `--model-cache-mib` for every worker, when given; else each takes the default from its job's memory.
    var modelCacheArguments: [String] = []

    /// `factsweep coordinator …` as the coordinator job (or --coordinator-here) runs it. The workers are
    /// left running when it is stopped, so that a resubmitted coordinator finds them.
    var coordinatorArguments: [String] { ["coordinator", spec, "--cluster", cluster, "--leave-workers"] }

    /// The workers' key pair (RUN/keys/workers.key); the coordinator's public key comes with its address.
    var workerArguments: [String] {
        ["worker", "--run-dir", runDirectory.url.path, "--key", SweepKeys.workerKey(runDirectory).path]
            + (simulate.map { ["--simulate", "\($0)"] } ?? []) + modelCacheArguments
    }

    var coordinatorScript: String {
        """
        #!/bin/bash
        # FactSweep coordinator of sweep \(sweep). It resumes from \(runDirectory.database.lastPathComponent) when resubmitted, and
        # publishes its address in \(runDirectory.coordinatorAddress.lastPathComponent) for the workers (docs/cluster.md).
        #SBATCH --job-name=\(jobName("coordinator"))
        #SBATCH --ntasks=1
        #SBATCH --cpus-per-task=1
        #SBATCH --output="\(runDirectory.logs.path)/slurm-coordinator-%j.log"
        #SBATCH --open-mode=append
        \(commonDirectives)
        FACTSWEEP=${FACTSWEEP:-\(quoted(factsweep))}
        exec "$FACTSWEEP" \(coordinatorArguments.map(quoted).joined(separator: " "))

        """
    }

    var workersScript: String {
        """
        #!/bin/bash
        # FactSweep workers of sweep \(sweep): one per array task, each training with SLURM_CPUS_PER_TASK threads
        # as worker slurm-<array job>_<task>. Each waits for the coordinator's address in the run directory, so
        # the array may start before or after the coordinator. Preemption, scancel and the time limit's warning
        # (--signal: TERM 90 s before the end) send SIGTERM: the worker checkpoints its trial and hands it back,
        # and another worker resumes it. A requeued task comes back as a new worker (…-r<restart count>).
        #SBATCH --job-name=\(jobName("workers"))
        #SBATCH --array=0-\(workers - 1)
        #SBATCH --ntasks=1
        #SBATCH --cpus-per-task=\(cpusPerWorker)
        #SBATCH --requeue
        #SBATCH --signal=B:TERM@90
        #SBATCH --output="\(runDirectory.logs.path)/slurm-workers-%A_%a.log"
        #SBATCH --open-mode=append
        \(commonDirectives)
        FACTSWEEP=${FACTSWEEP:-\(quoted(factsweep))}
        exec "$FACTSWEEP" \(workerArguments.map(quoted).joined(separator: " "))

        """
    }

    private var commonDirectives: String {
        [partition.map { "#SBATCH --partition=\($0)" }, time.map { "#SBATCH --time=\($0)" }, account.map { "#SBATCH --account=\($0)" }]
            .compactMap { $0 }.joined(separator: "\n")
    }

    private func jobName(_ role: String) -> String { "factsweep-\(sweep)-\(role)".filter { !$0.isWhitespace } }

    /// A word for bash: as it is when it has no special characters, else in single quotes.
    private func quoted(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,@%".contains($0) }
        return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
