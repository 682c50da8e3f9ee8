// A lost `ready` or `assign` does not leave a worker idle for ever: a real
// `factsweep coordinator` process and a scripted DEALER that behaves as a
// worker whose `ready` never arrived, or that never got its `assign`. Its
// heartbeats say it has a free slot; the coordinator reconciles — it requeues
// an assign the worker never named and hands the worker work.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport
import Trial

@Suite(.serialized) struct LostAssignTests {
    typealias Served = HostilePeerTests.Served

    /// Sends an idle worker's heartbeat (a free slot, nothing running) every 0.3 s until an `assign` comes,
    /// for at most `seconds`.
    static func beatUntilAssigned(_ worker: WorkerEndpoint, seconds: Double) throws -> Message.Assign? {
        let deadline = Date().addingTimeInterval(seconds)
        var nextBeat = Date.distantPast
        while Date() < deadline {
            if Date() >= nextBeat {
                try worker.send(.heartbeat(.init(running: [], freeSlots: 1)))
                nextBeat = Date().addingTimeInterval(0.3)
            }
            if case let .success(.assign(assign))? = try worker.receive(timeout: .milliseconds(50)) { return assign }
        }
        return nil
    }

    /// The `ready` never reached the coordinator: only heartbeats with a free slot.
    @Test func aWorkerWhoseReadyWasLostGetsWorkFromItsHeartbeats() throws {
        let dir = try TemporaryDirectory()
        let served = try Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try HostilePeerTests.dealer(served, id: "no-ready")
        try worker.send(HostilePeerTests.hello("no-ready"))
        // The coordinator's heartbeat interval is 1 s: work within two of them.
        let assign = try Self.beatUntilAssigned(worker, seconds: 2.5)
        #expect(assign != nil, "\(served.coordinator.output)")
    }

    /// The `assign` never reached the worker: its heartbeats name no attempt and offer a free slot. The
    /// attempt is requeued (lost, "assign lost") once an assign's grace (two heartbeat intervals) has
    /// passed, and the worker gets work.
    @Test func aWorkerWhoseAssignWasLostGetsWorkAndTheAttemptIsRequeued() throws {
        let dir = try TemporaryDirectory()
        let served = try Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try HostilePeerTests.dealer(served, id: "no-assign")
        try worker.send(HostilePeerTests.hello("no-assign"))
        let lost = try HostilePeerTests.assignment(worker)
        let started = Date()
        let next = try #require(try Self.beatUntilAssigned(worker, seconds: 5), "\(served.coordinator.output)")
        #expect(next.attempt != lost.attempt)
        #expect(Date().timeIntervalSince(started) < 4)
        let attempt = try #require(try SweepProcessTests.rows(served.database,
                                                              "SELECT outcome, reason FROM attempts WHERE attempt_id = \(lost.attempt)").first)
        #expect(attempt["outcome"] == "lost" && (attempt["reason"] as String? ?? "").contains("assign lost"), "\(attempt)")
        let trial = try #require(try SweepProcessTests.rows(served.database, "SELECT status FROM trials WHERE key = '\(lost.trial)'").first)
        #expect(trial["status"] == "pending" || next.trial == lost.trial, "\(trial)")

        // A worker that runs its attempt names it in its heartbeats: nothing more is requeued or assigned.
        let running = Message.Activity(trial: next.trial, attempt: next.attempt, epoch: 1, step: 1, phase: .training)
        let deadline = Date().addingTimeInterval(3)
        var more: [Message] = []
        while Date() < deadline {
            try worker.send(.heartbeat(.init(running: [running], freeSlots: 0)))
            more += try HostilePeerTests.collect(worker, seconds: 0.3)
        }
        #expect(!more.contains { if case .assign = $0 { true } else { false } }, "\(more)")
        let current = try #require(try SweepProcessTests.rows(served.database,
                                                              "SELECT outcome FROM attempts WHERE attempt_id = \(next.attempt)").first)
        #expect(current["outcome"] == "running")
    }
}
