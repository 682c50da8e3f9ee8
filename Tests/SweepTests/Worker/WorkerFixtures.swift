// Fixtures for the worker tests: a scripted coordinator the test drives by
// hand, a WorkerClient on its own thread, and a tiny trial (a two-layer Llama
// on the six biography facts) that trains in well under a second per epoch.
import Core
import Foundation
import Logging
import Testing
@testable import Protocol
import TestSupport
@testable import Worker
import Trial

/// A bound ROUTER speaking for the coordinator, one worker at a time. It answers the worker's heartbeats while
/// the test waits for something (unless `silent`), so the worker keeps it alive only while the test wants.
final class ScriptedCoordinator {
    private(set) var endpoint: CoordinatorEndpoint
    let context: ZMQContext
    /// The connection the worker last said hello on (workers present no routing id: each connection is a peer).
    private(set) var worker: PeerID?
    /// Every message received, in order.
    private(set) var received: [Message] = []
    var silent = false
    /// What to add to a failed expectation, e.g. the worker's warnings.
    var diagnostics: () -> String = { "" }

    init(_ context: ZMQContext, bind: String, workerID: String, timing: ProtocolTiming) throws {
        self.context = context
        endpoint = try CoordinatorEndpoint(context, bind: bind, timing: timing, logger: CapturedLogs().logger("coordinator"))
    }

    var address: String { endpoint.endpoint }

    func send(_ message: Message) throws {
        guard let worker else { throw FixtureError("no hello yet: nowhere to send \(message.type)") }
        try endpoint.send(message, to: worker)
    }

    /// Sends frames as they are (header, type, body): what a coordinator of another build could send.
    func send(frames: [Data]) throws {
        guard let worker else { throw FixtureError("no hello yet: nowhere to send frames") }
        try endpoint.socket.send([worker.bytes] + frames)
    }

    /// The first message (from now) that `match` maps to a value, or a failed expectation after `within`.
    func expect<T>(_ what: String, within: Duration = patience, _ match: (Message) -> T?) throws -> T {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            guard let message = try next(timeout: .milliseconds(50)) else { continue }
            if let value = match(message) { return value }
        }
        throw FixtureError("no \(what) within \(within)\(diagnostics())")
    }

    /// Result messages, each id once (a reconnect may resend), until one `last` accepts; each is acked
    /// unless `withhold` says not to.
    func results(until last: (Message) -> Bool, withhold: (MessageID) -> Bool = { _ in false },
                 within: Duration = .seconds(60)) throws -> [Message] {
        var results: [Message] = []
        while !(results.last.map(last) ?? false) {
            let result = try expect("a result", within: within) { message in
                message.messageID.flatMap { id in results.contains { $0.messageID == id } ? nil : message }
            }
            results.append(result)
            if let id = result.messageID, !withhold(id) { try send(.ack(.init(messageIDs: [id]))) }
        }
        return results
    }

    /// Everything that arrives for `duration`.
    func collect(for duration: Duration) throws -> [Message] {
        let deadline = ContinuousClock.now + duration
        var messages: [Message] = []
        while ContinuousClock.now < deadline {
            if let message = try next(timeout: .milliseconds(20)) { messages.append(message) }
        }
        return messages
    }

    /// Closes the ROUTER (the coordinator disappears), waits, and binds a new one at the same address.
    func restart(after pause: Duration, timing: ProtocolTiming) throws {
        let address = self.address
        endpoint.close()
        Thread.sleep(forTimeInterval: pause.seconds)
        endpoint = try CoordinatorEndpoint(context, bind: address, timing: timing, logger: CapturedLogs().logger("coordinator"))
    }

    private func next(timeout: Duration) throws -> Message? {
        guard let (peer, _, result) = try endpoint.receive(timeout: timeout) else { return nil }
        let message = try result.get()
        if case .hello = message { worker = peer }
        // Another connection's messages (a closed one's last, or one libzmq reconnected before its hello) are not heard.
        guard peer == worker else { return nil }
        received.append(message)
        if case .heartbeat = message, !silent { try send(.heartbeat(.init())) }
        return message
    }
}

