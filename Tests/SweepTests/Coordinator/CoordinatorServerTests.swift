// The coordinator against scripted workers over real sockets (inproc): the
// whole life of a trial, acknowledgement of every result, duplicates applied
// once, stale attempts fenced after a lease expires, misbehaving peers
// answered while real workers are served.
import Foundation
import Logging
import Testing
@testable import Coordinator
@testable import Core
@testable import Protocol
import TestSupport
@testable import Store
import GRDB
import Trial

@Suite(.serialized) struct CoordinatorServerTests {
    /// A coordinator serving on its own thread until `stop` is set.
    final class Running: @unchecked Sendable {
        let endpoint: String
        private let lock = NSLock()
        private var stopped = false
        private var finished = false
        var violations: [Violation: Int] = [:]

        init(store: RunStore, context: ZMQContext, timing: ProtocolTiming, logs: CapturedLogs) throws {
            let name = inprocEndpoint("coordinator")
            endpoint = name
            let ready = DispatchSemaphore(value: 0)
            let failure = UncheckedBox()
            Thread {
                do {
                    let server = try CoordinatorServer(store: store, context: context, bind: name, timing: timing, logger: logs.logger("coordinator"))
                    ready.signal()
                    try server.serve(untilComplete: false, stop: { self.isStopped })
                    self.violations = server.violations
                    server.close()
                } catch {
                    failure.value = "\(error)"
                    ready.signal()
                }
                self.lock.withLock { self.finished = true }
            }.start()
            ready.wait()
            if let error = failure.value { throw CoordinatorError(error) }
        }

        var isStopped: Bool { lock.withLock { stopped } }
        func stop() {
            lock.withLock { stopped = true }
            let deadline = Date().addingTimeInterval(5)
            while !lock.withLock({ finished }) && Date() < deadline { usleep(10_000) }
        }
    }

    final class UncheckedBox: @unchecked Sendable { var value: String? }

    static func timing(lease: Duration = .seconds(30)) -> ProtocolTiming {
        var t = testTiming()
        t.heartbeatInterval = .milliseconds(100)
        t.leaseExpiry = lease
        return t
    }

