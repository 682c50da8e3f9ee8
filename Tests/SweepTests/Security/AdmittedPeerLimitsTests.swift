// An admitted worker is not thereby honest: the coordinator bounds what it can
// claim (no more slots than its hello's threads) and what it can name itself
// (worker ids checked for length and characters), and keeps serving the
// others. Over real sockets against a real CoordinatorServer (inproc).
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import Store
import TestSupport
import Trial

@Suite(.serialized) struct AdmittedPeerLimitsTests {
    typealias Server = CoordinatorServerTests

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
        let fixture = try StoreFixture()
        try fixture.addSweep((1...5).map { StoreSamples.trial("lora", seed: UInt64($0), epochs: 2) })
        let context = try ZMQContext()
        let coordinator = try Server.Running(store: fixture.store, context: context, timing: Server.timing(), logs: fixture.logs)
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

    @Test func workerIdsAreCheckedForLengthAndCharacters() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora", seed: 1, epochs: 2)])
        let context = try ZMQContext()
        let coordinator = try Server.Running(store: fixture.store, context: context, timing: Server.timing(), logs: fixture.logs)
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
