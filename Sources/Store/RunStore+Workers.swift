// RunStore workers: who is connected, when each was last heard from.
import Foundation
import GRDB
import Trial

extension RunTransaction {
    /// Records a worker's (re)connection: inserts or refreshes its row.
    public func announceWorker(_ worker: WorkerAnnouncement) throws {
        let models = String(decoding: try JSONEncoder().encode(worker.models), as: UTF8.self)
        try operation { db, now in
            try db.executeCached(sql: """
                INSERT INTO workers (id, host, pid, threads, protocol_version, connected_at, last_seen, models, status,
                                     slurm_job_id, slurm_array_task_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'connected', ?, ?)
                ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, threads = excluded.threads,
                    protocol_version = excluded.protocol_version, connected_at = excluded.connected_at,
                    last_seen = excluded.last_seen, models = excluded.models, status = 'connected',
                    slurm_job_id = excluded.slurm_job_id, slurm_array_task_id = excluded.slurm_array_task_id
                """, arguments: [worker.id, worker.host, worker.pid, worker.threads, worker.protocolVersion, now, now, models,
                                 worker.slurmJobID, worker.slurmArrayTaskID])
            try RunStore.logEvent(db, at: now, kind: "worker-announced", workerID: worker.id,
                                  detail: "\(worker.host) pid \(worker.pid), \(worker.threads) threads, protocol \(worker.protocolVersion)")
        }
    }

    /// Records the models a worker has on hand now (its `ready` says so once its cache has changed).
    public func updateWorkerModels(_ workerID: String, _ models: [String]) throws {
        let json = String(decoding: try JSONEncoder().encode(models), as: UTF8.self)
        try operation { db, _ in
            try db.executeCached(sql: "UPDATE workers SET models = ? WHERE id = ?", arguments: [json, workerID])
            guard db.changesCount == 1 else { throw RunStoreError.unknownWorker(id: workerID) }
        }
    }

    /// A worker is alive: refreshes `last_seen` and renews the leases of
    /// `attemptIDs` — the attempts it reported as advancing, or busy in a
    /// phase without steps — if it still holds them. An attempt the worker
    /// does not report (an `assign` lost on the way, a trainer that hangs)
    /// is not renewed and expires. `phases` are the attempts whose phase
    /// changed: `attempts.phase` and `phase_since` are written for those only.
    /// Throws `unknownWorker` for a worker that never announced.
    public func heartbeat(workerID: String, renewing attemptIDs: [AttemptID] = [],
                          phases: [(AttemptID, TrialPhase)] = []) throws {
        try operation { db, now in
            try db.executeCached(sql: "UPDATE workers SET last_seen = ?, status = 'connected' WHERE id = ?", arguments: [now, workerID])
            guard db.changesCount == 1 else { throw RunStoreError.unknownWorker(id: workerID) }
            for attemptID in attemptIDs {
                try db.executeCached(sql: """
                    UPDATE attempts SET lease_expires_at = ?
                    WHERE attempt_id = ? AND worker_id = ? AND outcome = 'running'
                      AND attempt_id IN (SELECT current_attempt_id FROM trials WHERE status = 'running')
                    """, arguments: [leaseEnd(from: now), attemptID, workerID])
            }
            for (attemptID, phase) in phases {
                try db.executeCached(sql: """
                    UPDATE attempts SET phase = ?, phase_since = ? WHERE attempt_id = ? AND worker_id = ? AND outcome = 'running'
                    """, arguments: [phase.rawValue, now, attemptID, workerID])
            }
        }
    }

    /// Marks a worker lost (heartbeats stopped; its next message reconnects it).
    /// Its attempts keep their leases until they expire.
    public func setWorkerStatus(_ workerID: String, _ status: WorkerStatus) throws {
        try operation { db, now in
            try db.executeCached(sql: "UPDATE workers SET status = ? WHERE id = ?", arguments: [status.rawValue, workerID])
            guard db.changesCount == 1 else { throw RunStoreError.unknownWorker(id: workerID) }
            try RunStore.logEvent(db, at: now, kind: "worker-\(status.rawValue)", workerID: workerID)
        }
    }
}

extension RunStore {
    /// `RunTransaction.announceWorker` as one transaction.
    public func announceWorker(_ worker: WorkerAnnouncement) throws {
        try write { try $0.announceWorker(worker) }
    }

    /// `RunTransaction.heartbeat` as one transaction.
    public func heartbeat(workerID: String, renewing attemptIDs: [AttemptID] = [], phases: [(AttemptID, TrialPhase)] = []) throws {
        try write { try $0.heartbeat(workerID: workerID, renewing: attemptIDs, phases: phases) }
    }

    /// `RunTransaction.setWorkerStatus` as one transaction.
    public func setWorkerStatus(_ workerID: String, _ status: WorkerStatus) throws {
        try write { try $0.setWorkerStatus(workerID, status) }
    }
}
