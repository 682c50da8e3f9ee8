// CoordinatorServer: the ROUTER side of the sweep protocol (docs/protocol.md).
// One thread owns the socket and the store; every message a worker can send is
// handled in one exhaustive switch, and anything unexpected is answered, logged
// and counted — never a crash. Messages are taken in batches: whatever has
// arrived is handled in one store transaction, and the answers (acks, assigns)
// go out once it has committed.
import Foundation
import Logging
import Protocol
import Store
import Trial

/// Serves a run database's trials to workers until the sweep ends or `stop()`.
public final class CoordinatorServer {
    public let store: RunStore
    public let endpoint: CoordinatorEndpoint
    public let timing: ProtocolTiming
    private let logger: Logger
    private var ledger = DeliveryLedger()
    private var workers: [String: WorkerState] = [:]
    /// Messages from workers refused as protocol violations, by type.
    public private(set) var violations: [String: Int] = [:]
    private var meter = CoordinatorMeter()
    /// While a batch's transaction is open, what it sends waits here for the commit.
    private var holding = false
    private var outgoing: [Outgoing] = []

    /// A message waiting for its batch to commit; `readyAt`, for an assign, is when the ready it answers came.
    struct Outgoing {
        var message: Message
        var peer: PeerID
        var readyAt: ContinuousClock.Instant?
        var madeAt = ContinuousClock.now
    }

    /// A batch ends after this many messages, or once it has taken this long to handle, even if more are
    /// waiting: the first message of a batch waits for the last one's handling and for the commit.
    static let batchLimit = 256
    static let batchTime = Duration.milliseconds(5)

    struct WorkerState {
        var peer: PeerID
        var session: String
        var models: [String]
        var lastHeard: Date
        /// The compute threads its hello declared: `ready` never claims more slots than this.
        var threads: Int
        var idleSlots = 0
        /// (trial, attempt) → last reported position and phase, to renew training leases only on progress
        /// and to write a phase only when it changes.
        var positions: [String: Position] = [:]
        /// Attempts assigned to this worker that no heartbeat or result has named yet, and when each
        /// `assign` went out: one still unnamed a grace after that was lost on the way.
        var unconfirmed: [AttemptID: ContinuousClock.Instant] = [:]
    }

    /// Where an attempt was at its worker's last heartbeat.
    struct Position: Equatable {
        var epoch: Int
        var step: Int
        /// nil until a heartbeat names the phase (an attempt re-adopted from a hello).
        var phase: TrialPhase?
    }

    /// How long an `assign` may go unconfirmed by the worker's heartbeats before a heartbeat reporting a free
    /// slot shows it lost: two heartbeat intervals, far more than a message takes on a working link.
    var assignGrace: Duration { timing.heartbeatInterval * 2 }

    /// With `security`, only workers whose keys are on its allow-list get through (CURVE + ZAP).
    public init(store: RunStore, context: ZMQContext, bind: String, timing: ProtocolTiming,
                security: CoordinatorSecurity? = nil, logger: Logger) throws {
        self.store = store
        self.timing = timing
        self.logger = logger
        endpoint = try CoordinatorEndpoint(context, bind: bind, timing: timing, security: security, logger: logger)
        // Trials that were running when a previous coordinator stopped wait for
        // their workers to re-announce them, or for their lease to expire.
        let stale = try store.markRunningTrialsStale()
        if stale > 0 { logger.info("trials awaiting re-adoption after a restart", metadata: ["count": "\(stale)"]) }
    }

    /// The bound endpoint (with the real port when bound to port 0 / `*`).
    public var boundEndpoint: String { endpoint.endpoint }

    /// Messages, dispatch latency and SQLite write times of the last (or current) `serve`.
    public var statistics: CoordinatorStatistics { meter.snapshot(writes: store.writeTimes.summary) }

    /// Runs until every trial has ended (when `untilComplete`) or `stop()` says so.
    /// `tick` gets the run's status after a housekeeping round (about once per heartbeat interval), at most
    /// every `statusEvery` seconds (reading it costs the serving thread milliseconds on a large run).
    public func serve(untilComplete: Bool, stop: () -> Bool = { false }, statusEvery: TimeInterval = 5,
                      tick onTick: (RunStatus) -> Void = { _ in }) throws {
        var lastHousekeeping = Date.distantPast, lastStatus = Date.distantPast
        let tick = timing.heartbeatInterval
        meter = CoordinatorMeter()
        while !stop() {
            let trialEnded = try serveBatch(waitingUpTo: tick / 4)
            let housekeepingDue = Date().timeIntervalSince(lastHousekeeping) >= Self.seconds(tick)
            if housekeepingDue {
                lastHousekeeping = Date()
                try committing { try housekeeping($0) }
                if Date().timeIntervalSince(lastStatus) >= statusEvery {
                    lastStatus = Date()
                    onTick(try store.status())
                }
            }
            if untilComplete, trialEnded || housekeepingDue, try sweepComplete() {
                meter.sweepComplete()
                for (_, w) in workers { try? send(.shutdown(.init(reason: "sweep complete")), to: w.peer) }
                logger.info("sweep complete")
                return
            }
        }
    }

