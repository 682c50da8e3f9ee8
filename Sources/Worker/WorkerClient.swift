// WorkerClient: a sweep worker's socket loop (the ZeroMQ guide's Paranoid
// Pirate worker). One thread owns the DEALER: it says hello, asks for work,
// handles every coordinator message in one switch, sends heartbeats with the
// training loop's position, numbers and resends results until acknowledged,
// and reconnects when the coordinator falls silent. Trials train on a thread
// of their own (TrialExecution) and hand results over through RunningTrial.
import Foundation
import Logging
import Protocol
import Trial

/// A worker process's connection to the coordinator, running one trial at a time.
public final class WorkerClient: @unchecked Sendable {
    /// Why `run` returned.
    public enum Exit: Sendable, Equatable {
        /// The coordinator sent `shutdown`.
        case shutdown(reason: String)
        /// `release` was called (SIGTERM, SIGINT): the trial was stopped and handed back.
        case released(reason: String)
        /// The coordinator refused this worker as a whole (its id is another live process's, or bound to
        /// another key): reconnecting cannot help, so the worker stops.
        case refused(reason: String)
    }

    /// Counters for logs and tests.
    public struct Statistics: Sendable, Equatable {
        /// Times the DEALER was closed and made anew after the coordinator fell silent.
        public var reconnects = 0
        /// Well-formed messages a coordinator must not send (hello, ready, results), by type name.
        public var unexpected: [String: Int] = [:]
        /// Unreadable messages, by `ProtocolError.label`.
        public var rejected: [String: Int] = [:]
        /// Attempts started on this worker.
        public var attemptsStarted = 0
        /// Seconds from each `ready` sent to the `assign` that answered it: the dispatch latency as a
        /// worker sees it, queueing on both sides included.
        public var readyToAssignSeconds: [Double] = []
    }

    public let settings: WorkerSettings
    let context: ZMQContext
    let runner: any TrialRunning
    let logger: Logger

    private let lock = NSLock()
    /// Wakes the socket thread for a trial's results and for `release`.
    let wakeup = Wakeup()
    private var releaseReason: String?
    private var running = false
    private var counters = Statistics()

    /// Slots a worker offers: one trial at a time, so that it has all its threads.
    static let slots = 1
    /// The longest the socket thread waits before looking at the trial's results again when nothing can
    /// wake it (no wake-up pipe), and when something can.
    static let pollSlice = Duration.milliseconds(20)
    static let wakeableSlice = Duration.milliseconds(500)

    public init(_ settings: WorkerSettings, context: ZMQContext, runner: any TrialRunning, logger: Logger) {
        self.settings = settings; self.context = context; self.runner = runner
        var logger = logger
        logger[metadataKey: "worker"] = "\(settings.workerID)"
        self.logger = logger
    }

    /// Connects and serves until the coordinator says `shutdown` or `release` is called. The calling thread
    /// owns the socket for the whole call. Throws only when the first connection cannot be made (a bad endpoint).
    public func run() throws(ZMQError) -> Exit {
        let alreadyRunning = withLock {
            defer { running = true }
            return running
        }
        precondition(!alreadyRunning, "WorkerClient.run is called once")
        let loop = try SocketLoop(client: self)
        return loop.run()
    }

    /// Stops the running trial after its epoch (it checkpoints), reports the checkpoint and
    /// `failed(kind: interrupted, reason)`, waits (bounded) for the acknowledgements and makes `run` return.
    /// Safe from any thread.
    public func release(reason: String) {
        withLock { if releaseReason == nil { releaseReason = reason } }
        wakeup?.ring()
    }

    public var statistics: Statistics { withLock { counters } }

    var requestedRelease: String? { withLock { releaseReason } }

    func count(_ update: (inout Statistics) -> Void) { withLock { update(&counters) } }

    private func withLock<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// The socket thread's state; made and used by `run` only, so the DEALER never leaves that thread.
private final class SocketLoop {
    private let client: WorkerClient
    private var settings: WorkerSettings { client.settings }
    private var timing: ProtocolTiming { client.settings.timing }
    private var logger: Logger { client.logger }

