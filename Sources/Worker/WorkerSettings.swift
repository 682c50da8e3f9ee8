// WorkerSettings: who a worker is, where it connects, where its checkpoints
// go and its timing. Not here: the socket loop (WorkerClient), reading
// cluster.json (the command, with the coordinator's ClusterConfig).
import Foundation
import Protocol

/// Everything a `WorkerClient` needs to know besides its sockets and its trial runner.
public struct WorkerSettings: Sendable {
    /// The coordinator's ROUTER, e.g. `tcp://head:5555`.
    public var endpoint: String
    /// Unique in the sweep and stable across reconnects of one process; the DEALER's routing identity.
    public var workerID: String
    public var host: String
    /// Compute threads of this worker, announced in `hello`.
    public var threads: Int
    /// Each attempt checkpoints into `<checkpointDirectory>/<trial>/attempt-<id>/`; an absolute path.
    public var checkpointDirectory: URL
    /// Whether the coordinator (and other workers) can read `checkpointDirectory`: checkpoints are then
    /// announced by path, otherwise sent inline (up to `timing.inlineCheckpointLimit`).
    public var sharedCheckpoints: Bool
    public var timing: ProtocolTiming
    /// CURVE keys (this worker's pair and the coordinator's public key); nil: plaintext, unauthenticated.
    public var security: WorkerSecurity?
    /// How long a stop (SIGTERM, `shutdown`) waits for the trial to finish its epoch and checkpoint.
    public var stopGrace: Duration
    /// How long a released worker waits for the acknowledgement of its last results before it exits.
    public var ackGrace: Duration
    /// The Slurm job this worker runs in, announced in `hello`.
    public var slurm: Message.SlurmTask?
    /// Asked before each (re)connection for the coordinator's current endpoint (nil: keep `endpoint`), so
    /// that a worker follows a coordinator restarted elsewhere (`RUN/coordinator.json`).
    public var locateCoordinator: (@Sendable () -> String?)?
    /// Faults injected into this worker's result messages (the chaos benchmark; none by default).
    public var faults = DeliveryFaults()
    /// Where acknowledged progress and delivery faults are written down (the chaos benchmark); nil: nowhere.
    public var deliveryLog: DeliveryLog?

    public init(endpoint: String, workerID: String = WorkerSettings.defaultWorkerID(), threads: Int,
                checkpointDirectory: URL, sharedCheckpoints: Bool = true, timing: ProtocolTiming = ProtocolTiming(),
                security: WorkerSecurity? = nil, host: String = ProcessInfo.processInfo.hostName) {
        self.security = security
        self.endpoint = endpoint; self.workerID = workerID; self.host = host; self.threads = threads
        self.checkpointDirectory = checkpointDirectory.standardizedFileURL
        self.sharedCheckpoints = sharedCheckpoints
        self.timing = timing
        // A trial stopped for longer than its lease has been re-queued anyway.
        stopGrace = timing.leaseExpiry
        ackGrace = timing.peerDeadAfter
    }

    /// `<hostname>-<pid>`: unique on a host, and distinct across hosts.
    public static func defaultWorkerID() -> String { "\(ProcessInfo.processInfo.hostName)-\(getpid())" }

    /// Whether the coordinator at `endpoint` is on this host, so that it sees this host's files.
    public static func coordinatorIsLocal(_ endpoint: String) -> Bool { EndpointScope.isLocal(endpoint) }
}