    /// Waits up to `timeout` for a message, then handles it and whatever else has already arrived (up to
    /// `batchLimit` messages or `batchTime`, and no further than a `ready`, whose worker is waiting) in one
    /// store transaction, and sends the answers after the commit — so nothing is acknowledged or assigned
    /// before it is on disk, and a burst of messages costs one commit. Returns whether a trial reached its
    /// final state.
    private func serveBatch(waitingUpTo timeout: Duration) throws -> Bool {
        guard var next = try endpoint.receive(timeout: timeout) else { return false }
        let endedBefore = meter.trialsEnded
        try committing { transaction in
            let deadline = ContinuousClock.now + Self.batchTime
            var count = 0
            while true {
                let receivedAt = ContinuousClock.now
                switch next.message {
                case let .success(message):
                    meter.received(message.type.description)
                    do {
                        try handle(message, from: next.peer, receivedAt: receivedAt, in: transaction)
                    } catch let error as RunStoreError where error.isCausedByPeer {
                        // The store undid the operation alone (a savepoint); the batch goes on.
                        refuse(next.peer, "\(message.type) refused: \(error)")
                    }
                case .failure:
                    meter.received("rejected")  // counted, logged and answered by the endpoint
                }
                count += 1
                if case .success(.ready) = next.message { break }
                guard count < Self.batchLimit, ContinuousClock.now < deadline,
                      let more = try endpoint.receive(timeout: .zero) else { break }
                next = more
            }
            meter.batch(count)
        }
        return meter.trialsEnded != endedBefore
    }

    /// Runs `body` in one store transaction (`RunStore.batch`) and sends what it sent only once that has
    /// committed; if it throws, nothing is sent.
    private func committing(_ body: (RunTransaction) throws -> Void) throws {
        holding = true
        defer {
            holding = false
            outgoing.removeAll()
        }
        try store.batch(body)
        holding = false
        for answer in outgoing { transmit(answer) }
    }

    /// Stops every connected worker (they checkpoint and release their trials).
    public func shutdownWorkers(reason: String) {
        for (_, w) in workers { try? send(.shutdown(.init(reason: reason)), to: w.peer) }
    }

    public func close() { endpoint.close() }

    // MARK: Messages

    /// Sends to a worker, or holds the message until the open batch commits.
    private func send(_ message: Message, to peer: PeerID, readyAt: ContinuousClock.Instant? = nil) throws {
        let answer = Outgoing(message: message, peer: peer, readyAt: readyAt)
        if holding { outgoing.append(answer) } else { transmit(answer) }
    }

    /// Sends and counts a message. A send that fails is logged: what the coordinator sends is recovered
    /// without it (results are resent until acknowledged, an attempt never heard of loses its lease).
    private func transmit(_ answer: Outgoing) {
        do {
            try endpoint.send(answer.message, to: answer.peer)
        } catch {
            logger.warning("send failed", metadata: ["worker": "\(answer.peer)", "type": "\(answer.message.type)", "error": "\(error)"])
            return
        }
        meter.sent(answer.message.type.description)
        if case .assign = answer.message { meter.assigned(to: answer.peer, readyAt: answer.readyAt, madeAt: answer.madeAt) }
    }