    /// nil while waiting to reconnect.
    private var endpoint: WorkerEndpoint?
    private var reconnectAt = ContinuousClock.now
    /// Reconnects since the coordinator was last heard; sets the back-off.
    private var failures = 0
    private var lastHeard = ContinuousClock.now
    private var nextHeartbeat = ContinuousClock.now
    private var outbox = Outbox()
    private var trial: RunningTrial?
    /// Whether `ready` was sent for the current idle spell on this connection.
    private var readySent = false
    /// When the last `ready` went out, until an `assign` answers it.
    private var readySentAt: ContinuousClock.Instant?
    private var shutdownReason: String?
    /// The coordinator's refusal of this worker (`ErrorReply.workerRefused`).
    private var refusal: String?
    /// Set once a release begins; then the deadline for the trial's checkpoint, then for the acks.
    private var release: (reason: String, deadline: ContinuousClock.Instant)?
    /// A result held back by `DeliveryFaults.reorder`, sent after the next one.
    private var heldBack: Message?

    init(client: WorkerClient) throws(ZMQError) {
        self.client = client
        try connect()
    }

    func run() -> WorkerClient.Exit {
        logger.info("worker started", metadata: ["endpoint": "\(settings.endpoint)", "session": "\(outbox.session)"])
        while true {
            if release == nil, let reason = client.requestedRelease { beginRelease(reason) }
            pumpTrial()
            if let release, trial == nil, outbox.unacknowledged.isEmpty || ContinuousClock.now >= release.deadline {
                return finishRelease(release.reason)
            }
            if let release, let trial, ContinuousClock.now >= release.deadline {
                logger.error("the trial did not stop in time; exiting without its results",
                             metadata: ["trial": "\(trial.trial)", "attempt": "\(trial.attempt)"])
                return finishRelease(release.reason)
            }
            guard let endpoint else {
                if ContinuousClock.now >= reconnectAt { reconnect() } else { sleep(Swift.min(WorkerClient.pollSlice, reconnectAt - .now)) }
                continue
            }
            receive(from: endpoint)
            if let shutdownReason { return finishShutdown(shutdownReason) }
            if let refusal {
                logger.error("the coordinator refused this worker", metadata: ["reason": "\(refusal)"])
                _ = finishShutdown(refusal)
                return .refused(reason: refusal)
            }
            if ContinuousClock.now >= nextHeartbeat { sendHeartbeat() }
            if ContinuousClock.now - lastHeard > timing.peerDeadAfter { disconnect() }
        }
    }

    // MARK: Connection

    /// A fresh DEALER: hello (announcing the attempt still held), every unacknowledged result, and ready when idle.
    /// When an "hello required" error was last answered (answers are rate-limited).
    private var lastHelloAnswered = ContinuousClock.now - .seconds(3600)

    private func connect() throws(ZMQError) {
        let address = settings.locateCoordinator?() ?? settings.endpoint
        if address != settings.endpoint { logger.info("connecting to the coordinator's new address", metadata: ["endpoint": "\(address)"]) }
        let endpoint = try WorkerEndpoint(client.context, connect: address, workerID: settings.workerID,
                                          timing: timing, security: settings.security, logger: logger)
        self.endpoint = endpoint
        let now = ContinuousClock.now
        lastHeard = now
        nextHeartbeat = now + timing.heartbeatInterval
        readySent = false
        heldBack = nil
        send(.hello(hello()))
        for message in outbox.unacknowledged { send(message) }
        if !outbox.unacknowledged.isEmpty {
            logger.info("resent unacknowledged results", metadata: ["count": "\(outbox.unacknowledged.count)"])
            settings.deliveryLog?.record(["resent", "\(outbox.unacknowledged.count)"])
        }
        sendReadyIfIdle()
    }

    private func reconnect() {
        do { try connect() } catch {
            logger.warning("cannot reconnect", metadata: ["error": "\(error)"])
            scheduleReconnect()
        }
    }

    /// The coordinator is silent: drop this DEALER (Paranoid Pirate) and make another after the back-off.
    private func disconnect() {
        logger.warning("coordinator silent; reconnecting",
                       metadata: ["silent_for": "\(ContinuousClock.now - lastHeard)", "failures": "\(failures)"])
        closeEndpoint()
        scheduleReconnect()
        client.count { $0.reconnects += 1 }
    }

    private func scheduleReconnect() {
        reconnectAt = .now + timing.reconnectDelay(afterFailures: failures)
        failures += 1
    }

