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
    /// `factsweep retry` / `cancel` reach the running coordinator here; nil without a run directory.
    private var control: ControlChannel?
    /// Results first delivered in the open batch: forgotten again if the batch cannot commit, so that their
    /// resends are applied rather than taken for duplicates.
    private var deliveredInBatch: [(id: MessageID, workerID: String, session: String)] = []
    /// Set while the run database cannot be written (a full disk, an I/O error): nothing is applied,
    /// acknowledged or assigned, and a write is tried again at `nextProbe`.
    private var paused: (since: SuspendingClock.Instant, nextProbe: SuspendingClock.Instant, error: String)?

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
        /// On the monotonic clock: a wall-clock jump must not declare every worker dead (or none).
        var lastHeard: SuspendingClock.Instant
        /// The compute threads its hello declared: `ready` never claims more slots than this.
        var threads: Int
        var idleSlots = 0
        /// (trial, attempt) → last reported (epoch, step), to renew leases only on progress.
        var positions: [String: (Int, Int)] = [:]
    }

    /// With `security`, only workers whose keys are on its allow-list get through (CURVE + ZAP).
    /// With `runDirectory`, the user's `factsweep retry` and `cancel` reach it there (ControlChannel).
    public init(store: RunStore, context: ZMQContext, bind: String, timing: ProtocolTiming,
                security: CoordinatorSecurity? = nil, runDirectory: URL? = nil, logger: Logger) throws {
        self.store = store
        self.timing = timing
        self.logger = logger
        endpoint = try CoordinatorEndpoint(context, bind: bind, timing: timing, security: security, logger: logger)
        if let runDirectory {
            do {
                control = try ControlChannel(context, runDirectory: runDirectory)
            } catch {
                // The sweep runs without it; the commands say so.
                logger.warning("no control socket: factsweep retry and cancel cannot reach this coordinator",
                               metadata: ["run": "\(runDirectory.path)", "error": "\(error)"])
            }
        }
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
        // Monotonic: a wall clock set back an hour must not stop housekeeping (leases, back-offs) for an hour.
        let clock = SuspendingClock()
        var lastHousekeeping: SuspendingClock.Instant?, lastStatus: SuspendingClock.Instant?
        let tick = timing.heartbeatInterval
        meter = CoordinatorMeter()
        while !stop() {
            if paused != nil {
                try serveWhilePaused()
                continue
            }
            do {
                var trialEnded = try serveBatch(waitingUpTo: tick / 4)
                if try serveControl() { trialEnded = true }
                let housekeepingDue = lastHousekeeping.map { clock.now - $0 >= tick } ?? true
                if housekeepingDue {
                    lastHousekeeping = clock.now
                    try committing { try housekeeping($0) }
                    if lastStatus.map({ clock.now - $0 >= .milliseconds(Int64(statusEvery * 1000)) }) ?? true {
                        lastStatus = clock.now
                        onTick(try store.status())
                    }
                }
                if untilComplete, trialEnded || housekeepingDue, try sweepComplete() {
                    meter.sweepComplete()
                    logger.info("sweep complete")
                    shutdownWorkers(reason: "sweep complete")
                    return
                }
            } catch where RunStore.isStorageFailure(error) {
                pause(error)
            }
        }
    }

    // MARK: A run database that cannot be written

    /// The run database refused a write (its transaction rolled back whole): pause dispatch. Results of the
    /// failed batch were neither applied nor acknowledged, so their workers still hold them.
    private func pause(_ error: any Error) {
        for delivered in deliveredInBatch { ledger.forget(delivered.id, from: delivered.workerID, session: delivered.session) }
        deliveredInBatch.removeAll()
        let now = SuspendingClock.now
        paused = (now, now + timing.heartbeatInterval, "\(error)")
        logger.error("the run database cannot be written (disk full?); dispatch paused until it can, nothing acknowledged is lost",
                     metadata: ["database": "\(store.path)", "error": "\(error)"])
    }

    /// While paused: heartbeats are answered (workers stay connected and keep their results), everything
    /// else waits unanswered; every heartbeat interval a write is tried. When one succeeds, the running
    /// attempts get fresh leases (none is lost for the pause), and every worker is asked to say hello
    /// again, which resends its unacknowledged results.
    private func serveWhilePaused() throws {
        guard let state = paused else { return }
        if let next = try endpoint.receive(timeout: timing.heartbeatInterval / 4), case .success(.heartbeat) = next.message {
            workers[next.peer.description]?.lastHeard = .now
            try send(.heartbeat(.init()), to: next.peer)
        }
        guard SuspendingClock.now >= state.nextProbe else { return }
        do {
            let renewed = try store.batch { try $0.renewRunningLeases() }
            paused = nil
            logger.notice("the run database can be written again; dispatch resumed",
                          metadata: ["paused_for": "\(SuspendingClock.now - state.since)", "leases_renewed": "\(renewed)"])
            for (id, worker) in workers {
                workers[id]?.lastHeard = .now
                try send(.error(.init(reason: "\(Message.ErrorReply.helloRequired): the coordinator's database was unavailable")), to: worker.peer)
            }
        } catch where RunStore.isStorageFailure(error) {
            paused?.nextProbe = SuspendingClock.now + timing.heartbeatInterval
            logger.debug("the run database still cannot be written", metadata: ["error": "\(error)"])
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
        deliveredInBatch.removeAll()
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

    /// How long the coordinator goes on answering with `shutdown` after telling its workers to stop, and
    /// then keeps unsent messages when it closes its socket: a worker must hear `shutdown` (it would
    /// otherwise reconnect for ever), and one whose heartbeat or result crossed the first `shutdown` is
    /// told again.
    public static let shutdownLinger = Duration.seconds(1)

    /// Stops every connected worker (they checkpoint and release their trials): `shutdown` to each, then,
    /// for `shutdownLinger`, `shutdown` again to any worker that still sends something (results are not
    /// applied any more; the next coordinator of the run takes their resends).
    public func shutdownWorkers(reason: String) {
        let shutdown = Message.shutdown(.init(reason: reason))
        for (_, w) in workers { try? send(shutdown, to: w.peer) }
        let deadline = ContinuousClock.now + Self.shutdownLinger
        var told = Set(workers.values.map(\.peer.description))
        var late = 0
        while ContinuousClock.now < deadline {
            guard let next = try? endpoint.receive(timeout: deadline - .now) else { continue }
            // Once more to anyone who speaks, however often it speaks (a heartbeat every interval).
            if told.insert(next.peer.description).inserted { late += 1 }
            try? send(shutdown, to: next.peer)
        }
        logger.info("workers told to shut down", metadata: ["reason": "\(reason)", "workers": "\(told.count)", "late": "\(late)"])
    }

    /// Closes the socket, keeping unsent messages (the last `shutdown`s) for `shutdownLinger`.
    public func close() {
        endpoint.close(linger: Self.shutdownLinger)
        control?.close()
    }

    /// Answers a waiting `factsweep retry` or `cancel`: applied in one transaction, the workers of cancelled
    /// attempts told `cancel`, and the reply sent after the commit. Returns whether a trial ended.
    private func serveControl() throws -> Bool {
        guard let control, let request = try control.nextRequest() else { return false }
        var reply = ControlReply()
        do {
            try committing { transaction in
                let applied = try RunControl.apply(request, in: transaction)
                reply = applied.reply
                for (trial, workerID) in applied.stopped {
                    guard let worker = workers[workerID] else { continue }
                    try send(.cancel(.init(trial: trial)), to: worker.peer)
                    workers[workerID]?.positions = worker.positions.filter { !$0.key.hasPrefix("\(trial)/") }
                }
                if request.action == .retry { try dispatch(in: transaction) }
            }
        } catch {
            try control.answer(ControlReply(errors: ["the coordinator could not apply it: \(error)"]))
            throw error
        }
        try control.answer(reply)
        logger.info("user request", metadata: ["action": "\(request.action.rawValue)", "changed": "\(reply.changed.count)",
                                               "errors": "\(reply.errors)"])
        let ended = request.action == .cancel && !reply.changed.isEmpty
        if ended { meter.trialEnded() }
        return ended
    }

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
        workers[workerID]?.lastHeard = .now
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
            if firstDelivery(p.messageID, from: workerID, session: session) {
                // The evaluation's answers are recorded with the epoch.
                let write = try transaction.recordEpoch(p.trial, attemptID: p.attempt, report: p.report)
                guard try settle(write, p.messageID, trial: p.trial, attempt: p.attempt, peer: peer, session: session) else { return }
            }
            try send(.ack(.init(messageIDs: [p.messageID])), to: peer)
        case let .checkpoint(c):
            guard let session = session(of: workerID, peer) else { return }
            if firstDelivery(c.messageID, from: workerID, session: session) {
                let write = try transaction.recordCheckpoint(c.trial, attemptID: c.attempt, checkpoint: c.checkpoint)
                guard try settle(write, c.messageID, trial: c.trial, attempt: c.attempt, peer: peer, session: session) else { return }
            }
            try send(.ack(.init(messageIDs: [c.messageID])), to: peer)
        case let .done(d):
            guard let session = session(of: workerID, peer) else { return }
            if firstDelivery(d.messageID, from: workerID, session: session) {
                let summary = try TrialJSON.encoder().encode(d.summary)
                let write = try transaction.finishTrial(d.trial, attemptID: d.attempt,
                                                        result: d.summary.outcome == .diverged ? .diverged : .done,
                                                        summary: summary)
                guard try settle(write, d.messageID, trial: d.trial, attempt: d.attempt, peer: peer, session: session) else { return }
                if write == .accepted { meter.trialEnded() }
                workers[workerID]?.positions["\(d.trial)/\(d.attempt)"] = nil
            }
            try send(.ack(.init(messageIDs: [d.messageID])), to: peer)
        case let .failed(f):
            guard let session = session(of: workerID, peer) else { return }
            if firstDelivery(f.messageID, from: workerID, session: session) {
                // Only the narrowing is trusted: `permanent` fails the trial now, and an attempt that says it
                // was interrupted still counts against the retry limit unless it made progress.
                let kind = f.effectiveKind
                let write = switch kind {
                case .permanent: try transaction.finishTrial(f.trial, attemptID: f.attempt, result: .failed, reason: f.reason)
                case .interrupted: try transaction.releaseTrial(f.trial, attemptID: f.attempt, reason: f.reason, setback: .interrupted)
                case .error: try transaction.releaseTrial(f.trial, attemptID: f.attempt, reason: f.reason, setback: .trialError)
                }
                guard try settle(write, f.messageID, trial: f.trial, attempt: f.attempt, peer: peer, session: session) else { return }
                if write == .accepted, try transaction.status(ofTrial: f.trial).isTerminal { meter.trialEnded() }
                workers[workerID]?.positions["\(f.trial)/\(f.attempt)"] = nil
            }
            try send(.ack(.init(messageIDs: [f.messageID])), to: peer)
        case let .heartbeat(beat):
            guard workers[workerID] != nil else { return askForHello(peer, "heartbeat") }
            // Only attempts whose trainer moved on since the last beat renew
            // their leases: a hung trainer, or an attempt the worker never got, expires.
            var advancing: [AttemptID] = []
            for activity in beat.running {
                let key = "\(activity.trial)/\(activity.attempt)"
                let position = (activity.epoch, activity.step)
                if workers[workerID]?.positions[key].map({ $0 != position }) ?? true { advancing.append(activity.attempt) }
                workers[workerID]?.positions[key] = position
            }
            try transaction.heartbeat(workerID: workerID, renewing: advancing)
            try send(.heartbeat(.init()), to: peer)
        case .assign, .ack, .cancel, .drop, .shutdown:
            refuse(peer, "\(message.type) is sent by the coordinator, not by workers")
        case let .error(reply):
            logger.warning("worker reported an error", metadata: ["worker": "\(workerID)", "reason": "\(reply.reason)"])
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
        workers[hello.workerID] = WorkerState(peer: peer, session: hello.session, models: hello.models, lastHeard: .now,
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
                workers[hello.workerID]?.positions["\(held.trial)/\(held.attempt)"] = (held.lastEpoch, 0)
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
            logger.warning("result after a gap refused", metadata: ["trial": "\(trial)", "attempt": "\(attempt)", "expected": "\(expected)"])
            ledger.forget(messageID, from: peer.description, session: session)
            try send(.error(.init(reason: "\(Message.ErrorReply.epochExpected) \(expected) of trial \(trial) first",
                                  trial: trial, attempt: attempt, expectedEpoch: expected)), to: peer)
            return false
        }
    }

    /// The ledger's first-delivery check, remembered for the open batch (see `pause`).
    private func firstDelivery(_ id: MessageID, from workerID: String, session: String) -> Bool {
        guard ledger.firstDelivery(of: id, from: workerID, session: session) else { return false }
        deliveredInBatch.append((id, workerID, session))
        return true
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
        let now = SuspendingClock.now
        for (id, w) in workers where now - w.lastHeard > timing.peerDeadAfter {
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

extension ProtocolTiming {
    /// The run database's back-off between attempts, from `retryBackoffInitial` and `retryBackoffMax`.
    public var retryBackoff: RetryBackoff {
        RetryBackoff(initial: CoordinatorServer.seconds(retryBackoffInitial), maximum: CoordinatorServer.seconds(retryBackoffMax))
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
