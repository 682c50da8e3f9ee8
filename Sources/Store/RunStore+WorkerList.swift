// RunStore worker list: each worker that announced itself, with its Slurm job
// and the trial it runs — what `factsweep status` shows per worker.
import Foundation
import GRDB
import Trial

/// One worker as `factsweep status` lists it.
public struct WorkerListing: Sendable, Equatable {
    public var id: String
    public var host: String
    public var status: WorkerStatus
    public var lastSeen: String
    /// The Slurm job (an array task's array job id) and array task; nil outside Slurm.
    public var slurmJobID: String?
    public var slurmArrayTaskID: Int?
    /// The trial this worker's running attempt belongs to, if any.
    public var runningTrial: String?
    /// What that attempt is doing, as the worker's last heartbeat said (`attempts.phase`).
    public var phase: TrialPhase?

    /// The id `squeue` shows for the worker's job: `123_4` for an array task.
    public var squeueID: String? {
        guard let slurmJobID else { return nil }
        return slurmArrayTaskID.map { "\(slurmJobID)_\($0)" } ?? slurmJobID
    }
}

extension RunStore {
    /// Every worker that ever announced itself, connected ones first, then by id.
    public func workerListing() throws -> [WorkerListing] {
        try read { db in try WorkerListing.fetchAll(db) }
    }
}

extension WorkerListing {
    /// `RunStore.workerListing` on any connection, the dashboard's read-only one too.
    public static func fetchAll(_ db: Database) throws -> [WorkerListing] {
        // A database from before v5 (the Slurm columns) or v8 (`phase`), which the dashboard reads
        // without migrating it, lists its workers without them.
        let slurm = try RunSchema.has(db, column: "slurm_job_id", in: "workers")
            ? "w.slurm_job_id, w.slurm_array_task_id" : "NULL AS slurm_job_id, NULL AS slurm_array_task_id"
        let phase = try RunSchema.has(db, column: "phase", in: "attempts") ? "a.phase" : "NULL AS phase"
        return try Row.fetchAll(db, sql: """
            SELECT w.id, w.host, w.status, w.last_seen, \(slurm), a.trial_key, \(phase)
            FROM workers w
            LEFT JOIN attempts a ON a.attempt_id = (
                SELECT a.attempt_id FROM attempts a JOIN trials t ON t.current_attempt_id = a.attempt_id
                WHERE a.worker_id = w.id AND a.outcome = 'running' AND t.status = 'running' LIMIT 1)
            ORDER BY w.status != 'connected', w.id
            """).map { row in
            WorkerListing(id: row["id"], host: row["host"], status: WorkerStatus(rawValue: row["status"]) ?? .lost,
                          lastSeen: row["last_seen"], slurmJobID: row["slurm_job_id"],
                          slurmArrayTaskID: row["slurm_array_task_id"], runningTrial: row["trial_key"],
                          phase: (row["phase"] as String?).flatMap(TrialPhase.init(rawValue:)))
        }
    }
}
