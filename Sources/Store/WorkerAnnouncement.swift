// WorkerAnnouncement: what a worker says about itself when it connects.
import Foundation

/// A worker's self-description, stored in `workers`.
public struct WorkerAnnouncement: Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int
    public var threads: Int
    public var protocolVersion: String
    /// Models the worker has at hand (paths as the sweep spec writes them);
    /// claims prefer trials on these.
    public var models: [String]
    /// The Slurm job and array task the worker runs in, for matching workers to `squeue`.
    public var slurmJobID: String?
    public var slurmArrayTaskID: Int?

    public init(id: String, host: String, pid: Int, threads: Int, protocolVersion: String, models: [String] = [],
                slurmJobID: String? = nil, slurmArrayTaskID: Int? = nil) {
        self.id = id; self.host = host; self.pid = pid; self.threads = threads
        self.protocolVersion = protocolVersion; self.models = models
        self.slurmJobID = slurmJobID; self.slurmArrayTaskID = slurmArrayTaskID
    }
}