    private func closeEndpoint() {
        guard let endpoint else { return }
        let rejected = endpoint.rejections.counts
        client.count { $0.rejected.merge(rejected, uniquingKeysWith: +) }
        endpoint.close()
        self.endpoint = nil
    }

    private func hello() -> Message.Hello {
        var held = trial.flatMap { $0.isSilenced ? nil : [$0.held] } ?? []
        // An attempt that finished while the coordinator was away still holds
        // its trial until its unacknowledged results are applied: announce it
        // too, or a restarted coordinator would refuse them.
        for message in outbox.unacknowledged {
            let attempt: (TrialKey, AttemptID, Int)?
            switch message {
            case let .progress(p): attempt = (p.trial, p.attempt, p.epoch)
            case let .checkpoint(c): attempt = (c.trial, c.attempt, 0)
            case let .done(d): attempt = (d.trial, d.attempt, 0)
            case let .failed(f): attempt = (f.trial, f.attempt, 0)
            case .hello, .ready, .heartbeat, .assign, .ack, .cancel, .drop, .shutdown, .error: attempt = nil
            }
            guard let (trialKey, attemptID, epoch) = attempt else { continue }
            if let i = held.firstIndex(where: { $0.trial == trialKey && $0.attempt == attemptID }) {
                held[i].lastEpoch = max(held[i].lastEpoch, epoch)
            } else {
                held.append(.init(trial: trialKey, attempt: attemptID, lastEpoch: epoch))
            }
        }
        let onHand = client.runner.modelsOnHand
        return .init(workerID: settings.workerID, session: outbox.session, host: settings.host, pid: getpid(),
                     threads: settings.threads, models: Message.ModelStorage.paths(onHand), modelStorages: onHand, held: held,
                     slurm: settings.slurm)
    }

    // MARK: Sending

    /// Sends on the current connection; a result that cannot be sent stays in the outbox for the next one.
    private func send(_ message: Message) {
        guard let endpoint else { return }
        do {
            try endpoint.send(message)
        } catch let error as ProtocolError {
            // Too large or unencodable: every resend would fail the same way.
            logger.error("cannot encode a message; dropping it", metadata: ["type": "\(message.type)", "error": "\(error)"])
            if let id = message.messageID { outbox.acknowledge([id]) }
        } catch {
            logger.warning("send failed", metadata: ["type": "\(message.type)", "error": "\(error)"])
        }
    }

    /// Numbers a result, keeps it until acknowledged, and sends it if connected. With `DeliveryFaults`,
    /// some results go out twice, or after the next one.
    private func sendResult(_ make: (MessageID) -> Message) {
        let message = outbox.add(make)
        let faults = settings.faults
        guard !faults.isEmpty, let id = message.messageID else { return send(message) }
        if heldBack == nil, Double.random(in: 0..<1) < faults.reorder {
            heldBack = message
            settings.deliveryLog?.record(["reordered", "\(id)"])
            return
        }
        send(message)
        if Double.random(in: 0..<1) < faults.duplicate {
            send(message)
            settings.deliveryLog?.record(["duplicated", "\(id)"])
        }
        sendHeldBack()
    }

    private func sendHeldBack() {
        guard let held = heldBack else { return }
        heldBack = nil
        send(held)
    }

    private func sendHeartbeat() {
        sendHeldBack()
        let running = trial.flatMap { $0.isSilenced ? nil : [$0.activity] } ?? []
        send(.heartbeat(.init(running: running, freeSlots: freeSlots)))
        nextHeartbeat = .now + timing.heartbeatInterval
    }

    /// Slots this worker could start a trial in now: what `ready` offers, and every heartbeat repeats (so
    /// that a lost `ready` or `assign` is noticed by the coordinator).
    private var freeSlots: Int {
        trial == nil && release == nil && shutdownReason == nil ? WorkerClient.slots : 0
    }

    private func sendReadyIfIdle() {
        guard freeSlots > 0, endpoint != nil, !readySent else { return }
        let onHand = client.runner.modelsOnHand
        send(.ready(.init(freeSlots: freeSlots, models: Message.ModelStorage.paths(onHand), modelStorages: onHand)))
        readySent = true
        readySentAt = .now
    }

    // MARK: Receiving

