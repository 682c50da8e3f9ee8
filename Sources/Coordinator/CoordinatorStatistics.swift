// CoordinatorStatistics: what the coordinator's loop does and what it costs —
// messages in and out by type, dispatch latency, time in SQLite writes, CPU
// time — counted always (a clock read or two per message) and written as
// coordinator-stats.json in the run directory when a run ends. The fields are
// described in docs/benchmarks.md ("Sweep coordinator at scale").
import Foundation
import Protocol
import Store
import Trial

/// The coordinator's figures for one `serve` (times in seconds from its start).
public struct CoordinatorStatistics: Sendable, Equatable, Codable {
    /// Messages received from workers, by type name (`rejected`: unreadable ones).
    public var received: [String: Int] = [:]
    /// Messages sent to workers, by type name (answers to unreadable messages not included).
    public var sent: [String: Int] = [:]
    /// From receiving a worker's `ready` to having sent the `assign` that answers it (after the commit of
    /// the claim), for every assign made while that `ready` was handled — but each worker's
    /// first, which are in `firstDispatch`: they come while the workers start, all at once.
    public var dispatch = DurationSummary([])
    /// The part of `dispatch` after the assign was made: the rest of its batch, the commit, the send.
    public var dispatchAfterClaim = DurationSummary([])
    public var firstDispatch = DurationSummary([])
    /// Assigns to a slot that had waited for work (no trial pending when its `ready` came), made later by
    /// housekeeping or another worker's message; not in `dispatch`.
    public var deferredAssigns = 0
    /// Every SQLite write transaction of the store, commit included (a batch of messages is one).
    public var sqliteWrites = DurationSummary([])
    /// Batches of messages handled in one transaction each, and the most messages in one.
    public var batches = 0
    public var largestBatch = 0
    /// Wall time of `serve`.
    public var serveSeconds = 0.0
    /// When the last trial reached its final state (nil while some trial has not).
    public var sweepSeconds: Double?
    public var firstAssignSeconds: Double?
    /// Distinct workers that said hello, and when the last new one did.
    public var workersSeen = 0
    public var lastWorkerJoinedSeconds: Double?
    /// CPU time (user + system) of the coordinator's process during `serve`.
    public var cpuSeconds = 0.0
    /// Assigns found lost on the way (a heartbeat reported a free slot and did not name them): requeued.
    public var lostAssigns = 0
    /// Heartbeats that showed a worker had free slots the coordinator did not know of (a lost `ready`).
    public var reconciledSlots = 0
    /// Result messages that arrived again (resends, duplicates): acknowledged, not applied.
    public var duplicateResults = 0
    /// Results refused because an epoch before them was missing (`error` with `expected_epoch`).
    public var gapsRefused = 0

    public init() {}

    public var messagesReceived: Int { received.values.reduce(0, +) }
    public var messagesSent: Int { sent.values.reduce(0, +) }

    /// Messages in and out per second of `serve`.
    public var messagesPerSecond: Double {
        serveSeconds > 0 ? Double(messagesReceived + messagesSent) / serveSeconds : 0
    }

    /// Writes the figures as pretty-printed JSON (snake_case keys).
    public func write(to file: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: file, options: .atomic)
    }

    public static func read(from file: URL) throws -> CoordinatorStatistics {
        try JSONDecoder().decode(CoordinatorStatistics.self, from: Data(contentsOf: file))
    }

    enum CodingKeys: String, CodingKey {
        case received, sent, dispatch, dispatchAfterClaim = "dispatch_after_claim", firstDispatch = "first_dispatch",
             deferredAssigns = "deferred_assigns", sqliteWrites = "sqlite_writes", batches,
             largestBatch = "largest_batch",
             serveSeconds = "serve_seconds", sweepSeconds = "sweep_seconds", firstAssignSeconds = "first_assign_seconds",
             workersSeen = "workers_seen", lastWorkerJoinedSeconds = "last_worker_joined_seconds", cpuSeconds = "cpu_seconds",
             lostAssigns = "lost_assigns", reconciledSlots = "reconciled_slots", duplicateResults = "duplicate_results",
             gapsRefused = "gaps_refused"
    }
}

/// The running counts behind `CoordinatorStatistics`, kept by the serving thread.
struct CoordinatorMeter {
    let start = ContinuousClock.now
    let startCPU = ResourceUsage.cpuSeconds
    var figures = CoordinatorStatistics()
    var dispatch: [Double] = []
    var afterClaim: [Double] = []
    var firstDispatch: [Double] = []
    var assignedWorkers: Set<PeerID> = []
    var workers: Set<String> = []
    /// When a trial last reached a final state, and how many have.
    var lastTrialEnded: Double?
    var trialsEnded = 0

    func elapsed(at instant: ContinuousClock.Instant = .now) -> Double { DurationSamples.seconds(instant - start) }

    mutating func received(_ type: String) { figures.received[type, default: 0] += 1 }
    mutating func sent(_ type: String) { figures.sent[type, default: 0] += 1 }

    mutating func hello(from worker: String) {
        if workers.insert(worker).inserted {
            figures.workersSeen = workers.count
            figures.lastWorkerJoinedSeconds = elapsed()
        }
    }

    /// An assign made at `madeAt` went out to `worker`; `readyAt` is when the ready it answers was received,
    /// nil for a deferred one.
    mutating func assigned(to worker: PeerID, readyAt: ContinuousClock.Instant?, madeAt: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        if figures.firstAssignSeconds == nil { figures.firstAssignSeconds = elapsed(at: now) }
        let first = assignedWorkers.insert(worker).inserted
        guard let readyAt else {
            figures.deferredAssigns += 1
            return
        }
        if first {
            firstDispatch.append(DurationSamples.seconds(now - readyAt))
        } else {
            dispatch.append(DurationSamples.seconds(now - readyAt))
            afterClaim.append(DurationSamples.seconds(now - madeAt))
        }
    }

    mutating func lostAssign() { figures.lostAssigns += 1 }
    mutating func reconciledSlots() { figures.reconciledSlots += 1 }
    mutating func duplicateResult() { figures.duplicateResults += 1 }
    mutating func gapRefused() { figures.gapsRefused += 1 }

    mutating func trialEnded() {
        lastTrialEnded = elapsed()
        trialsEnded += 1
    }

    mutating func batch(_ messages: Int) {
        figures.batches += 1
        figures.largestBatch = max(figures.largestBatch, messages)
    }

    /// The sweep has no trial left to run: it took until the last one ended.
    mutating func sweepComplete() {
        if figures.sweepSeconds == nil { figures.sweepSeconds = lastTrialEnded ?? elapsed() }
    }

    /// The figures so far, with the store's write timings.
    func snapshot(writes: DurationSummary) -> CoordinatorStatistics {
        var figures = figures
        figures.dispatch = DurationSummary(dispatch)
        figures.dispatchAfterClaim = DurationSummary(afterClaim)
        figures.firstDispatch = DurationSummary(firstDispatch)
        figures.sqliteWrites = writes
        figures.serveSeconds = elapsed()
        figures.cpuSeconds = ResourceUsage.cpuSeconds - startCPU
        return figures
    }
}