    private func handle(_ message: Message, from peer: PeerID, receivedAt: ContinuousClock.Instant,
                        in transaction: RunTransaction) throws {
        let workerID = peer.description
        workers[workerID]?.lastHeard = Date()
        if let attempt = message.resultAttempt { workers[workerID]?.unconfirmed[attempt] = nil }
        switch message {
        case let .hello(hello):
            try welcome(hello, peer: peer, in: transaction)
        case let .ready(ready):
            guard workers[workerID] != nil else { return askForHello(peer, "ready") }
            // An admitted worker still cannot claim the whole queue: no more slots than its hello's threads.
            let cap = workers[workerID]?.threads ?? 0
            if ready.freeSlots > cap {
                refuse(peer, "ready claims \(ready.freeSlots) free slots; this worker's hello declared \(cap) threads")
            }
            workers[workerID]?.idleSlots = max(0, min(ready.freeSlots, cap))
            try dispatch(answering: workerID, readyAt: receivedAt, in: transaction)
        case let .progress(p):
            guard let session = session(of: workerID, peer) else { return }
            if ledger.firstDelivery(of: p.messageID, from: workerID, session: session) {
                // The evaluation's answers are recorded with the epoch.
                let write = try transaction.recordEpoch(p.trial, attemptID: p.attempt, report: p.report)
                guard try settle(write, p.messageID, trial: p.trial, attempt: p.attempt, peer: peer, session: session) else { return }
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [p.messageID])), to: peer)
        case let .checkpoint(c):
            guard let session = session(of: workerID, peer) else { return }
            if ledger.firstDelivery(of: c.messageID, from: workerID, session: session) {
                let write = try transaction.recordCheckpoint(c.trial, attemptID: c.attempt, checkpoint: c.checkpoint)
                guard try settle(write, c.messageID, trial: c.trial, attempt: c.attempt, peer: peer, session: session) else { return }
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [c.messageID])), to: peer)
        case let .done(d):
            guard let session = session(of: workerID, peer) else { return }
            if ledger.firstDelivery(of: d.messageID, from: workerID, session: session) {
                let summary = try TrialJSON.encoder().encode(d.summary)
                let write = try transaction.finishTrial(d.trial, attemptID: d.attempt,
                                                        result: d.summary.outcome == .diverged ? .diverged : .done,
                                                        summary: summary)
                guard try settle(write, d.messageID, trial: d.trial, attempt: d.attempt, peer: peer, session: session) else { return }
                if write == .accepted { meter.trialEnded() }
                workers[workerID]?.positions["\(d.trial)/\(d.attempt)"] = nil
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [d.messageID])), to: peer)
        case let .failed(f):
            guard let session = session(of: workerID, peer) else { return }
            if ledger.firstDelivery(of: f.messageID, from: workerID, session: session) {
                // A resume checkpoint whose file holds another epoch: forget it, so the next attempt starts afresh.
                if let epoch = f.refusedCheckpoint { try transaction.discardCheckpoint(f.trial, attemptID: f.attempt, epoch: epoch) }
                let write = f.retryable
                    ? try transaction.releaseTrial(f.trial, attemptID: f.attempt, reason: f.reason)
                    : try transaction.finishTrial(f.trial, attemptID: f.attempt, result: .failed, reason: f.reason)
                guard try settle(write, f.messageID, trial: f.trial, attempt: f.attempt, peer: peer, session: session) else { return }
                if write == .accepted, !f.retryable { meter.trialEnded() }
                workers[workerID]?.positions["\(f.trial)/\(f.attempt)"] = nil
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [f.messageID])), to: peer)
        case let .heartbeat(beat):
            guard workers[workerID] != nil else { return askForHello(peer, "heartbeat") }
            try renewLeases(of: workerID, beat.running, in: transaction)
            if let free = beat.freeSlots { try reconcile(workerID, freeSlots: free, running: beat.running, in: transaction) }
            try send(.heartbeat(.init()), to: peer)
        case .assign, .ack, .cancel, .drop, .shutdown:
            refuse(peer, "\(message.type) is sent by the coordinator, not by workers")
        case let .error(reply):
            logger.warning("worker reported an error", metadata: ["worker": "\(workerID)", "reason": "\(reply.reason)"])
        }
    }

    /// A heartbeat's attempts renew their leases when their training loop moved on since the last beat, or
    /// when they are in a phase without steps (evaluation, checkpoint, export …), which the worker's timer
    /// reports for as long as it lasts. A training loop stuck in a step, or an attempt the worker never
    /// got, is not renewed and expires. Phases that changed are written for `factsweep status`.
    private func renewLeases(of workerID: String, _ running: [Message.Activity], in transaction: RunTransaction) throws {
        var renewing: [AttemptID] = [], phases: [(AttemptID, TrialPhase)] = []
        for activity in running {
            let key = "\(activity.trial)/\(activity.attempt)"
            let phase = activity.phase ?? .training
            let previous = workers[workerID]?.positions[key]
            let moved = previous.map { $0.epoch != activity.epoch || $0.step != activity.step } ?? true
            if moved || !phase.renewsOnlyOnProgress { renewing.append(activity.attempt) }
            if previous?.phase != phase { phases.append((activity.attempt, phase)) }
            workers[workerID]?.positions[key] = Position(epoch: activity.epoch, step: activity.step, phase: phase)
            workers[workerID]?.unconfirmed[activity.attempt] = nil
        }
        try transaction.heartbeat(workerID: workerID, renewing: renewing, phases: phases)
    }

    /// A worker's heartbeat says how many slots it has free; the coordinator's belief is set to match, so
    /// that a lost `ready` or `assign` does not leave the worker idle for ever. Assigns that the beat does
    /// not name and that went out more than `assignGrace` ago never reached the worker: their attempts are
    /// requeued now. Younger ones may still be on the way and keep their slots.
    private func reconcile(_ workerID: String, freeSlots: Int, running: [Message.Activity], in transaction: RunTransaction) throws {
        guard let state = workers[workerID] else { return }
        let named = Set(running.map(\.attempt)), now = ContinuousClock.now
        var lost: [AttemptID] = [], inFlight = 0
        for (attempt, sentAt) in state.unconfirmed where !named.contains(attempt) {
            if now - sentAt < assignGrace { inFlight += 1 } else { lost.append(attempt) }
        }
        if !lost.isEmpty {
            for attempt in lost { workers[workerID]?.unconfirmed[attempt] = nil }
            for requeued in try transaction.requeueUnstartedAttempts(Set(lost), of: workerID) {
                logger.warning("assign lost on the way; trial requeued", metadata: ["trial": "\(requeued.key)", "worker": "\(workerID)"])
                meter.lostAssign()
                if requeued.status.isTerminal { meter.trialEnded() }
            }
        }
        let idle = max(0, min(freeSlots, state.threads) - inFlight)
        let believed = state.idleSlots
        workers[workerID]?.idleSlots = idle
        if idle > believed {
            logger.info("heartbeat shows free slots the coordinator did not know of", metadata: ["worker": "\(workerID)", "free": "\(idle)"])
            meter.reconciledSlots()
            try dispatch(in: transaction)
        }
    }

    private func welcome(_ hello: Message.Hello, peer: PeerID, in transaction: RunTransaction) throws {
        if let problem = WorkerIdentity.problem(peer.description) { return refuse(peer, problem) }
        guard hello.workerID == peer.description else {
            return refuse(peer, "hello names worker \(hello.workerID) but the connection's id is \(peer.description)")
        }
        guard hello.threads >= 1 else { return refuse(peer, "hello declares \(hello.threads) threads") }
        try transaction.announceWorker(WorkerAnnouncement(id: hello.workerID, host: hello.host, pid: Int(hello.pid), threads: hello.threads,
                                                          protocolVersion: String(hello.protocolVersion), models: hello.models,
                                                          slurmJobID: hello.slurm?.jobID, slurmArrayTaskID: hello.slurm?.arrayTaskID))
        workers[hello.workerID] = WorkerState(peer: peer, session: hello.session, models: hello.models, lastHeard: Date(),
                                              threads: hello.threads)
        meter.hello(from: hello.workerID)
        logger.info("worker connected", metadata: ["worker": "\(hello.workerID)", "host": "\(hello.host)", "held": "\(hello.held.count)"])
        // What the worker does not hold is not running anywhere: requeue it now.
        for requeued in try transaction.requeueAttemptsNotHeld(by: hello.workerID, held: Set(hello.held.map(\.attempt)))
        where requeued.status.isTerminal {
            meter.trialEnded()
        }
        for held in hello.held {
            let readoption: Readoption
            do {
                readoption = try transaction.readoptAttempt(held.attempt, trialKey: held.trial, workerID: hello.workerID)
            } catch let error as RunStoreError where error.isCausedByPeer {
                refuse(peer, "held attempt \(held.attempt) refused: \(error)")
                continue
            }
            switch readoption {
            case .adopted:
                workers[hello.workerID]?.positions["\(held.trial)/\(held.attempt)"] = Position(epoch: held.lastEpoch, step: 0)
            case let .refused(status):
                try send(.drop(.init(trial: held.trial, attempt: held.attempt, reason: "the trial is \(status.rawValue) now")), to: peer)
            }
        }
    }

    /// Answers a write the store refused, and returns whether the result is to be acknowledged. A stale
    /// attempt was fenced: `drop` (acknowledged, there is nothing to resend). A result after a gap (an
    /// epoch before it missing, or `done` before every planned epoch) is not applied and not acknowledged:
    /// the worker is told the epoch expected, and the ledger forgets the message so its resend is applied.
    private func settle(_ write: AttemptWrite, _ messageID: MessageID, trial: String, attempt: AttemptID, peer: PeerID,
                        session: String) throws -> Bool {
        switch write {
        case .accepted, .duplicate:
            return true
        case .staleAttempt:
            // Not which attempt does: the current attempt's id is no business of another worker's.
            try send(.drop(.init(trial: trial, attempt: attempt, reason: "another attempt holds the trial")), to: peer)
            return true
        case let .gap(expected):
            meter.gapRefused()
            logger.warning("result after a gap refused", metadata: ["trial": "\(trial)", "attempt": "\(attempt)", "expected": "\(expected)"])
            ledger.forget(messageID, from: peer.description, session: session)
            try send(.error(.init(reason: "\(Message.ErrorReply.epochExpected) \(expected) of trial \(trial) first",
                                  trial: trial, attempt: attempt, expectedEpoch: expected)), to: peer)
            return false
        }
    }

    private func session(of workerID: String, _ peer: PeerID) -> String? {
        guard let session = workers[workerID]?.session else {
            askForHello(peer, "result")
            return nil
        }
        return session
    }

    /// A worker this coordinator has not met (it restarted, and the worker's
    /// DEALER reconnected on its own): ask it to introduce itself again.
    private func askForHello(_ peer: PeerID, _ what: String) {
        logger.info("unknown worker asked to say hello", metadata: ["worker": "\(peer)", "sent": "\(what)"])
        try? send(.error(.init(reason: "\(Message.ErrorReply.helloRequired): \(what) from an unknown worker")), to: peer)
    }

    private func refuse(_ peer: PeerID, _ reason: String) {
        violations[reason, default: 0] += 1
        logger.warning("protocol violation", metadata: ["worker": "\(peer)", "reason": "\(reason)"])
        try? send(.error(.init(reason: reason)), to: peer)
    }

    // MARK: Scheduling

    /// Hands pending trials to workers with free slots (pull-based). `readyAt`: when the `ready` of worker
    /// `answering` was received, for the dispatch latency of the assigns that answer it.
    private func dispatch(answering: String? = nil, readyAt: ContinuousClock.Instant? = nil, in transaction: RunTransaction) throws {
        for (id, w) in workers.sorted(by: { $0.key < $1.key }) where w.idleSlots > 0 {
            var slots = w.idleSlots
            while slots > 0, let claim = try transaction.claimNextTrial(for: id, preferring: w.models) {
                try send(.assign(.init(trial: claim.key, attempt: claim.attemptID, config: claim.config, resume: claim.checkpoint,
                                       epochsRecorded: claim.nextEpoch - 1)), to: w.peer, readyAt: id == answering ? readyAt : nil)
                workers[id]?.unconfirmed[claim.attemptID] = .now
                logger.info("assigned", metadata: ["trial": "\(claim.key.prefix(12))", "attempt": "\(claim.attemptID)", "worker": "\(id)"])
                slots -= 1
            }
            workers[id]?.idleSlots = slots
        }
    }

    private func housekeeping(_ transaction: RunTransaction) throws {
        for requeued in try transaction.requeueExpiredLeases() {
            logger.warning("lease expired; trial requeued", metadata: ["trial": "\(requeued)"])
            if requeued.status.isTerminal { meter.trialEnded() }
        }
        let deadline = Date().addingTimeInterval(-Self.seconds(timing.peerDeadAfter))
        for (id, w) in workers where w.lastHeard < deadline {
            logger.warning("worker silent; its trials wait for their leases", metadata: ["worker": "\(id)"])
            try transaction.setWorkerStatus(id, .lost)
            workers[id] = nil
        }
        try dispatch(in: transaction)
    }

    private func sweepComplete() throws -> Bool {
        let trials = try store.unfinishedTrials()
        return trials.unfinished == 0 && trials.total > 0
    }

    public static func seconds(_ d: Duration) -> TimeInterval {
        let (s, attos) = d.components
        return TimeInterval(s) + TimeInterval(attos) * 1e-18
    }
}

/// A coordinator failure with a message for the operator.
public struct CoordinatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension RunStoreError {
    /// Whether a worker's message caused the refusal (it names a trial the run does not hold, or asks for
    /// a change the trial's state forbids): the coordinator answers it with `error` and goes on serving.
    /// The other errors are the run database's own, for the operator.
    var isCausedByPeer: Bool {
        switch self {
        case .unknownTrial, .invalidTransition: true
        case .notARunDatabase, .newerSchema, .missingDatabase, .missingFolder, .cannotOpen, .unknownWorker, .conflictingTrial,
             .invalidSpec, .corruptRow: false
        }
    }
}