    /// Waits up to the next heartbeat (at most a poll slice) for one message from the coordinator and handles it.
    private func receive(from endpoint: WorkerEndpoint) {
        let slice = client.wakeup == nil ? WorkerClient.pollSlice : WorkerClient.wakeableSlice
        let wait = Swift.max(.zero, Swift.min(slice, nextHeartbeat - .now))
        let received: Result<Message, ProtocolError>?
        do { received = try endpoint.receive(timeout: wait, wakingFor: client.wakeup?.descriptor) } catch {
            logger.warning("receive failed; reconnecting", metadata: ["error": "\(error)"])
            disconnect()
            return
        }
        guard let received else { return }
        // Anything at all, even unreadable, shows the coordinator is alive.
        lastHeard = .now
        failures = 0
        guard case .success(let message) = received else { return }
        handle(message)
    }

    /// Every coordinator message, in one place.
    private func handle(_ message: Message) {
        switch message {
        case .assign(let assign):
            start(assign)
        case .ack(let ack):
            pruneCheckpoints(acknowledged: ack.messageIDs)
            if let log = settings.deliveryLog {
                let acknowledged = Set(ack.messageIDs)
                for case let .progress(p) in outbox.unacknowledged where acknowledged.contains(p.messageID) {
                    log.record(["acked", p.trial, "\(p.attempt)", "\(p.epoch)"])
                }
            }
            outbox.acknowledge(ack.messageIDs)
        case .cancel(let cancel):
            guard let trial, trial.trial == cancel.trial else {
                logger.info("cancel for a trial not running here", metadata: ["trial": "\(cancel.trial)"])
                return
            }
            logger.info("trial cancelled", metadata: ["trial": "\(trial.trial)", "attempt": "\(trial.attempt)"])
            trial.requestStop(.silenced(reason: "cancelled"))
        case .drop(let drop):
            forget(drop)
        case .shutdown(let shutdown):
            shutdownReason = shutdown.reason
        case .heartbeat:
            break
        case .error(let error) where error.asksForHello:
            // A restarted coordinator reached through the automatic reconnect:
            // introduce ourselves again, once per request burst.
            if ContinuousClock.now - lastHelloAnswered > timing.heartbeatInterval {
                lastHelloAnswered = .now
                logger.info("the coordinator does not know us; saying hello again")
                heldBack = nil
                send(.hello(hello()))
                for message in outbox.unacknowledged { send(message) }
                if !outbox.unacknowledged.isEmpty { settings.deliveryLog?.record(["resent", "\(outbox.unacknowledged.count)"]) }
                readySent = false
                sendReadyIfIdle()
            }
        case .error(let error) where error.refusesWorker:
            refusal = error.reason
        case .error(let error) where error.expectedEpoch != nil:
            fillGap(error)
        case .error(let error):
            logger.warning("the coordinator reports an error", metadata: ["reason": "\(error.reason)"])
        case .hello, .ready, .progress, .checkpoint, .done, .failed:
            logger.warning("a coordinator sent a worker's message; ignored", metadata: ["type": "\(message.type)"])
            client.count { $0.unexpected[message.type.description, default: 0] += 1 }
        }
    }

    /// The coordinator refused a result of an attempt because an epoch before it is missing. When the
    /// outbox still has that epoch, the attempt's unacknowledged results are resent in order. Otherwise
    /// it is lost here too: the attempt is released, and the trial restarts from its last checkpoint.
    private func fillGap(_ error: Message.ErrorReply) {
        guard let expected = error.expectedEpoch, let trialKey = error.trial, let attempt = error.attempt else { return }
        let pending = outbox.unacknowledged.filter { $0.resultTrial == trialKey && $0.resultAttempt == attempt }
        let metadata: Logger.Metadata = ["trial": "\(trialKey)", "attempt": "\(attempt)", "expected": "\(expected)"]
        if pending.contains(where: { if case let .progress(p) = $0 { p.epoch == expected } else { false } }) {
            logger.warning("the coordinator misses an epoch; resending the attempt's results", metadata: metadata)
            for message in pending { send(message) }
            settings.deliveryLog?.record(["resent", "\(pending.count)"])
            return
        }
        logger.warning("the coordinator misses an epoch this worker no longer has; releasing the attempt", metadata: metadata)
        if let trial, trial.trial == trialKey, trial.attempt == attempt {
            trial.requestStop(.released(reason: "the coordinator misses epoch \(expected)"))
            return
        }
        // Finished here already: withdraw its verdict and hand the trial back instead.
        outbox.acknowledge(pending.filter { if case .done = $0 { true } else { false } }.compactMap(\.messageID))
        send(outbox.add { .failed(.init(messageID: $0, trial: trialKey, attempt: attempt,
                                        reason: "the coordinator misses epoch \(expected)", kind: .interrupted)) })
    }

