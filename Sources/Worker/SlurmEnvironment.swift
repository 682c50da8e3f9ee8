// SlurmEnvironment: what a worker learns from the variables Slurm sets in a
// job — its job and array task (announced in `hello`), a worker id, its CPUs.
import Foundation
import Protocol

/// The Slurm job a process runs in, read from its environment.
public struct SlurmEnvironment: Sendable, Equatable {
    /// The job (for an array task, the array's job id) and array task, as `squeue` shows them.
    public var task: Message.SlurmTask
    /// `SLURM_RESTART_COUNT`: how often the job was requeued (0 on its first run).
    public var restartCount: Int
    /// `SLURM_CPUS_PER_TASK`, when the job asked for CPUs per task.
    public var cpusPerTask: Int?

    /// nil outside a Slurm job (no `SLURM_JOB_ID`).
    public init?(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let job = environment["SLURM_JOB_ID"], !job.isEmpty else { return nil }
        let arrayTask = environment["SLURM_ARRAY_TASK_ID"].flatMap { Int($0) }
        let arrayJob = environment["SLURM_ARRAY_JOB_ID"].flatMap { $0.isEmpty ? nil : $0 }
        task = Message.SlurmTask(jobID: arrayTask != nil ? arrayJob ?? job : job, arrayTaskID: arrayTask)
        restartCount = environment["SLURM_RESTART_COUNT"].flatMap { Int($0) } ?? 0
        cpusPerTask = environment["SLURM_CPUS_PER_TASK"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }

    /// `slurm-<job>_<task>`, with `-r<n>` after the n-th requeue: a requeued task comes back as a new
    /// worker, so that the coordinator does not take it for the process it replaced (whose attempt it
    /// does not hold).
    public var workerID: String {
        "slurm-\(task.squeueID)" + (restartCount > 0 ? "-r\(restartCount)" : "")
    }
}
