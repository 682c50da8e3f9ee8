// The real pair: a WorkerClient and a CoordinatorServer over its run database,
// so that both halves read docs/protocol.md the same way.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import Store
import TestSupport
@testable import Worker

@Suite struct WorkerCoordinatorTests {
    @Test func aWorkerRunsACoordinatorsTrialToDone() throws {
        let fixture = try StoreFixture()
        let trial = SweepTrial(key: "tiny-s0", condition: "lora", config: try TinyTrial.config(epochs: 2))
        try fixture.addSweep([trial])
        let context = try ZMQContext()
        let coordinator = try CoordinatorServerTests.Running(store: fixture.store, context: context, timing: workerTiming(),
                                                             logs: fixture.logs)
        defer { coordinator.stop() }
        let checkpoints = try TemporaryDirectory()
        let worker = TinyTrial.worker(connect: coordinator.endpoint, context: context, id: "w-real", checkpoints: checkpoints.url)
        defer { worker.stop() }

        let deadline = ContinuousClock.now + .seconds(60)
        while try fixture.store.trial(trial.key)?.status != .done, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let stored = try #require(try fixture.store.trial(trial.key))
        #expect(stored.status == .done && stored.lastEpoch == 2)
        #expect(stored.checkpoint?.epoch == 2)
        #expect(stored.checkpoint.map { "\($0.location)" }?.contains("tiny-s0/attempt-") == true)
        #expect(worker.client.statistics.unexpected.isEmpty && worker.client.statistics.rejected.isEmpty)
        worker.stop()
        coordinator.stop()
        #expect(coordinator.violations.isEmpty)
    }
}