    /// Receives until `match` accepts a message (other messages are skipped), or fails after `patience`.
    static func expect(_ worker: WorkerEndpoint, _ what: String, _ match: (Message) -> Bool) throws -> Message {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if case let .success(message)? = try worker.receive(timeout: .milliseconds(100)), match(message) { return message }
        }
        throw CoordinatorError("no \(what) within 5 s")
    }

    static func hello(_ id: String, session: String = "s1", held: [Message.HeldAttempt] = []) -> Message {
        .hello(.init(workerID: id, session: session, host: "test", pid: 1, threads: 1, protocolVersion: ProtocolVersion.current,
                     models: [], held: held))
    }

    /// A scripted worker that has said hello and ready for one trial.
    static func readyWorker(_ id: String, _ coordinator: Running, _ context: ZMQContext, _ fixture: StoreFixture) throws -> WorkerEndpoint {
        let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: id, timing: timing(), logger: fixture.logs.logger())
        try worker.send(hello(id))
        try worker.send(.ready(.init(freeSlots: 1)))
        return worker
    }

    static func progress(_ id: MessageID, _ trial: String, _ attempt: AttemptID, epoch: Int) -> Message {
        .progress(.init(messageID: id, trial: trial, attempt: attempt,
                        report: EpochReport(epoch: epoch, loss: 1 / Float(epoch), epochSeconds: 1, trainSeconds: Double(epoch))))
    }

    @Test func trialRunsToDoneWithEveryResultAcknowledgedOnce() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora", seed: 1, epochs: 2)])
        let context = try ZMQContext()
        let coordinator = try Running(store: fixture.store, context: context, timing: Self.timing(), logs: fixture.logs)
        defer { coordinator.stop() }
        let worker = try Self.readyWorker("w1", coordinator, context, fixture)
        guard case let .assign(assign) = try Self.expect(worker, "assign", { if case .assign = $0 { true } else { false } }) else { return }
        #expect(assign.resume == nil && assign.epochsRecorded == 0)
        #expect(assign.config.training.epochs == 2)
        for (id, epoch) in [(1, 1), (2, 2)] {
            try worker.send(Self.progress(MessageID(id), assign.trial, assign.attempt, epoch: epoch))
        }
        // A resend of message 2 (as after a lost ack) is acknowledged but applied once.
        try worker.send(Self.progress(2, assign.trial, assign.attempt, epoch: 2))
        try worker.send(.done(.init(messageID: 3, trial: assign.trial, attempt: assign.attempt,
                                    summary: .init(outcome: .done, epochs: 2, finalLoss: 0.5, trainableParameters: 10, baseWeightBytes: nil,
                                                  peakResidentBytes: 1, secondsPerEpoch: 1, evaluationSeconds: 0))))
        var acked = Set<MessageID>()
        let deadline = Date().addingTimeInterval(5)
        while acked.count < 3 && Date() < deadline {
            if case let .success(.ack(ack))? = try worker.receive(timeout: .milliseconds(100)) { acked.formUnion(ack.messageIDs) }
        }
        #expect(acked == [1, 2, 3])
        let trial = try #require(try fixture.store.trial(assign.trial))
        #expect(trial.status == .done && trial.lastEpoch == 2)
    }

    static func isAssign(_ message: Message) -> Bool { if case .assign = message { true } else { false } }

    /// Runs `body` with a scripted worker `id` (no hello sent yet) of a coordinator on `fixture`, stopped after.
    static func withWorker(_ id: String, on fixture: StoreFixture, _ body: (WorkerEndpoint) throws -> Void) throws {
        let context = try ZMQContext()
        let coordinator = try Running(store: fixture.store, context: context, timing: timing(), logs: fixture.logs)
        defer { coordinator.stop() }
        try body(try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: id, timing: timing(), logger: fixture.logs.logger()))
    }

    /// A worker's cache drops and loads models between trials, so the coordinator claims on the models its
    /// latest `ready` lists, not on its hello's; a `ready` without a list (an older worker) keeps the last one.
    @Test func readyNamesTheModelsClaimedFirst() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora", seed: 1), StoreSamples.trial("lora", seed: 2),
                              StoreSamples.trial("lora", seed: 1, model: "models/llama-1b"),
                              StoreSamples.trial("lora", seed: 2, model: "models/llama-1b")])
        try Self.withWorker("w1", on: fixture) { worker in
            // The hello lists SmolLM2; by the ready the cache holds only the 1B model.
            guard case var .hello(hello) = Self.hello("w1") else { return }
            hello.models = ["models/smollm2"]
            try worker.send(.hello(hello))
            try worker.send(.ready(.init(freeSlots: 1, models: ["models/llama-1b"])))
            guard case let .assign(first) = try Self.expect(worker, "assign", Self.isAssign) else { return }
            #expect(first.config.model == "models/llama-1b")
            let stored = try fixture.store.read { try String.fetchOne($0, sql: "SELECT models FROM workers WHERE id = 'w1'") }
            #expect(try JSONDecoder().decode([String].self, from: Data((stored ?? "").utf8)) == ["models/llama-1b"])
            // A ready without a list (an older worker) keeps the last one, not the hello's.
            try worker.send(.failed(.init(messageID: 1, trial: first.trial, attempt: first.attempt, reason: "test", kind: .permanent)))
            try worker.send(.ready(.init(freeSlots: 1)))
            guard case let .assign(second) = try Self.expect(worker, "second assign", Self.isAssign) else { return }
            #expect(second.config.model == "models/llama-1b" && second.trial != first.trial)
        }
    }

    /// A worker's hello and its readys name the storage each model is loaded in: the trials that train on
    /// a storage it holds go first. The three trials are three conditions on one file, so that the claim
    /// order alone would give f32 LoRA first and then QLoRA.
    @Test func helloAndReadyNameTheStoragesClaimedFirst() throws {
        func trial(_ condition: String, _ precision: Precision) -> SweepTrial {
            var trial = StoreSamples.trial(condition, seed: 1)
            trial.config.training.precision = precision
            return trial
        }
        let fixture = try StoreFixture()
        try fixture.addSweep([trial("lora-f32", .f32), trial("qlora-x", .f32), trial("lora-bf16", .bf16)])
        try Self.withWorker("w1", on: fixture) { worker in
            guard case var .hello(hello) = Self.hello("w1") else { return }
            hello.models = ["models/smollm2"]
            hello.modelStorages = [.init(model: "models/smollm2", storage: .bf16)]
            try worker.send(.hello(hello))
            try worker.send(.ready(.init(freeSlots: 1)))
            guard case let .assign(first) = try Self.expect(worker, "assign", Self.isAssign) else { return }
            #expect(first.trial == "lora-bf16-smollm2-s1", "the hello's bf16 model")
            // The cache has dropped the bf16 copy and loaded NF4 (a ready's list replaces the hello's).
            try worker.send(.failed(.init(messageID: 1, trial: first.trial, attempt: first.attempt, reason: "test", kind: .permanent)))
            try worker.send(.ready(.init(freeSlots: 1, models: ["models/smollm2"],
                                         modelStorages: [.init(model: "models/smollm2", storage: .nf4)])))
            guard case let .assign(second) = try Self.expect(worker, "second assign", Self.isAssign) else { return }
            #expect(second.trial == "qlora-x-smollm2-s1", "the ready's NF4 model")
        }
    }

    /// These attempts are lost without progress, so they count and would back off; the store's clock here
    /// stands still, so no wait would ever end.
    static let noBackoff = RetryBackoff(initial: 0, maximum: 0)

    @Test func staleAttemptIsFencedAfterItsLeaseExpires() throws {
        let fixture = try StoreFixture(leaseDuration: 0.3, retryBackoff: Self.noBackoff)
        try fixture.addSweep([StoreSamples.trial("ia3", seed: 1, epochs: 3)])
        let context = try ZMQContext()
        let coordinator = try Running(store: fixture.store, context: context, timing: Self.timing(lease: .milliseconds(300)), logs: fixture.logs)
        defer { coordinator.stop() }
        let first = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "slow", timing: Self.timing(), logger: fixture.logs.logger())
        try first.send(Self.hello("slow"))
        try first.send(.ready(.init(freeSlots: 1)))
        guard case let .assign(old) = try Self.expect(first, "assign", { if case .assign = $0 { true } else { false } }) else { return }
        // The first worker goes quiet; after the lease the trial goes to another worker.
        fixture.clock.advance(by: 1)
        let second = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "fast", timing: Self.timing(), logger: fixture.logs.logger())
        try second.send(Self.hello("fast"))
        try second.send(.ready(.init(freeSlots: 1)))
        guard case let .assign(new) = try Self.expect(second, "re-assign", { if case .assign = $0 { true } else { false } }) else { return }
        #expect(new.trial == old.trial && new.attempt != old.attempt)
        // The old attempt's late result is acknowledged and refused: it is told to drop the trial.
        try first.send(Self.progress(1, old.trial, old.attempt, epoch: 1))
        let drop = try Self.expect(first, "drop", { if case .drop = $0 { true } else { false } })
        #expect(drop == .drop(.init(trial: old.trial, attempt: old.attempt, reason: "another attempt holds the trial")))
        try second.send(Self.progress(1, new.trial, new.attempt, epoch: 1))
        _ = try Self.expect(second, "ack", { if case .ack = $0 { true } else { false } })
        #expect(try fixture.store.trial(new.trial)?.lastEpoch == 1)
    }

    /// An `assign` the worker never got (the link cut as it was sent): the
    /// worker's heartbeats, which do not name the attempt, do not keep it
    /// alive, and the worker's next hello, which does not hold it, requeues it at once.
    @Test func anAssignTheWorkerNeverGotIsRequeued() throws {
        let fixture = try StoreFixture(leaseDuration: 30, retryBackoff: Self.noBackoff)
        try fixture.addSweep([StoreSamples.trial("lora", seed: 1, epochs: 2)])
        let context = try ZMQContext()
        let coordinator = try Running(store: fixture.store, context: context, timing: Self.timing(), logs: fixture.logs)
        defer { coordinator.stop() }
        let worker = try Self.readyWorker("w1", coordinator, context, fixture)
        guard case let .assign(lost) = try Self.expect(worker, "assign", { if case .assign = $0 { true } else { false } }) else { return }
        // The worker behaves as if the assign never arrived: idle heartbeats.
        fixture.clock.advance(by: 20)
        try worker.send(.heartbeat(.init(running: [])))
        _ = try Self.expect(worker, "heartbeat", { if case .heartbeat = $0 { true } else { false } })
        fixture.clock.advance(by: 20)
        #expect(try fixture.store.requeueExpiredLeases().map(\.key) == [lost.trial], "an idle heartbeat renewed the lease")
        // Again with a new attempt, now ended by the worker's hello without it.
        try worker.send(.ready(.init(freeSlots: 1)))
        guard case let .assign(second) = try Self.expect(worker, "assign", { if case .assign = $0 { true } else { false } }) else { return }
        #expect(second.trial == lost.trial && second.attempt != lost.attempt)
        try worker.send(Self.hello("w1", session: "s2"))
        try worker.send(.ready(.init(freeSlots: 1)))
        guard case let .assign(third) = try Self.expect(worker, "assign", { if case .assign = $0 { true } else { false } }) else { return }
        #expect(third.trial == lost.trial && third.attempt != second.attempt)
        #expect(try fixture.store.attempts(of: lost.trial).map(\.outcome) == [.lost, .lost, .running])
    }

    @Test func garbageAndViolationsAreAnsweredWhileRealWorkersAreServed() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("full", seed: 1, epochs: 1)])
        let context = try ZMQContext()
        let coordinator = try Running(store: fixture.store, context: context, timing: Self.timing(), logs: fixture.logs)
        defer { coordinator.stop() }
        let raw = try ZMQSocket(context, .dealer, options: .init(timing: Self.timing(), identity: "raw"))
        try raw.connect(coordinator.endpoint)
        try raw.send([Data("garbage".utf8)])
        try raw.send([Data("factsweep/1".utf8), Data([0x03]), Data("{\"message_id\": ".utf8)])
        try raw.send([Data("factsweep/9".utf8), Data([0x01]), Data("{}".utf8)])
        let rogue = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "rogue", timing: Self.timing(), logger: fixture.logs.logger())
        try rogue.send(.ready(.init(freeSlots: 1)))  // before hello
        try rogue.send(Self.hello("rogue"))
        try rogue.send(.assign(.init(trial: "x", attempt: 1, config: sampleConfig())))  // a coordinator's message
        _ = try Self.expect(rogue, "error", { if case .error = $0 { true } else { false } })
        let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "good", timing: Self.timing(), logger: fixture.logs.logger())
        try worker.send(Self.hello("good"))
        try worker.send(.ready(.init(freeSlots: 1)))
        _ = try Self.expect(worker, "assign", { if case .assign = $0 { true } else { false } })
    }
}
