// An admitted peer that misbehaves, against a real `factsweep coordinator`
// process: scripted ZeroMQ DEALERs (and real `factsweep worker` processes)
// that report on another worker's attempt, report epochs beyond the plan,
// name a checkpoint outside the run's checkpoint directory, send a message of
// thousands of frames or one over the size limit, or say hello under a worker
// id another live process holds — without keys, and with keys (one shared by
// the workers, one of another host). Each is refused and counted, the
// coordinator keeps serving, and the sweep's results stay right.
import Foundation
import Logging
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport
import Trial

@Suite(.serialized) struct InsiderTests {
    typealias Hostile = HostilePeerTests

    /// Whether the coordinator logged a violation of `kind`.
    static func logged(_ kind: Violation, _ served: Hostile.Served) -> Bool {
        served.coordinator.output.contains("kind=\(kind.rawValue)")
    }

    static func trialRow(_ served: Hostile.Served, _ key: String) throws -> [String: String] {
        let row = try #require(try SweepProcessTests.rows(served.database, """
            SELECT status, last_epoch, IFNULL(checkpoint_path, '') AS checkpoint_path FROM trials WHERE key = '\(key)'
            """).first)
        return ["status": row["status"], "last_epoch": "\(row["last_epoch"] as Int)", "checkpoint_path": row["checkpoint_path"]]
    }

    /// Both epochs and done for `assign`, each acknowledged.
    static func complete(_ worker: WorkerEndpoint, _ assign: Message.Assign, firstID: MessageID) throws {
        try worker.send(Hostile.progress(firstID, assign, epoch: 1, loss: 1))
        try worker.send(Hostile.progress(firstID + 1, assign, epoch: 2, loss: 0.5))
        try worker.send(Hostile.done(firstID + 2, assign, outcome: .done, epochs: 2, loss: 0.5))
        _ = try Hostile.expect(worker, "ack of done \(firstID + 2)") {
            if case let .ack(a) = $0, a.messageIDs.contains(firstID + 2) { true } else { nil }
        }
    }

    /// Failed before the fix: the coordinator checked only that the attempt id held the trial, so another
    /// worker's progress and done were applied (the trial ended done with the intruder's numbers).
    @Test func resultsForAnotherWorkersAttemptAreRefused() throws {
        let dir = try TemporaryDirectory()
        let served = try Hostile.Served(dir.url)
        defer { served.coordinator.stop() }
        let owner = try Hostile.dealer(served, id: "owner")
        try owner.send(Hostile.hello("owner"))
        let owned = try Hostile.assignment(owner)
        let intruder = try Hostile.dealer(served, id: "intruder")
        try intruder.send(Hostile.hello("intruder", session: "s2"))
        let own = try Hostile.assignment(intruder)
        #expect(own.trial != owned.trial)

        try intruder.send(Hostile.progress(1, owned, epoch: 1, loss: 9))
        try intruder.send(Hostile.progress(2, owned, epoch: 2, loss: 9))
        try intruder.send(Hostile.done(3, owned, outcome: .done, epochs: 2, loss: 9))
        let answers = try Hostile.collect(intruder, seconds: 1.5)
        let refusals = answers.compactMap { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(refusals.filter { $0.contains("is not this worker's") }.count == 3, "\(answers)")
        #expect(![1, 2, 3].contains { Hostile.acknowledged($0, in: answers) }, "\(answers)")
        #expect(try Self.trialRow(served, owned.trial)["last_epoch"] == "0")

        // Both trials end with their own workers' results; the coordinator served throughout.
        try Self.complete(owner, owned, firstID: 1)
        try Self.complete(intruder, own, firstID: 4)
        let losses = try SweepProcessTests.rows(served.database, "SELECT loss FROM epoch_metrics WHERE trial_key = '\(owned.trial)' ORDER BY epoch")
        #expect(losses.map { $0["loss"] as Double } == [1, 0.5])
        #expect(try Self.trialRow(served, owned.trial)["status"] == "done")
        #expect(try Self.trialRow(served, own.trial)["status"] == "done")
        #expect(served.coordinator.isRunning && Self.logged(.foreignAttempt, served), "\(served.coordinator.output.suffix(2000))")
    }

    /// Failed before the fix: progress for epoch 3 of a two-epoch trial was recorded (last_epoch 3).
    @Test func resultsBeyondTheTrialsPlanAreRefused() throws {
        let dir = try TemporaryDirectory()
        let served = try Hostile.Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try Hostile.dealer(served)
        try worker.send(Hostile.hello())
        let assign = try Hostile.assignment(worker)
        try worker.send(Hostile.progress(1, assign, epoch: 1, loss: 1))
        try worker.send(Hostile.progress(2, assign, epoch: 2, loss: 0.5))
        try worker.send(Hostile.progress(3, assign, epoch: 3, loss: 0.25))
        try worker.send(Hostile.done(4, assign, outcome: .done, epochs: 7, loss: 0.25))
        let answers = try Hostile.collect(worker, seconds: 1.5)
        #expect(Hostile.acknowledged(1, in: answers) && Hostile.acknowledged(2, in: answers), "\(answers)")
        #expect(!Hostile.acknowledged(3, in: answers) && !Hostile.acknowledged(4, in: answers), "\(answers)")
        let refusals = answers.compactMap { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(refusals.filter { $0.contains("which plans 2") }.count == 2, "\(refusals)")
        #expect(try Self.trialRow(served, assign.trial)["last_epoch"] == "2")
        #expect(try Self.trialRow(served, assign.trial)["status"] == "running")
        // The honest done is taken.
        try worker.send(Hostile.done(5, assign, outcome: .done, epochs: 2, loss: 0.5))
        _ = try Hostile.expect(worker, "ack of the done") { if case let .ack(a) = $0, a.messageIDs.contains(5) { true } else { nil } }
        #expect(try Self.trialRow(served, assign.trial) == ["status": "done", "last_epoch": "2", "checkpoint_path": ""])
        #expect(served.coordinator.isRunning && Self.logged(.beyondPlan, served))
    }

    /// Failed before the fix: the coordinator stored any path, which the next attempt's worker then copied.
    /// A refused checkpoint is acknowledged (no resend can change the answer; an honest worker with another
    /// checkpoint directory would otherwise keep them all), and never stored.
    @Test func checkpointPathsOutsideTheRunsCheckpointDirectoryAreRefused() throws {
        let dir = try TemporaryDirectory()
        let served = try Hostile.Served(dir.url)
        defer { served.coordinator.stop() }
        let checkpoints = served.run.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: checkpoints.appendingPathComponent("escape"), withDestinationURL: dir.url)
        let worker = try Hostile.dealer(served)
        try worker.send(Hostile.hello())
        let assign = try Hostile.assignment(worker)
        try worker.send(Hostile.progress(1, assign, epoch: 1, loss: 1))
        let outside = ["/etc/passwd", checkpoints.path + "/../run.db", checkpoints.path + "/escape/spec.json"]
        for (index, path) in outside.enumerated() {
            try worker.send(.checkpoint(.init(messageID: MessageID(2 + index), trial: assign.trial, attempt: assign.attempt,
                                              checkpoint: CheckpointRef(epoch: 1, location: .path(path)))))
        }
        let inside = checkpoints.appendingPathComponent("\(assign.trial)/checkpoint.safetensors").path
        try worker.send(.checkpoint(.init(messageID: 5, trial: assign.trial, attempt: assign.attempt,
                                          checkpoint: CheckpointRef(epoch: 1, location: .path(inside)))))
        let answers = try Hostile.collect(worker, seconds: 1.5)
        #expect([2, 3, 4, 5].allSatisfy { Hostile.acknowledged($0, in: answers) }, "\(answers)")
        let refusals = answers.compactMap { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(refusals.filter { $0.contains("outside the checkpoint directory") }.count == 3, "\(refusals)")
        #expect(try Self.trialRow(served, assign.trial)["checkpoint_path"] == inside)
        #expect(served.coordinator.isRunning && Self.logged(.checkpointOutsideRun, served))
    }

    /// A message of 10 000 frames is refused after reading, keeping four; a frame over `max_message_bytes`
    /// makes libzmq close that connection. Neither reaches the handler, and the sweep goes on.
    @Test func manyFrameAndOversizedMessagesAreBoundedAndServingGoesOn() throws {
        let dir = try TemporaryDirectory()
        let cluster = dir.file("cluster.json")
        try #"{"coordinator": {"bind": "tcp://127.0.0.1:0", "connect": "tcp://127.0.0.1:0"}, "run_directory": "run", "hosts": [], "timing": {"max_message_bytes": 65536}}"#
            .write(to: cluster, atomically: true, encoding: .utf8)
        let served = try Hostile.Served(dir.url, extra: ["--cluster", cluster.path])
        defer { served.coordinator.stop() }
        let context = try ZMQContext()
        let raw = try ZMQSocket(context, .dealer, options: .init(timing: testTiming()))
        try raw.connect(served.endpoint)
        try raw.send(Array(repeating: Data("frame".utf8), count: 10_000))
        let answer = try #require(try raw.receive(timeout: .seconds(10)), "the many-frame message is answered")
        #expect(String(decoding: answer.last ?? Data(), as: UTF8.self).contains("got 10000"), "\(answer)")
        let big = try ZMQSocket(context, .dealer, options: .init(timing: testTiming()))
        try big.connect(served.endpoint)
        try big.send(try Message.encode(Hostile.hello("big")) + [Data(count: 100_000)])
        #expect(try big.receive(timeout: .seconds(1)) == nil, "libzmq closed the oversized sender's connection")

        let worker = try Hostile.dealer(served)
        try worker.send(Hostile.hello())
        try Self.complete(worker, try Hostile.assignment(worker), firstID: 1)
        try Self.complete(worker, try Hostile.assignment(worker), firstID: 4)
        #expect(try SweepProcessTests.rows(served.database, "SELECT status FROM trials").allSatisfy { $0["status"] == "done" })
        #expect(served.coordinator.waitForOutput("kind=bad_frame_count", seconds: 5))
        #expect(served.coordinator.wait(seconds: 10) && served.coordinator.status == 0, "\(served.coordinator.output.suffix(2000))")
    }

    /// Issue 11: a host listed twice runs two workers with one id. The second is refused with a clear error
    /// that `factsweep worker` prints and exits on; the first keeps its attempts and the sweep completes.
    /// Failed before the fix: ROUTER_HANDOVER gave the second the id, and the two took it from each other
    /// (each hello requeued the other's attempt), the second never exiting.
    @Test func aSecondWorkerProcessUnderTheSameIdIsRefusedAndExits() throws {
        let dir = try TemporaryDirectory()
        let served = try Hostile.Served(dir.url, spec: try SimulatedSweepTests.spec(in: dir.url))
        defer { served.coordinator.stop() }
        let worker = { (log: String) in
            try FactSweepChild(["worker", "--connect", served.endpoint, "--threads", "1", "--id", "twin", "--simulate", "0.1",
                                "--checkpoint-dir", served.run.appendingPathComponent("checkpoints").path], log: dir.file(log))
        }
        let first = try worker("first.log")
        defer { first.stop() }
        #expect(first.waitForOutput("starting trial", seconds: 20), "\(first.output.suffix(2000))")
        let second = try worker("second.log")
        defer { second.stop() }
        #expect(second.wait(seconds: 20), "the second worker exits")
        #expect(second.status == 1 && second.output.contains("worker refused: worker id twin is in use by another live process"),
                "\(second.output.suffix(2000))")
        #expect(served.coordinator.wait(seconds: 120), "the first worker completes the sweep\n\(first.output.suffix(2000))")
        try SweepProcessTests.expectComplete(served.database, trials: 20, epochs: 3)
        let lost = try SweepProcessTests.rows(served.database, "SELECT COUNT(*) AS n FROM attempts WHERE outcome <> 'done'")
        #expect(lost.first?["n"] == 0, "no attempt of the first worker was taken from it")
        #expect(Self.logged(.duplicateWorker, served))
    }

    /// Issue 12's stolen id, with keys: scripted peers say hello as a real worker mid-sweep — one with the
    /// workers' shared key and a session of its own (refused: a live process holds the id), one with another
    /// host's key on the allow-list (refused: the id is bound to the first key). Neither gets its attempts;
    /// the sweep completes. Failed before the fix: each hello took the id over and requeued the real worker's
    /// attempt (attempts ended lost).
    @Test func aStolenWorkerIdIsRefusedByKeyAndSession() throws {
        let dir = try TemporaryDirectory()
        let keys = try TestKeys(in: dir.url, outsider: true)
        try TestKeys.factsweep(["keys", "allow", keys.dir.appendingPathComponent("outsider.pub").path, "--dir", keys.dir.path])
        let port = TestPorts.unused()
        let cluster = try KeyedSweepTests.cluster(in: dir.url, port: port, keys: keys)
        let served = try Hostile.Served(dir.url, spec: try SimulatedSweepTests.spec(in: dir.url), port: port,
                                        extra: ["--cluster", cluster.path])
        defer { served.coordinator.stop() }
        let real = try FactSweepChild(["worker", "--connect", served.endpoint, "--threads", "1", "--id", "w0", "--simulate", "0.1",
                                       "--cluster", cluster.path], log: dir.file("w0.log"))
        defer { real.stop() }
        #expect(real.waitForOutput("starting trial", seconds: 20), "\(real.output.suffix(2000))")

        let coordinatorKey = try KeyFiles.publicKey(keys.coordinatorPublicKey.path)
        let context = try ZMQContext()
        for (key, expected) in [("workers.key", "is in use by another live process"), ("outsider.key", "belongs to another key")] {
            let security = try WorkerSecurity(keyPair: KeyFiles.readKeyPair(keys.dir.appendingPathComponent(key)), coordinatorKey: coordinatorKey)
            let thief = try WorkerEndpoint(context, connect: served.endpoint, workerID: "w0", timing: testTiming(), security: security,
                                           logger: Hostile.logs.logger())
            defer { thief.close() }
            try thief.send(Hostile.hello("w0", session: "thief-\(key)"))
            try thief.send(.ready(.init(freeSlots: 1)))
            let answers = try Hostile.collect(thief, seconds: 1.5)
            let refusal = answers.compactMap { if case let .error(e) = $0, e.refusesWorker { e.reason } else { nil } }.first
            #expect(refusal?.contains(expected) == true, "\(key): \(answers)")
            #expect(!answers.contains { if case .assign = $0 { true } else { false } }, "\(key): \(answers)")
        }
        #expect(served.coordinator.wait(seconds: 120), "the real worker completes the sweep\n\(real.output.suffix(2000))")
        try SweepProcessTests.expectComplete(served.database, trials: 20, epochs: 3)
        let lost = try SweepProcessTests.rows(served.database, "SELECT COUNT(*) AS n FROM attempts WHERE outcome <> 'done'")
        #expect(lost.first?["n"] == 0, "no attempt of the real worker was taken from it")
        #expect(Self.logged(.duplicateWorker, served) && Self.logged(.foreignKey, served))
    }
}
