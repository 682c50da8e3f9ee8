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
    /// Which worker each connection said it is. A connection is a peer of its own (workers present no
    /// routing id), and only the one in its worker's state is kept: bounded by the workers.
    private var peerWorkers: [PeerID: String] = [:]
    /// With keys: the public key each worker id said hello with first; its other connections must use it too.
    private var workerKeys: [String: String] = [:]
    /// Messages from workers refused as protocol violations, by kind.
    public private(set) var violations: [Violation: Int] = [:]
    /// Checkpoint paths a worker reports must lie in this directory (symlinks resolved); nil: not checked.
    public let checkpointDirectory: URL?
    private var meter = CoordinatorMeter()
    /// While a batch's transaction is open, what it sends waits here for the commit.
    private var holding = false
    private var outgoing: [Outgoing] = []
    /// `factsweep retry` / `cancel` reach the running coordinator here; nil without a run directory.
    private var control: ControlChannel?
    /// What the coordinator keeps beside the run database: the delivery ledger and what it knows of its
    /// workers. Taken before each write (one copy per batch, not per message: a worker's state is copied
    /// only when the batch changes it), and put back when the write does not commit, so that memory never
    /// runs ahead of the file: no resend taken for a duplicate of a result that was rolled back, no worker
    /// or assign the database never kept.
    private struct Memory {
        var ledger: DeliveryLedger
        var workers: [String: WorkerState]
        var peerWorkers: [PeerID: String]
        var workerKeys: [String: String]
    }

    private var memory: Memory {
        get { Memory(ledger: ledger, workers: workers, peerWorkers: peerWorkers, workerKeys: workerKeys) }
        set { (ledger, workers, peerWorkers, workerKeys) = (newValue.ledger, newValue.workers, newValue.peerWorkers, newValue.workerKeys) }
    }
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
    /// The most worker ids the coordinator keeps state (and key bindings) for at once.
    static let maxWorkers = 4096

    struct WorkerState {
        var peer: PeerID
        var session: String
        /// With keys, the public key its connection authenticated with.
        var key: String?
        var models: [String]
        /// The same models with the storage each is loaded in, from its hello or latest `ready`; empty from an
        /// older worker, whose trials are claimed by path alone.
        var modelStorages: [Message.ModelStorage]
        /// On the monotonic clock: a wall-clock jump must not declare every worker dead (or none).
        var lastHeard: SuspendingClock.Instant
        /// The compute threads its hello declared: `ready` never claims more slots than this.
        var threads: Int
        var idleSlots = 0
        /// (trial, attempt) → last reported position and phase, to renew training leases only on progress
        /// and to write a phase only when it changes.
        var positions: [String: Position] = [:]
        /// Attempts assigned to this worker that no heartbeat or result has named yet, and when each
        /// `assign` went out: one still unnamed a grace after that was lost on the way.
        var unconfirmed: [AttemptID: ContinuousClock.Instant] = [:]
        /// Trials this session refused because its build does not read settings in their assignment
        /// (`failed` with `unread_settings`): not offered to it again while another connected worker may
        /// read them. A new session (a restarted, perhaps rebuilt, worker) starts without.
        var unreadable: Set<String> = []
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

    /// With `security`, only workers whose keys are on its allow-list get through (CURVE + ZAP). With
    /// `checkpointDirectory`, a checkpoint path outside it is refused. With `runDirectory`, the user's
    /// `factsweep retry` and `cancel` reach it there (ControlChannel).
    public init(store: RunStore, context: ZMQContext, bind: String, timing: ProtocolTiming,
                security: CoordinatorSecurity? = nil, checkpointDirectory: URL? = nil, runDirectory: URL? = nil,
                logger: Logger) throws {
        self.store = store
        self.timing = timing
        self.logger = logger
        self.checkpointDirectory = checkpointDirectory.map(CheckpointConfinement.resolved)
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

    /// The run database refused a write (its transaction rolled back whole, and `committing` put the memory
    /// back with it): pause dispatch. Results of the failed batch were neither applied nor acknowledged, so
    /// their workers still hold them.
    private func pause(_ error: any Error) {
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
            if let id = peerWorkers[next.peer] { workers[id]?.lastHeard = .now }
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
        guard let first = try endpoint.receive(timeout: timeout) else { return false }
        let endedBefore = meter.trialsEnded
        var batch = [Arrival(first, at: .now)]
        meter.received(batch[0].label)
        // Messages whose handling failed short of storage (a database constraint, a case no rule foresaw),
        // by their place in the batch, with the refusal to send.
        var failed: [Int: String] = [:]
        while true {
            do {
                try committing { transaction in
                    let deadline = ContinuousClock.now + Self.batchTime
                    var index = 0
                    while true {
                        let next = batch[index]
                        if let refusal = failed[index] {
                            refuse(next.peer, .unhandled, refusal)
                        } else if case let .success(message) = next.message {
                            try handleOne(message, next, index: index, in: transaction)
                        }  // a failure was counted, logged and answered by the endpoint
                        index += 1
                        if index < batch.count { continue }  // again, after a failure undid the batch
                        if case .success(.ready) = next.message { break }
                        guard index < Self.batchLimit, ContinuousClock.now < deadline,
                              let more = try endpoint.receive(timeout: .zero) else { break }
                        batch.append(Arrival(more, at: .now))
                        meter.received(batch[index].label)
                    }
                    meter.batch(batch.count)
                }
                return meter.trialsEnded != endedBefore
            } catch let failure as MessageFailure {
                // `committing` rolled the batch back and put the memory back: the batch runs again, from its
                // first message, with this one refused. Each round refuses one more, so it ends.
                let arrival = batch[failure.index]
                logger.error("a message could not be handled; its batch is applied again without it", metadata: [
                    "worker": "\(peerWorkers[arrival.peer] ?? arrival.peer.description)", "type": "\(failure.type)",
                    "error": "\(failure.error)"])
                failed[failure.index] = "\(Message.ErrorReply.helloRequired): the coordinator could not apply \(failure.type) "
                    + "(\(failure.error)); say hello again and resend what is unacknowledged"
            }
        }
    }

    /// A message as it arrived, kept while its batch is open, since a failure runs the batch again.
    private struct Arrival {
        var peer: PeerID
        var user: String?
        var message: Result<Message, ProtocolError>
        var receivedAt: ContinuousClock.Instant

        init(_ received: (peer: PeerID, user: String?, message: Result<Message, ProtocolError>), at receivedAt: ContinuousClock.Instant) {
            (peer, user, message, self.receivedAt) = (received.peer, received.user, received.message, receivedAt)
        }

        /// The statistics' name for it: its type, or `rejected` (unreadable).
        var label: String {
            if case let .success(message) = message { message.type.description } else { "rejected" }
        }
    }

    /// A message of a batch whose handling failed short of storage and of the peer-caused refusals.
    private struct MessageFailure: Error {
        var index: Int
        var type: MessageType
        var error: any Error
    }

    /// Handles one message of a batch. A write the store refused because of what the peer sent is answered,
    /// and the message's other writes are kept (each store operation is a savepoint of its own). Storage
    /// failures end the batch (`pause`). Any other failure — a case no rule foresaw — is a `MessageFailure`:
    /// the batch is rolled back, memory and all (`committing`), and applied again without this message,
    /// which is refused with `hello required`, so that its worker says hello again and resends what it
    /// holds unacknowledged (at most once a heartbeat interval). One message never ends the sweep, and no
    /// other message of its batch is lost with it.
    private func handleOne(_ message: Message, _ arrival: Arrival, index: Int, in transaction: RunTransaction) throws {
        do {
            try handle(message, from: arrival.peer, user: arrival.user, receivedAt: arrival.receivedAt, in: transaction)
        } catch let error as RunStoreError where error.isCausedByPeer {
            refuse(arrival.peer, .refusedWrite, "\(message.type) refused: \(error)")
        } catch where !RunStore.isStorageFailure(error) {
            throw MessageFailure(index: index, type: message.type, error: error)
        }
    }

    /// Runs `body` in one store transaction (`RunStore.batch`) and sends what it sent only once that has
    /// committed; if it throws, nothing is sent and the memory is put back as it was (`Memory`).
    private func committing(_ body: (RunTransaction) throws -> Void) throws {
        let before = memory
        holding = true
        defer {
            holding = false
            outgoing.removeAll()
        }
        do {
            try store.batch(body)
        } catch {
            memory = before
            throw error
        }
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
            // A message no key authenticated is not a worker of ours: nothing to tell it.
            guard let next = try? endpoint.receive(timeout: deadline - .now), next.message != .failure(.unauthenticated) else { continue }
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
                for (trial, workerID) in applied.stopped { try tellToCancel(trial, workerID: workerID) }
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

    /// Tells the worker running an attempt of `trial` that the trial has ended (`cancel`): it stops the
    /// attempt and reports nothing more for it. The coordinator stops expecting its heartbeats' positions.
    private func tellToCancel(_ trial: String, workerID: String) throws {
        guard let worker = workers[workerID] else { return }
        try send(.cancel(.init(trial: trial)), to: worker.peer)
        workers[workerID]?.positions = worker.positions.filter { !$0.key.hasPrefix("\(trial)/") }
    }

    /// Applies the trial's stopping rule (if its condition has one) to `epoch`, just recorded by `attempt`:
    /// a trial the rule stops ends `stopped` in this transaction, with its decision, and its worker is told
    /// `cancel` once the transaction has committed. Later results of the attempt are stale (`drop`).
    private func applyStoppingRule(_ trial: String, _ attempt: AttemptID, epoch: Int, workerID: String,
                                   in transaction: RunTransaction) throws {
        guard let subject = try transaction.stoppingSubject(trial, attemptID: attempt),
              let decision = try StoppingJudge.decide(subject, epoch: epoch, in: transaction),
              try transaction.stopTrial(trial, attemptID: attempt, decision: decision) == .accepted else { return }
        logger.info("trial stopped by its stopping rule", metadata: ["trial": "\(trial.prefix(12))", "rule": "\(decision.rule)",
                                                                    "epoch": "\(epoch)", "reason": "\(decision.reason)"])
        meter.trialEnded()
        try tellToCancel(trial, workerID: workerID)
    }

    /// Applies the asha rule (if the trial's condition has it) to the checkpoint at `checkpoint` just recorded by
    /// `attempt`: at a rung, the trial is paused (its worker told `cancel`; later results of the attempt are stale)
    /// or goes on, and paused trials of the rung now in its top 1/η go back to pending — all in this transaction.
    private func applyRungRule(_ trial: String, _ attempt: AttemptID, previous: Int?, checkpoint: Int, workerID: String,
                               in transaction: RunTransaction) throws {
        guard let subject = try transaction.stoppingSubject(trial, attemptID: attempt),
              let judgement = try StoppingJudge.judgeRung(subject, previous: previous, checkpoint: checkpoint, in: transaction)
        else { return }
        for promotion in judgement.promote where try transaction.promoteTrial(promotion.key, decision: promotion.decision) {
            logger.info("trial promoted by the asha rule", metadata: ["trial": "\(promotion.key.prefix(12))",
                                                                     "rung": "\(promotion.decision.epoch)"])
        }
        guard let pause = judgement.pause, try transaction.pauseTrial(trial, attemptID: attempt, decision: pause) == .accepted else { return }
        logger.info("trial paused by the asha rule", metadata: ["trial": "\(trial.prefix(12))", "rung": "\(pause.epoch)",
                                                               "reason": "\(pause.reason)"])
        try tellToCancel(trial, workerID: workerID)
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

    private func handle(_ message: Message, from peer: PeerID, user: String?, receivedAt: ContinuousClock.Instant,
                        in transaction: RunTransaction) throws {
        // A result or heartbeat naming an attempt confirms that its `assign` arrived.
        if let attempt = message.resultAttempt, let id = peerWorkers[peer] { workers[id]?.unconfirmed[attempt] = nil }
        switch message {
        case let .hello(hello):
            try welcome(hello, peer: peer, user: user, in: transaction)
        case let .ready(ready):
            guard let workerID = known(peer, user, "ready") else { return }
            // An admitted worker still cannot claim the whole queue: no more slots than its hello's threads.
            let cap = workers[workerID]?.threads ?? 0
            if ready.freeSlots > cap {
                refuse(peer, .overclaimedSlots, "ready claims \(ready.freeSlots) free slots; this worker's hello declared \(cap) threads")
            }
            workers[workerID]?.idleSlots = max(0, min(ready.freeSlots, cap))
            // Its cache may have dropped or loaded models since its hello: claim on what it holds now.
            if let models = ready.models, models != workers[workerID]?.models {
                workers[workerID]?.models = models
                try transaction.updateWorkerModels(workerID, models)
            }
            // A list of paths without storages (a worker that sends none) leaves no storages to claim on.
            if ready.models != nil || ready.modelStorages != nil { workers[workerID]?.modelStorages = ready.modelStorages ?? [] }
            try dispatch(answering: workerID, readyAt: receivedAt, in: transaction)
        case let .progress(p):
            guard let (workerID, session) = sender(peer, user),
                  try mayReport(p.trial, p.attempt, epoch: p.report.epoch, workerID, peer, p.messageID, in: transaction) else { return }
            if ledger.firstDelivery(of: p.messageID, from: workerID, session: session) {
                // The evaluation's answers are recorded with the epoch.
                let write = try transaction.recordEpoch(p.trial, attemptID: p.attempt, report: p.report)
                guard try settle(write, p.messageID, trial: p.trial, attempt: p.attempt, peer: peer, workerID: workerID,
                                 session: session) else { return }
                if write == .accepted {
                    try applyStoppingRule(p.trial, p.attempt, epoch: p.report.epoch, workerID: workerID, in: transaction)
                }
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [p.messageID])), to: peer)
        case let .checkpoint(c):
            guard let (workerID, session) = sender(peer, user),
                  try mayReport(c.trial, c.attempt, epoch: c.checkpoint.epoch, workerID, peer, c.messageID, in: transaction)
            else { return }
            if case let .path(path) = c.checkpoint.location, let directory = checkpointDirectory,
               let problem = CheckpointConfinement.problem(path, in: directory) {
                // Acknowledged: no resend can change the answer, and a worker checkpointing elsewhere would keep them all.
                refuse(peer, .checkpointOutsideRun, "checkpoint of trial \(c.trial) refused: \(problem)")
                return try send(.ack(.init(messageIDs: [c.messageID])), to: peer)
            }
            if ledger.firstDelivery(of: c.messageID, from: workerID, session: session) {
                let previous = try transaction.checkpointEpoch(of: c.trial)
                let write = try transaction.recordCheckpoint(c.trial, attemptID: c.attempt, checkpoint: c.checkpoint)
                guard try settle(write, c.messageID, trial: c.trial, attempt: c.attempt, peer: peer, workerID: workerID,
                                 session: session) else { return }
                if write == .accepted {
                    try applyRungRule(c.trial, c.attempt, previous: previous, checkpoint: c.checkpoint.epoch, workerID: workerID,
                                      in: transaction)
                }
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [c.messageID])), to: peer)
        case let .done(d):
            guard let (workerID, session) = sender(peer, user),
                  try mayReport(d.trial, d.attempt, epoch: d.summary.epochs, workerID, peer, d.messageID, in: transaction)
            else { return }
            if ledger.firstDelivery(of: d.messageID, from: workerID, session: session) {
                let summary = try TrialJSON.encoder().encode(d.summary)
                let write = try transaction.finishTrial(d.trial, attemptID: d.attempt,
                                                        result: d.summary.outcome == .diverged ? .diverged : .done,
                                                        summary: summary, throughEpoch: d.summary.epochs)
                guard try settle(write, d.messageID, trial: d.trial, attempt: d.attempt, peer: peer, workerID: workerID,
                                 session: session) else { return }
                if write == .accepted { meter.trialEnded() }
                workers[workerID]?.positions["\(d.trial)/\(d.attempt)"] = nil
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [d.messageID])), to: peer)
        case let .failed(f):
            guard let (workerID, session) = sender(peer, user),
                  try mayReport(f.trial, f.attempt, epoch: nil, workerID, peer, f.messageID, in: transaction) else { return }
            if ledger.firstDelivery(of: f.messageID, from: workerID, session: session) {
                // A resume checkpoint whose file holds another epoch: forget it, so the next attempt starts afresh.
                if let epoch = f.refusedCheckpoint { try transaction.discardCheckpoint(f.trial, attemptID: f.attempt, epoch: epoch) }
                // Only the narrowing is trusted: `permanent` fails the trial now, and an attempt that says it
                // was interrupted still counts against the retry limit unless it made progress. The one
                // widening, a refusal for unread settings, spares only a trial another worker may serve.
                let kind = f.effectiveKind
                let setback: AttemptSetback = f.refusedUnreadSettings && anotherMayRead(f.trial, besides: workerID) ? .unreadSettings : .trialError
                let write = switch kind {
                case .permanent: try transaction.finishTrial(f.trial, attemptID: f.attempt, result: .failed, reason: f.reason)
                case .interrupted: try transaction.releaseTrial(f.trial, attemptID: f.attempt, reason: f.reason, setback: .interrupted)
                case .error: try transaction.releaseTrial(f.trial, attemptID: f.attempt, reason: f.reason, setback: setback)
                }
                guard try settle(write, f.messageID, trial: f.trial, attempt: f.attempt, peer: peer, workerID: workerID,
                                 session: session) else { return }
                if write == .accepted, try transaction.status(ofTrial: f.trial).isTerminal { meter.trialEnded() }
                // Remembered only for an attempt the store held for this worker: a made-up trial grows nothing.
                if write == .accepted, f.refusedUnreadSettings { noteRefusal(f, by: workerID, counted: setback == .trialError) }
                workers[workerID]?.positions["\(f.trial)/\(f.attempt)"] = nil
            } else {
                meter.duplicateResult()
            }
            try send(.ack(.init(messageIDs: [f.messageID])), to: peer)
        case let .heartbeat(beat):
            guard let workerID = known(peer, user, "heartbeat") else { return }
            try renewLeases(of: workerID, beat.running, in: transaction)
            if let free = beat.freeSlots { try reconcile(workerID, freeSlots: free, running: beat.running, in: transaction) }
            try send(.heartbeat(.init()), to: peer)
        case .assign, .ack, .cancel, .drop, .shutdown:
            refuse(peer, .coordinatorMessage, "\(message.type) is sent by the coordinator, not by workers")
        case let .error(reply):
            logger.warning("worker reported an error", metadata: ["worker": "\(peerWorkers[peer] ?? peer.description)", "reason": "\(reply.reason)"])
        }
    }

    /// Whether a connected worker other than `workerID` has not refused `trial` for settings its build does
    /// not read. While one has, a refusal costs the trial nothing and the trial waits for such a worker
    /// (busy ones included: the refusers cannot run it anyway). Once every connected worker has refused it,
    /// refusals count like any error, so that a cluster of old builds ends the trial at its retry limit,
    /// with their reason, instead of waiting for a worker that may never come.
    private func anotherMayRead(_ trial: String, besides workerID: String) -> Bool {
        workers.contains { $0.key != workerID && !$0.value.unreadable.contains(trial) }
    }

    private func noteRefusal(_ f: Message.Failed, by workerID: String, counted: Bool) {
        workers[workerID]?.unreadable.insert(f.trial)
        // A worker of this build sends at most eight names of about 80 bytes; another is not logged at length.
        let named = (f.unreadSettings ?? []).prefix(8).map { String(decoding: $0.utf8.prefix(84), as: UTF8.self) }
        logger.warning("assignment refused: the worker's build does not read its settings", metadata: [
            "worker": "\(workerID)", "trial": "\(f.trial)", "settings": "\(named)", "counted": "\(counted)"])
    }

    /// The trials not to offer `id`: those it refused for settings its build does not read, while another
    /// connected worker has not. Trials that ended since are forgotten here, which bounds the memory by
    /// the run's unfinished trials.
    private func steeredAway(from id: String, in transaction: RunTransaction) throws -> Set<String> {
        guard let refused = workers[id]?.unreadable, !refused.isEmpty else { return [] }
        let unfinished = try transaction.unfinishedTrials(among: refused)
        workers[id]?.unreadable = unfinished
        return unfinished.filter { anotherMayRead($0, besides: id) }
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
            // Only attempts this worker was given have a position (from the assign or the readoption):
            // one it made up renews nothing and cannot grow the map.
            guard let previous = workers[workerID]?.positions[key] else { continue }
            let moved = previous.epoch != activity.epoch || previous.step != activity.step
            if moved || !phase.renewsOnlyOnProgress { renewing.append(activity.attempt) }
            if previous.phase != phase { phases.append((activity.attempt, phase)) }
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

    private func welcome(_ hello: Message.Hello, peer: PeerID, user: String?, in transaction: RunTransaction) throws {
        if let problem = WorkerIdentity.problem(hello.workerID) { return refuse(peer, .invalidHello, problem) }
        if let problem = WorkerIdentity.sessionProblem(hello.session) { return refuse(peer, .invalidHello, problem) }
        guard Message.threadCounts.contains(hello.threads) else {
            return refuse(peer, .invalidHello, "hello declares \(hello.threads) threads, not 1…\(Message.maxThreads)")
        }
        let id = hello.workerID
        // A worker process keeps its id for its life, and each of its connections is a new peer: a hello under a
        // second id on a connection that already holds one would let one peer act as many workers.
        if let held = peerWorkers[peer], held != id, workers[held]?.peer == peer {
            return refuse(peer, .secondWorkerID, "hello as worker \(id) refused: this connection said hello as worker \(held); "
                          + "one connection serves one worker id")
        }
        if let (kind, reason) = admissionRefusal(id, key: user) { return refuse(peer, kind, reason) }
        if let existing = workers[id], existing.peer != peer {
            // Another connection holds the id. The same session is the same process on a new connection
            // (libzmq reconnected): it moves. Another session while that connection is open is a second
            // process under the same id — a duplicate in cluster.json, `hostname-pid` in containers, or a
            // thief: refused, and the first keeps its attempts. A closed one was a process that ended.
            if existing.session != hello.session, endpoint.isConnected(existing.peer) {
                logger.warning("second process under a worker id refused", metadata: [
                    "worker": "\(id)", "host": "\(hello.host)", "pid": "\(hello.pid)"])
                return refuse(peer, .duplicateWorker, "\(Message.ErrorReply.workerRefused) worker id \(id) is in use by another "
                              + "live process; give each worker its own id")
            }
            peerWorkers[existing.peer] = nil
        }
        // The same session on a new connection is the same build: it keeps what it refused.
        let unreadable = workers[id].flatMap { $0.session == hello.session ? $0.unreadable : nil } ?? []
        if let user { workerKeys[id] = user }
        try transaction.announceWorker(WorkerAnnouncement(id: id, host: hello.host, pid: Int(hello.pid), threads: hello.threads,
                                                          protocolVersion: String(hello.protocolVersion), models: hello.models,
                                                          slurmJobID: hello.slurm?.jobID, slurmArrayTaskID: hello.slurm?.arrayTaskID))
        workers[id] = WorkerState(peer: peer, session: hello.session, key: user, models: hello.models,
                                  modelStorages: hello.modelStorages ?? [], lastHeard: .now,
                                  threads: hello.threads, unreadable: unreadable)
        peerWorkers[peer] = id
        meter.hello(from: id)
        logger.info("worker connected", metadata: ["worker": "\(id)", "host": "\(hello.host)", "held": "\(hello.held.count)"])
        // What the worker does not hold is not running anywhere: requeue it now.
        for requeued in try transaction.requeueAttemptsNotHeld(by: id, held: Set(hello.held.map(\.attempt)))
        where requeued.status.isTerminal {
            meter.trialEnded()
        }
        for held in hello.held {
            let readoption: Readoption
            do {
                readoption = try transaction.readoptAttempt(held.attempt, trialKey: held.trial, workerID: id)
            } catch let error as RunStoreError where error.isCausedByPeer {
                refuse(peer, .refusedWrite, "held attempt \(held.attempt) refused: \(error)")
                continue
            }
            switch readoption {
            case .adopted:
                workers[id]?.positions["\(held.trial)/\(held.attempt)"] = Position(epoch: held.lastEpoch, step: 0)
            case let .refused(status):
                try send(.drop(.init(trial: held.trial, attempt: held.attempt, reason: "the trial is \(status.rawValue) now")), to: peer)
            }
        }
    }

    /// Why a hello under `id` from `key` (with keys) is refused whatever its session: the id is bound to
    /// another key (docs/security.md, "Worker ids"), or the coordinator holds state for as many workers as
    /// it will (key bindings of workers not connected now are dropped first).
    private func admissionRefusal(_ id: String, key: String?) -> (Violation, String)? {
        if let key, let bound = workerKeys[id], bound != key {
            return (.foreignKey, "\(Message.ErrorReply.workerRefused) worker id \(id) belongs to another key; give this host its own worker id")
        }
        if key != nil, workerKeys[id] == nil, workerKeys.count >= Self.maxWorkers {
            workerKeys = workerKeys.filter { workers[$0.key] != nil }
        }
        let full = workers.count >= Self.maxWorkers || (key != nil && workerKeys[id] == nil && workerKeys.count >= Self.maxWorkers)
        guard workers[id] == nil, full else { return nil }
        return (.tooManyWorkers, "\(Message.ErrorReply.workerRefused) the coordinator serves at most \(Self.maxWorkers) workers")
    }

    /// Whether a result about `attempt` of `trial` may be applied: the store gave that attempt of that trial
    /// to this worker (not only some attempt id), and `epoch` is within the trial's plan. Refusals are
    /// answered, counted and never acknowledged. An attempt the store never made is left to the store
    /// (an unknown trial, or a stale attempt that gets `drop`).
    private func mayReport(_ trial: TrialKey, _ attempt: AttemptID, epoch: Int?, _ workerID: String, _ peer: PeerID,
                           _ messageID: MessageID, in transaction: RunTransaction) throws -> Bool {
        guard let assignment = try transaction.assignment(of: attempt) else { return true }
        guard assignment.workerID == workerID, assignment.trialKey == trial else {
            refuse(peer, .foreignAttempt, "result \(messageID) refused: attempt \(attempt) of trial \(trial) is not this worker's")
            return false
        }
        if let epoch, epoch > assignment.plannedEpochs {
            refuse(peer, .beyondPlan, "result \(messageID) refused: epoch \(epoch) of trial \(trial), which plans \(assignment.plannedEpochs)")
            return false
        }
        return true
    }
    /// Answers a write the store refused, and returns whether the result is to be acknowledged. A stale
    /// attempt was fenced: `drop` (acknowledged, there is nothing to resend). A result after a gap (an
    /// epoch before it missing, or `done` before every planned epoch) is not applied and not acknowledged:
    /// the worker is told the epoch expected, and the ledger forgets the message so its resend is applied.
    private func settle(_ write: AttemptWrite, _ messageID: MessageID, trial: String, attempt: AttemptID, peer: PeerID,
                        workerID: String, session: String) throws -> Bool {
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
            ledger.forget(messageID, from: workerID, session: session)
            try send(.error(.init(reason: "\(Message.ErrorReply.epochExpected) \(expected) of trial \(trial) first",
                                  trial: trial, attempt: attempt, expectedEpoch: expected)), to: peer)
            return false
        }
    }

    /// The worker id a message's connection said hello as, once it is checked to come from that worker's
    /// key; else the peer is asked for hello (or refused) and nil is returned. Counts the worker as heard.
    private func known(_ peer: PeerID, _ user: String?, _ what: String) -> String? {
        guard let workerID = peerWorkers[peer], workers[workerID]?.peer == peer else {
            askForHello(peer, what)
            return nil
        }
        guard workers[workerID]?.key == user else {
            refuse(peer, .foreignKey, "\(what) refused: not from the key worker \(workerID) said hello with")
            return nil
        }
        workers[workerID]?.lastHeard = .now
        return workerID
    }

    /// The worker and session a result comes from (`known`).
    private func sender(_ peer: PeerID, _ user: String?) -> (String, String)? {
        guard let workerID = known(peer, user, "result"), let session = workers[workerID]?.session else { return nil }
        return (workerID, session)
    }

    /// A worker this coordinator has not met (it restarted, and the worker's
    /// DEALER reconnected on its own): ask it to introduce itself again.
    private func askForHello(_ peer: PeerID, _ what: String) {
        logger.info("unknown worker asked to say hello", metadata: ["worker": "\(peer)", "sent": "\(what)"])
        try? send(.error(.init(reason: "\(Message.ErrorReply.helloRequired): \(what) from an unknown worker")), to: peer)
    }

    /// Answers a violation with its reason and counts it by kind (the reason's text is never a key).
    private func refuse(_ peer: PeerID, _ kind: Violation, _ reason: String) {
        violations[kind, default: 0] += 1
        logger.warning("protocol violation", metadata: ["worker": "\(peerWorkers[peer] ?? peer.description)", "kind": "\(kind.rawValue)",
                                                        "reason": "\(reason)"])
        try? send(.error(.init(reason: reason)), to: peer)
    }

    // MARK: Scheduling

    /// Hands pending trials to workers with free slots (pull-based). `readyAt`: when the `ready` of worker
    /// `answering` was received, for the dispatch latency of the assigns that answer it.
    private func dispatch(answering: String? = nil, readyAt: ContinuousClock.Instant? = nil, in transaction: RunTransaction) throws {
        for (id, w) in workers.sorted(by: { $0.key < $1.key }) where w.idleSlots > 0 {
            var slots = w.idleSlots
            let excluded = try steeredAway(from: id, in: transaction)
            let storages = w.modelStorages.map { (model: $0.model, storage: $0.storage) }
            while slots > 0, let claim = try transaction.claimNextTrial(for: id, preferring: w.models, preferringStorages: storages,
                                                                        excluding: excluded) {
                try send(.assign(.init(trial: claim.key, attempt: claim.attemptID, config: claim.config, resume: claim.checkpoint,
                                       epochsRecorded: claim.nextEpoch - 1)), to: w.peer, readyAt: id == answering ? readyAt : nil)
                // Step -1: the first heartbeat's position differs, and renews the lease.
                workers[id]?.positions["\(claim.key)/\(claim.attemptID)"] = Position(epoch: claim.nextEpoch - 1, step: -1)
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
        for stopped in try transaction.stopUnpromotablePausedTrials() {
            logger.info("paused trial stopped: nothing of its condition left to promote it", metadata: ["trial": "\(stopped.prefix(12))"])
            meter.trialEnded()
        }
        let now = SuspendingClock.now
        for (id, w) in workers where now - w.lastHeard > timing.peerDeadAfter {
            logger.warning("worker silent; its trials wait for their leases", metadata: ["worker": "\(id)"])
            try transaction.setWorkerStatus(id, .lost)
            workers[id] = nil
            peerWorkers[w.peer] = nil
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
