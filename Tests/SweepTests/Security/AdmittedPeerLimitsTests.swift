// An admitted worker is not thereby honest: the coordinator bounds what it can
// claim (no more slots than its hello's threads, no more threads than any
// host has, one worker id a connection) and what it can name itself (worker
// ids checked for length and characters), and keeps serving the others. Over
// real sockets against a real CoordinatorServer (inproc).
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import Store
import TestSupport
import Trial

@Suite(.serialized) struct AdmittedPeerLimitsTests {
    typealias Server = CoordinatorServerTests

    /// A coordinator serving a run of `trials` two-epoch LoRA trials.
    static func serving(trials: Int) throws -> (StoreFixture, ZMQContext, Server.Running) {
        let fixture = try StoreFixture()
        try fixture.addSweep((1...trials).map { StoreSamples.trial("lora", seed: UInt64($0), epochs: 2) })
        let context = try ZMQContext()
        return (fixture, context, try Server.Running(store: fixture.store, context: context, timing: Server.timing(), logs: fixture.logs))
    }

    /// Every assign `worker` receives within `seconds`.
    static func assigns(_ worker: WorkerEndpoint, seconds: Double) throws -> [Message.Assign] {
        var assigns: [Message.Assign] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if case let .success(.assign(assign))? = try worker.receive(timeout: .milliseconds(50)) { assigns.append(assign) }
        }
        return assigns
    }

    @Test func readyCannotClaimMoreThanTheHellosThreads() throws {
        let (fixture, context, coordinator) = try Self.serving(trials: 5)
        defer { coordinator.stop() }
        let greedy = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "greedy", timing: Server.timing(),
                                        logger: fixture.logs.logger())
        try greedy.send(Server.hello("greedy"))  // threads: 1
        try greedy.send(.ready(.init(freeSlots: 1000)))
        #expect(try Self.assigns(greedy, seconds: 1).count == 1, "one thread, one trial")
        // The rest of the queue is still there for an honest worker.
        let honest = try Server.readyWorker("honest", coordinator, context, fixture)
        #expect(try Self.assigns(honest, seconds: 1).count == 1)
        coordinator.stop()
        #expect(coordinator.violations[.overclaimedSlots] == 1, "\(coordinator.violations)")
    }

    static func hello(_ id: String, threads: Int) -> Message {
        .hello(.init(workerID: id, session: "s1", host: "test", pid: 1, threads: threads, protocolVersion: ProtocolVersion.current,
                     models: [], held: []))
    }

    @Test func aHelloDeclaresAtMostMaxThreads() throws {
        let (fixture, context, coordinator) = try Self.serving(trials: 3)
        defer { coordinator.stop() }
        for (id, threads) in [("huge", Message.maxThreads + 1), ("max-int", Int.max), ("none", 0)] {
            let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: id, timing: Server.timing(),
                                            logger: fixture.logs.logger())
            try worker.send(Self.hello(id, threads: threads))
            try worker.send(.ready(.init(freeSlots: 1)))
            #expect(try Self.assigns(worker, seconds: 0.5).isEmpty, "a hello declaring \(threads) threads is not served")
            worker.close()
        }
        // The bound itself is a hello like any other.
        let largest = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "largest", timing: Server.timing(),
                                         logger: fixture.logs.logger())
        try largest.send(Self.hello("largest", threads: Message.maxThreads))
        try largest.send(.ready(.init(freeSlots: 2)))
        #expect(try Self.assigns(largest, seconds: 1).count == 2)
        coordinator.stop()
        #expect(coordinator.violations[.invalidHello] == 3, "\(coordinator.violations)")
        #expect(try fixture.store.workerListing().map(\.id) == ["largest"])
    }

    @Test func oneConnectionSaysHelloUnderOneWorkerID() throws {
        let (fixture, context, coordinator) = try Self.serving(trials: 4)
        defer { coordinator.stop() }
        let worker = try Server.readyWorker("first", coordinator, context, fixture)
        _ = try Server.expect(worker, "assign") { if case .assign = $0 { true } else { false } }
        // The same connection as a second and a third worker: each refused by name, before the first is
        // silent long enough to be counted lost (which would free the connection).
        for id in ["second", "third"] {
            try worker.send(Server.hello(id, session: "s-\(id)"))
            _ = try Server.expect(worker, "refusal of \(id)") {
                if case let .error(e) = $0 { e.reason.contains("hello as worker \(id) refused") } else { false }
            }
        }
        coordinator.stop()
        #expect(coordinator.violations[.secondWorkerID] == 2, "\(coordinator.violations)")
        let listed = try fixture.store.workerListing().map(\.id)
        #expect(listed == ["first"], "\(listed)")
    }

    @Test func workerIdsAreCheckedForLengthAndCharacters() throws {
        let (fixture, context, coordinator) = try Self.serving(trials: 1)
        defer { coordinator.stop() }
        for id in [String(repeating: "x", count: 200), "bad id", "tab\there", "ünïcode"] {
            let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: id, timing: Server.timing(),
                                            logger: fixture.logs.logger())
            try worker.send(Server.hello(id))
            try worker.send(.ready(.init(freeSlots: 1)))
            #expect(try Self.assigns(worker, seconds: 0.5).isEmpty, "id \(id.prefix(20)) should not be served")
            worker.close()
        }
        let good = try Server.readyWorker("node-1.lab:7@x_y", coordinator, context, fixture)
        #expect(try Self.assigns(good, seconds: 1).count == 1, "a valid id is served")
        #expect(WorkerIdentity.problem("host-42") == nil && WorkerIdentity.problem("") != nil)
    }
}