/// A `WorkerClient` running on a thread of its own.
final class WorkerThread: @unchecked Sendable {
    let client: WorkerClient
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<WorkerClient.Exit, ZMQError>?

    init(_ client: WorkerClient) {
        self.client = client
        Thread {
            let result = Result { () throws(ZMQError) in try client.run() }
            self.lock.withLock { self.result = result }
            self.finished.signal()
        }.start()
    }

    /// How `run` returned, or nil if it is still running after `timeout`.
    func exit(within timeout: Duration = patience) -> WorkerClient.Exit? {
        guard finished.wait(timeout: .now() + timeout.seconds) == .success else { return nil }
        finished.signal()
        return lock.withLock { try? result?.get() }
    }

    /// Makes sure the client's thread ends, whatever the test did.
    func stop() {
        client.release(reason: "test over")
        _ = exit()
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Timing scaled down for tests: the coordinator is dead after 500 ms of silence.
func workerTiming() -> ProtocolTiming {
    var timing = testTiming()
    timing.heartbeatInterval = .milliseconds(100)
    timing.heartbeatLiveness = 5
    return timing
}

/// The tiny trial's model and a runner whose cache keeps it loaded across tests.
enum TinyTrial {
    private static let model: Result<TemporaryDirectory, any Error> = Result {
        let directory = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: directory.url)
        return directory
    }

    static let runner = TrialRunner(cache: ModelCache(logger: CapturedLogs().logger("cache")), context: ComputeContext(threads: 1),
                                    logger: CapturedLogs().logger("runner"))

    /// The canonical JSON of `config(epochs:checkpointEvery:)`.
    /// A LoRA trial on the biography facts: one step per fact, no evaluation.
    static func config(epochs: Int, checkpointEvery: Int = 1) throws -> TrialConfig {
        var training = TrainingSettings()
        training.method = MethodSettings(kind: .lora, rank: 2, alpha: 4)
        training.learningRate = 1e-3
        training.epochs = epochs
        training.batchSize = 1
        return TrialConfig(
            model: try model.get().url.path, data: TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path,
            training: training, evalEvery: 0, heldOut: "none", checkpointEvery: checkpointEvery)
    }

    /// A worker for `coordinator`, checkpointing under `directory`.
    static func worker(_ coordinator: ScriptedCoordinator, id: String, checkpoints directory: URL, shared: Bool = true,
                       logs: CapturedLogs = CapturedLogs()) -> WorkerThread {
        coordinator.diagnostics = {
            logs.all.filter { $0.level >= .info }.map { "\n  worker \($0.level): \($0.message) \($0.metadata)" }.joined()
        }
        return worker(connect: coordinator.address, context: coordinator.context, id: id, checkpoints: directory, shared: shared, logs: logs)
    }

    static func worker(connect endpoint: String, context: ZMQContext, id: String, checkpoints directory: URL, shared: Bool = true,
                       logs: CapturedLogs = CapturedLogs()) -> WorkerThread {
        var settings = WorkerSettings(endpoint: endpoint, workerID: id, threads: 1, checkpointDirectory: directory,
                                      sharedCheckpoints: shared, timing: workerTiming(), host: "test-host")
        settings.stopGrace = .seconds(20)
        settings.ackGrace = .seconds(2)
        return WorkerThread(WorkerClient(settings, context: context, runner: runner, logger: logs.logger("worker")))
    }
}

extension Message {
    var isDone: Bool { if case .done = self { true } else { false } }
    var isFailed: Bool { if case .failed = self { true } else { false } }

    /// The result message's body fields a test compares, without the id.
    var resultKind: String? {
        switch self {
        case .progress(let m): "progress \(m.epoch)"
        case .checkpoint(let m): "checkpoint \(m.checkpoint.epoch)"
        case .done(let m): "done \(m.summary.epochs)"
        case .failed(let m): "failed \(m.reason)"
        case .hello, .ready, .heartbeat, .assign, .ack, .cancel, .drop, .shutdown, .error: nil
        }
    }
}