    /// The store has recorded these checkpoints: this worker's files of earlier epochs of the same attempts
    /// are no longer any trial's resume point.
    private func pruneCheckpoints(acknowledged ids: [MessageID]) {
        let acknowledged = Set(ids), root = settings.checkpointDirectory.path + "/"
        for case let .checkpoint(c) in outbox.unacknowledged where acknowledged.contains(c.messageID) {
            guard case .path(let path) = c.checkpoint.location, path.hasPrefix(root) else { continue }
            CheckpointFiles.prune(before: c.checkpoint.epoch, in: URL(fileURLWithPath: path).deletingLastPathComponent())
        }
    }

    /// A stale attempt: stop it if it runs, and stop resending its results.
    private func forget(_ drop: Message.Drop) {
        logger.info("attempt dropped", metadata: ["trial": "\(drop.trial)", "attempt": "\(drop.attempt)", "reason": "\(drop.reason)"])
        if let trial, trial.trial == drop.trial, trial.attempt == drop.attempt {
            trial.requestStop(.silenced(reason: "dropped: \(drop.reason)"))
        }
        let stale = outbox.unacknowledged.filter { $0.resultAttempt == drop.attempt && $0.resultTrial == drop.trial }
        outbox.acknowledge(stale.compactMap(\.messageID))
    }

    private func start(_ assign: Message.Assign) {
        if let sent = readySentAt {
            let waited = (ContinuousClock.now - sent).seconds
            client.count { $0.readyToAssignSeconds.append(waited) }
            readySentAt = nil
        }
        if let trial, trial.trial == assign.trial, trial.attempt == assign.attempt {
            logger.info("duplicate assign ignored", metadata: ["trial": "\(assign.trial)", "attempt": "\(assign.attempt)"])
            return
        }
        if let refusal = refusal(of: assign) {
            logger.warning("assignment refused", metadata: ["trial": "\(assign.trial)", "attempt": "\(assign.attempt)", "reason": "\(refusal.reason)"])
            sendResult { .failed(.init(messageID: $0, trial: assign.trial, attempt: assign.attempt, reason: refusal.reason, kind: refusal.kind,
                                       unreadSettings: refusal.unread)) }
            return
        }
        logger.info("starting trial", metadata: ["trial": "\(assign.trial)", "attempt": "\(assign.attempt)",
                                                  "resume_epoch": "\(assign.resume.map { "\($0.epoch)" } ?? "none")"])
        let running = RunningTrial(trial: assign.trial, attempt: assign.attempt, lastEpoch: assign.resume?.epoch ?? 0,
                                   wakeup: client.wakeup)
        trial = running
        readySent = false
        client.count { $0.attemptsStarted += 1 }
        TrialExecution(assign: assign, runner: client.runner,
                       directory: settings.checkpointDirectory.appendingPathComponent(assign.trial, isDirectory: true)
                           .appendingPathComponent("attempt-\(assign.attempt)", isDirectory: true),
                       sharedCheckpoints: settings.sharedCheckpoints, inlineLimit: timing.inlineCheckpointLimit,
                       logger: logger).start(reporting: running)
    }

