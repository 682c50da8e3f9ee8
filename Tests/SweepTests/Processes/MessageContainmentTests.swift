// A real `factsweep coordinator` process against a scripted worker that sends
// what no worker of ours sends: values the protocol's rules refuse at decode
// (a NaN duration, a slot count of Int.min, a message id at Int64.max, a hello
// listing 33,000 models), and a result the run database fails on for a reason
// no rule foresaw (a trigger stands in for one). Each had stopped the
// coordinator; now each is answered with `error`, the sweep goes on, and the
// failed result, resent after the hello its refusal asks for, is applied:
// nothing of it was kept, in the file or in the coordinator's memory of what it
// has seen.
import Foundation
import GRDB
import Testing
@testable import Protocol
import TestSupport
import Trial

@Suite(.serialized) struct MessageContainmentTests {
    static func errors(in messages: [Message]) -> [String] {
        messages.compactMap { if case let .error(e) = $0 { e.reason } else { nil } }
    }

    static func epochs(_ served: HostilePeerTests.Served, _ trial: String) throws -> [Int] {
        try SweepProcessTests.rows(served.database, "SELECT epoch FROM epoch_metrics WHERE trial_key = '\(trial)' ORDER BY epoch")
            .map { $0["epoch"] as Int }
    }

    @Test func valuesNoWorkerSendsAreRefusedAtDecodeAndServingGoesOn() throws {
        let dir = try TemporaryDirectory()
        let served = try HostilePeerTests.Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try HostilePeerTests.dealer(served)
        // More models than SQLite takes parameters (32,766), had each been one.
        let models = (0..<33_000).map { "m\($0)" }
        try worker.send(.hello(.init(workerID: "evil", session: "s1", host: "test", pid: 1, threads: 1, models: models)))
        let tooMany = try HostilePeerTests.expect(worker, "error for the hello") { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(tooMany.contains("models lists 33000 models"), "\(tooMany)")

        try worker.send(HostilePeerTests.hello())
        let assign = try HostilePeerTests.assignment(worker)
        let unmeasured = EpochReport(epoch: 1, loss: 1, epochSeconds: 1, trainSeconds: .nan)
        try worker.send(.progress(.init(messageID: 1, trial: assign.trial, attempt: assign.attempt, report: unmeasured)))
        try worker.send(.heartbeat(.init(running: [], freeSlots: .min)))
        try worker.send(HostilePeerTests.progress(.max, assign, epoch: 1, loss: 1))
        let reasons = Self.errors(in: try HostilePeerTests.collect(worker, seconds: 1.5))
        #expect(reasons.contains { $0.contains("report.trainSeconds is nan") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("free_slots is \(Int.min)") }, "\(reasons)")
        #expect(reasons.contains { $0.contains("message id \(Int64.max) is outside") }, "\(reasons)")
        #expect(served.coordinator.isRunning, "\(served.coordinator.output)")
        #expect(try Self.epochs(served, assign.trial).isEmpty)

        // The same epoch, measured: applied and acknowledged.
        try worker.send(HostilePeerTests.progress(1, assign, epoch: 1, loss: 1))
        _ = try HostilePeerTests.expect(worker, "ack of epoch 1") { if case let .ack(a) = $0, a.messageIDs.contains(1) { true } else { nil } }
        #expect(try Self.epochs(served, assign.trial) == [1])
    }

    @Test func aResultTheDatabaseFailsOnIsUndoneWholeAndItsResendApplied() throws {
        let dir = try TemporaryDirectory()
        let served = try HostilePeerTests.Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try HostilePeerTests.dealer(served)
        try worker.send(HostilePeerTests.hello())
        let assign = try HostilePeerTests.assignment(worker)
        try worker.send(HostilePeerTests.progress(1, assign, epoch: 1, loss: 1))
        _ = try HostilePeerTests.expect(worker, "ack of epoch 1") { if case let .ack(a) = $0, a.messageIDs.contains(1) { true } else { nil } }

        // A failure no rule foresees: the database refuses epoch 2.
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let database = try DatabaseQueue(path: served.database.path, configuration: configuration)
        try database.write {
            try $0.execute(sql: """
                CREATE TRIGGER refuse_epoch_two BEFORE INSERT ON epoch_metrics WHEN NEW.epoch = 2
                BEGIN SELECT RAISE(ABORT, 'refused for the test'); END
                """)
        }
        let second = HostilePeerTests.progress(2, assign, epoch: 2, loss: 0.5)
        try worker.send(second)
        let answers = try HostilePeerTests.collect(worker, seconds: 1.5)
        let reasons = Self.errors(in: answers)
        // Refused asking for hello: a real worker then says hello again and resends what is unacknowledged.
        #expect(reasons.contains { $0.hasPrefix("hello required: the coordinator could not apply progress")
            && $0.contains("refused for the test") }, "\(reasons)")
        #expect(!HostilePeerTests.acknowledged(2, in: answers), "\(answers)")
        #expect(served.coordinator.isRunning, "\(served.coordinator.output)")
        #expect(try Self.epochs(served, assign.trial) == [1])

        // Once the database takes it, the hello and the resend (the same message id) are applied, not taken for a duplicate.
        try database.write { try $0.execute(sql: "DROP TRIGGER refuse_epoch_two") }
        try worker.send(HostilePeerTests.hello(held: [.init(trial: assign.trial, attempt: assign.attempt, lastEpoch: 1)]))
        try worker.send(second)
        _ = try HostilePeerTests.expect(worker, "ack of epoch 2") { if case let .ack(a) = $0, a.messageIDs.contains(2) { true } else { nil } }
        #expect(try Self.epochs(served, assign.trial) == [1, 2])
        #expect(served.coordinator.isRunning, "\(served.coordinator.output)")
    }
}