    /// Why this worker cannot take `assign` now, if it cannot; `unread`: the members its build does not read,
    /// when that is why (the coordinator then offers the trial to other workers first).
    private func refusal(of assign: Message.Assign) -> (reason: String, kind: Message.Failed.Kind, unread: [String]?)? {
        if release != nil || shutdownReason != nil { return ("worker \(settings.workerID) is shutting down", .interrupted, nil) }
        if let trial { return ("worker \(settings.workerID) is busy with trial \(trial.trial) attempt \(trial.attempt)", .interrupted, nil) }
        let key = assign.trial
        if key.isEmpty || key == "." || key == ".." || key.contains("/") || key.contains("\0") {
            return ("trial key \(key.debugDescription) cannot name a checkpoint directory", .permanent, nil)
        }
        // A setting this build does not know would be ignored and its results stored as if honoured.
        // Retryable: a worker built after the setting may run the trial.
        if !assign.unknownFields.isEmpty {
            // The coordinator chose the names: a few, each cut at 80 bytes, keep the reason within a message.
            let shown = assign.unknownFields.prefix(8).map { $0.utf8.count > 80 ? String(decoding: $0.utf8.prefix(80), as: UTF8.self) + "…" : $0 }
            let more = assign.unknownFields.count > shown.count ? " and \(assign.unknownFields.count - shown.count) more" : ""
            return ("worker \(settings.workerID) does not know \(shown.joined(separator: ", "))\(more) in this assignment; "
                    + "it was built before the coordinator's factsweep: rebuild it", .error, shown)
        }
        return nil
    }

    // MARK: The trial's results

    /// Sends what the training thread produced; frees the slot when it has ended.
    private func pumpTrial() {
        client.wakeup?.reset()
        guard let running = trial else { return }
        let (outputs, finished) = running.take()
        let stop = running.stopRequest
        for output in outputs {
            if case .silenced = stop { continue }
            if let message = message(for: output, stop: stop) { sendResult { message($0) } }
        }
        guard finished else { return }
        logger.info("trial ended", metadata: ["trial": "\(running.trial)", "attempt": "\(running.attempt)"])
        trial = nil
        if let release { self.release = (release.reason, .now + settings.ackGrace) }
        sendReadyIfIdle()
    }

    /// The result message for `output`, given its id; nil when there is nothing to report.
    private func message(for output: TrialOutput, stop: StopRequest?) -> ((MessageID) -> Message)? {
        guard let running = trial else { return nil }
        let trial = running.trial, attempt = running.attempt
        switch output {
        case let .progress(report):
            return { .progress(.init(messageID: $0, trial: trial, attempt: attempt, report: report)) }
        case .checkpoint(let reference):
            return { .checkpoint(.init(messageID: $0, trial: trial, attempt: attempt, checkpoint: reference)) }
        case .finished(let summary) where summary.outcome != .stopped:
            return { .done(.init(messageID: $0, trial: trial, attempt: attempt, summary: summary)) }
        case .finished:
            let reason: String
            switch stop {
            case .released(let why): reason = why
            case .silenced, nil: reason = "stopped"
            }
            return { .failed(.init(messageID: $0, trial: trial, attempt: attempt, reason: reason, kind: .interrupted)) }
        case let .failed(reason, kind, refusedCheckpoint):
            return { .failed(.init(messageID: $0, trial: trial, attempt: attempt, reason: reason, kind: kind,
                                   refusedCheckpoint: refusedCheckpoint)) }
        }
    }

    // MARK: Ending

    private func beginRelease(_ reason: String) {
        logger.info("releasing", metadata: ["reason": "\(reason)", "trial": "\(trial.map(\.trial) ?? "none")"])
        if let trial {
            trial.requestStop(.released(reason: reason))
            release = (reason, .now + settings.stopGrace)
        } else {
            release = (reason, .now + settings.ackGrace)
        }
    }

    private func finishRelease(_ reason: String) -> WorkerClient.Exit {
        if !outbox.unacknowledged.isEmpty {
            logger.warning("exiting with unacknowledged results", metadata: ["count": "\(outbox.unacknowledged.count)"])
        }
        closeEndpoint()
        logger.info("worker released", metadata: ["reason": "\(reason)"])
        return .released(reason: reason)
    }

    /// `shutdown`: send nothing more; let the trial checkpoint (bounded) and exit.
    private func finishShutdown(_ reason: String) -> WorkerClient.Exit {
        logger.info("shutdown", metadata: ["reason": "\(reason)"])
        closeEndpoint()
        if let trial {
            trial.requestStop(.silenced(reason: "shutdown"))
            if !trial.waitUntilFinished(timeout: settings.stopGrace) {
                logger.error("the trial did not stop in time", metadata: ["trial": "\(trial.trial)", "attempt": "\(trial.attempt)"])
            }
        }
        return .shutdown(reason: reason)
    }

    private func sleep(_ duration: Duration) {
        Thread.sleep(forTimeInterval: Swift.max(0, duration.seconds))
    }
}
