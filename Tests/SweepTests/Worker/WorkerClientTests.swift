// A WorkerClient against a scripted coordinator over real sockets: the
// handshake, a tiny trial reported epoch by epoch and resent until
// acknowledged, a resumed attempt, a dropped attempt, a coordinator that
// disappears and comes back, and a release (SIGTERM's path). Every wait is
// bounded; the trials train a two-layer model on six facts.
import Core
import Foundation
import Testing
@testable import Protocol
import TestSupport
@testable import Worker
import Trial

@Suite(.serialized) struct WorkerClientTests {
    @Test func saysHelloAsksForWorkCountsViolationsAndShutsDown() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: inprocEndpoint("hello"), workerID: "w-hello", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let worker = TinyTrial.worker(coordinator, id: "w-hello", checkpoints: checkpoints.url)
        defer { worker.stop() }

        let hello = try coordinator.expect("hello") { if case .hello(let h) = $0 { h } else { nil } }
        #expect(hello.workerID == "w-hello" && hello.host == "test-host" && hello.pid == getpid() && hello.threads == 1)
        #expect(hello.held.isEmpty && !hello.session.isEmpty && hello.protocolVersion == ProtocolVersion.current)
        let ready = try coordinator.expect("ready") { if case .ready(let r) = $0 { r } else { nil } }
        #expect(ready.freeSlots == 1)
        let beat = try coordinator.expect("heartbeat") { if case .heartbeat(let b) = $0 { b } else { nil } }
        #expect(beat.running.isEmpty)

        // Worker messages from a coordinator are violations: logged and counted, never answered.
        try coordinator.send(.ready(.init(freeSlots: 3)))
        try coordinator.send(.done(.init(messageID: 1, trial: "t", attempt: 1, summary: .init(
            outcome: .done, epochs: 1, finalLoss: 1, trainableParameters: 1, baseWeightBytes: nil, peakResidentBytes: 1,
            secondsPerEpoch: 1, evaluationSeconds: 0))))
        try coordinator.send(.error(.init(reason: "just so")))
        let after = try coordinator.collect(for: .milliseconds(300))
        #expect(after.allSatisfy { if case .heartbeat = $0 { true } else { false } }, "only heartbeats: \(after.map(\.type))")
        #expect(worker.client.statistics.unexpected == ["ready": 1, "done": 1])

        try coordinator.send(.shutdown(.init(reason: "sweep complete")))
        #expect(worker.exit() == .shutdown(reason: "sweep complete"))
    }

    /// Two epochs: progress and an inline checkpoint per epoch, then done; the unacknowledged checkpoint of
    /// epoch 1 is resent, with its id, on the connection the worker makes when the coordinator falls silent.
    /// A second attempt resumes from that checkpoint and reports only the epoch the store lacks.
    @Test func tinyTrialIsReportedAndResentUntilAcknowledged() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: inprocEndpoint("trial"), workerID: "w-trial", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let config = try TinyTrial.config(epochs: 2)
        let worker = TinyTrial.worker(coordinator, id: "w-trial", checkpoints: checkpoints.url, shared: false)
        defer { worker.stop() }
        // The runner (and its model cache) is shared by this suite's tests: the list is whatever it holds.
        let idle = try coordinator.expect("ready") { if case .ready(let r) = $0 { r } else { nil } }
        #expect(idle.modelStorages == TinyTrial.runner.modelsOnHand, "a ready names the models on hand")
        #expect(idle.models == idle.modelStorages.map(Message.ModelStorage.paths), "and their paths")

        try coordinator.send(.assign(.init(trial: "t-tiny", attempt: 7, config: config)))
        // The ack of epoch 1's checkpoint is withheld.
        let results = try coordinator.results(until: \.isDone, withhold: { $0 == 2 })
        #expect(results.compactMap(\.resultKind) == ["progress 1", "checkpoint 1", "progress 2", "checkpoint 2", "done 2"])
        #expect(results.compactMap(\.messageID) == [1, 2, 3, 4, 5])
        guard case .checkpoint(let first) = results[1], case .inline(let epochOne) = first.checkpoint.location,
              case .done(let done) = results[4] else {
            Issue.record("expected an inline checkpoint and done: \(results)"); return
        }
        #expect(first.trial == "t-tiny" && first.attempt == 7 && !epochOne.isEmpty)
        #expect(done.summary.epochs == 2 && done.summary.finalLoss?.isFinite == true && done.summary.outcome == .done
                && done.summary.trainableParameters > 0)
        let model = URL(fileURLWithPath: try TinyTrial.config(epochs: 2).model)
        let described = try #require(done.summary.model, "\(done.summary)")
        #expect(described.file == model.lastPathComponent && described.name == nil, "\(done.summary)")
        #expect(described.weights == "safetensors F32" && described.parameters > 0, "\(done.summary)")
        let file = checkpoints.url.appendingPathComponent("t-tiny/attempt-7/checkpoint.safetensors")
        #expect(FileManager.default.fileExists(atPath: file.path))
        // The ready names the model the trial left in the cache, for the coordinator's next claim.
        let after = try coordinator.expect("ready after done") { if case .ready(let r) = $0 { r } else { nil } }
        #expect(after.models?.contains(model.standardizedFileURL.path) == true, "\(String(describing: after.models))")
        #expect(after.modelStorages?.contains(.init(model: model.standardizedFileURL.path, storage: .float32)) == true,
                "\(String(describing: after.modelStorages))")

        // Silence: the worker gives up on this connection, says hello on a new one and resends message 2.
        coordinator.silent = true
        let hello = try coordinator.expect("hello on a new connection") { if case .hello(let h) = $0 { h } else { nil } }
        coordinator.silent = false
        // The trial has ended here, but its unacknowledged checkpoint (message 2) still holds it.
        #expect(hello.held == [.init(trial: "t-tiny", attempt: 7, lastEpoch: 0)])
        #expect(hello.modelStorages?.contains(.init(model: model.standardizedFileURL.path, storage: .float32)) == true,
                "a hello names the storages too")
        let resent = try coordinator.expect("the resend") { $0.messageID != nil ? $0 : nil }
        #expect(resent == results[1])
        try coordinator.send(.ack(.init(messageIDs: [2])))
        #expect(worker.client.statistics.reconnects >= 1)

        // Attempt 8 resumes from epoch 1's bytes; the store already has epoch 1.
        try coordinator.send(.assign(.init(trial: "t-tiny", attempt: 8, config: config,
                                           resume: .init(epoch: 1, location: .inline(epochOne)), epochsRecorded: 1)))
        let resumed = try coordinator.results(until: \.isDone)
        #expect(resumed.compactMap(\.resultKind) == ["progress 2", "checkpoint 2", "done 2"])
        #expect(resumed.compactMap(\.messageID) == [6, 7, 8])

        try coordinator.send(.shutdown(.init(reason: "done")))
        #expect(worker.exit() == .shutdown(reason: "done"))
    }

    /// An assignment holding a setting this build does not know (a coordinator built after it) is refused,
    /// retryably and naming the setting, not run without it; the same trial without it then runs (version 4).
    @Test func anAssignmentWithAnUnknownSettingIsRefusedNotRun() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: "tcp://127.0.0.1:*", workerID: "w-newer", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let config = try TinyTrial.config(epochs: 1)
        let worker = TinyTrial.worker(coordinator, id: "w-newer", checkpoints: checkpoints.url)
        defer { worker.stop() }
        _ = try coordinator.expect("ready") { if case .ready = $0 { true } else { nil } }

        let frames = try Message.encode(.assign(.init(trial: "t-newer", attempt: 1, config: config)))
        var body = try #require(try JSONSerialization.jsonObject(with: frames[2]) as? [String: Any])
        var sent = try #require(body["config"] as? [String: Any])
        var training = try #require(sent["training"] as? [String: Any])
        training["gradientCheckpointing"] = true
        sent["training"] = training
        body["config"] = sent
        try coordinator.send(frames: [frames[0], frames[1], try JSONSerialization.data(withJSONObject: body)])
        let refused = try coordinator.expect("failed") { if case .failed(let f) = $0 { f } else { nil } }
        #expect(refused.trial == "t-newer" && refused.attempt == 1 && refused.kind == .error && refused.retryable)
        #expect(refused.reason.contains("config.training.gradientCheckpointing") && refused.reason.contains("rebuild"), "\(refused.reason)")
        #expect(refused.unreadSettings == ["config.training.gradientCheckpointing"] && refused.refusedUnreadSettings)
        try coordinator.send(.ack(.init(messageIDs: [refused.messageID])))
        // Nothing ran: no result but the refusal, and heartbeats without the trial.
        let after = try coordinator.collect(for: .milliseconds(500))
        #expect(after.allSatisfy { message in
            if case .heartbeat(let beat) = message { beat.running.isEmpty } else { false }
        }, "\(after.map(\.type))")

        try coordinator.send(.assign(.init(trial: "t-newer", attempt: 2, config: config)))
        let results = try coordinator.results(until: \.isDone)
        #expect(results.compactMap(\.resultKind) == ["progress 1", "checkpoint 1", "done 1"])

        try coordinator.send(.shutdown(.init(reason: "done")))
        #expect(worker.exit() == .shutdown(reason: "done"))
    }

    /// A dropped attempt stops after its epoch and reports nothing more; the worker asks for work again.
    @Test func droppedAttemptStopsWithoutReporting() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: inprocEndpoint("drop"), workerID: "w-drop", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let config = try TinyTrial.config(epochs: 500, checkpointEvery: 0)
        let worker = TinyTrial.worker(coordinator, id: "w-drop", checkpoints: checkpoints.url)
        defer { worker.stop() }
        _ = try coordinator.expect("ready") { if case .ready = $0 { true } else { nil } }

        try coordinator.send(.assign(.init(trial: "t-long", attempt: 3, config: config)))
        // Heartbeats carry the trainer's position, and it advances.
        let first = try coordinator.expect("a position", within: .seconds(60)) {
            if case .heartbeat(let b) = $0, let a = b.running.first, a.step > 0 { a } else { nil }
        }
        #expect(first.trial == "t-long" && first.attempt == 3)
        let later = try coordinator.expect("an advanced position", within: .seconds(60)) {
            if case .heartbeat(let b) = $0, let a = b.running.first, (a.epoch, a.step) != (first.epoch, first.step) { a } else { nil }
        }
        #expect((later.epoch, later.step) > (first.epoch, first.step))

        try coordinator.send(.drop(.init(trial: "t-long", attempt: 3, reason: "attempt 4 holds the trial")))
        var afterDrop: [Message] = []
        _ = try coordinator.expect("ready after the drop", within: .seconds(60)) { message in
            afterDrop.append(message)
            if case .ready = message { return true } else { return nil }
        }
        #expect(!afterDrop.contains { $0.isDone || $0.isFailed })
        let beat = try coordinator.expect("an idle heartbeat") { if case .heartbeat(let b) = $0 { b } else { nil } }
        #expect(beat.running.isEmpty)
        try coordinator.send(.shutdown(.init(reason: "done")))
        #expect(worker.exit() == .shutdown(reason: "done"))
    }

    /// The coordinator's socket goes away mid-trial and comes back at the same TCP address: the worker says hello
    /// with the attempt it holds and resends what was not acknowledged; training never stopped. Then a release
    /// (SIGTERM's path) stops the trial, sends its checkpoint and a retryable failure, and ends `run`.
    @Test func reconnectsToARestartedCoordinatorThenReleasesItsTrial() throws {
        let context = try ZMQContext()
        let timing = workerTiming()
        let coordinator = try ScriptedCoordinator(context, bind: "tcp://127.0.0.1:*", workerID: "w-pirate", timing: timing)
        let checkpoints = try TemporaryDirectory()
        let config = try TinyTrial.config(epochs: 500)
        let worker = TinyTrial.worker(coordinator, id: "w-pirate", checkpoints: checkpoints.url)
        defer { worker.stop() }
        _ = try coordinator.expect("ready") { if case .ready = $0 { true } else { nil } }

        try coordinator.send(.assign(.init(trial: "t-pirate", attempt: 11, config: config)))
        let unacknowledged: [Message] = [
            try coordinator.expect("progress 1", within: .seconds(60)) { message -> Message? in
                if case .progress = message { message } else { nil }
            },
            try coordinator.expect("checkpoint 1", within: .seconds(60)) { message -> Message? in
                if case .checkpoint = message { message } else { nil }
            },
        ]
        #expect(unacknowledged.compactMap(\.resultKind) == ["progress 1", "checkpoint 1"])
        guard case .checkpoint(let checkpoint) = unacknowledged[1], case .path(let path) = checkpoint.checkpoint.location else {
            Issue.record("a shared checkpoint goes by path"); return
        }
        #expect(path == checkpoints.url.appendingPathComponent("t-pirate/attempt-11/epoch-\(checkpoint.checkpoint.epoch).safetensors").standardizedFileURL.path)

        try coordinator.restart(after: .milliseconds(600), timing: timing)
        let hello = try coordinator.expect("hello after the restart", within: .seconds(10)) { if case .hello(let h) = $0 { h } else { nil } }
        #expect(hello.held.count == 1)
        #expect(hello.held.first.map { $0.trial == "t-pirate" && $0.attempt == 11 && $0.lastEpoch >= 1 } == true)
        var resent: [Message] = []
        while resent.count < 2 {
            resent.append(try coordinator.expect("a resend") { $0.messageID != nil ? $0 : nil })
        }
        #expect(resent == unacknowledged)
        try coordinator.send(.ack(.init(messageIDs: [1, 2])))
        #expect(worker.client.statistics.reconnects >= 1)

        worker.client.release(reason: "released by SIGTERM")
        let tail = try coordinator.results(until: \.isFailed)
        guard case .failed(let failed) = tail.last, case .checkpoint(let last) = tail.dropLast().last else {
            Issue.record("expected a checkpoint then failed: \(tail.compactMap(\.resultKind))"); return
        }
        #expect(failed.reason == "released by SIGTERM" && failed.retryable && failed.attempt == 11)
        #expect(tail.compactMap { if case .progress(let p) = $0 { p.epoch } else { nil } }.last == last.checkpoint.epoch)
        #expect(worker.exit() == .released(reason: "released by SIGTERM"))
    }
}

/// The pieces that need no sockets: resume checkpoints, failure kinds, local endpoints.
@Suite struct WorkerPartsTests {
    @Test func resumeCheckpointsAreMaterialisedInTheTrialDirectory() throws {
        let root = try TemporaryDirectory()
        let trial = root.url.appendingPathComponent("t-1")
        try FileManager.default.createDirectory(at: trial, withIntermediateDirectories: true)
        let target = trial.appendingPathComponent("checkpoint.safetensors")

        try ResumeCheckpoint.materialise(.init(epoch: 1, location: .inline(Data([1, 2, 3]))), in: trial, confinedTo: root.url)
        #expect(try Data(contentsOf: target) == Data([1, 2, 3]))

        let elsewhere = root.url.appendingPathComponent("shared/t-1")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try Data([4, 5]).write(to: elsewhere.appendingPathComponent("checkpoint.safetensors"))
        try ResumeCheckpoint.materialise(.init(epoch: 2, location: .path(elsewhere.appendingPathComponent("checkpoint.safetensors").path)), in: trial, confinedTo: root.url)
        #expect(try Data(contentsOf: target) == Data([4, 5]))
        try Data([6]).write(to: elsewhere.appendingPathComponent("checkpoint.safetensors"))
        try ResumeCheckpoint.materialise(.init(epoch: 3, location: .path(elsewhere.path)), in: trial, confinedTo: root.url)
        #expect(try Data(contentsOf: target) == Data([6]), "a directory path names its checkpoint")

        try ResumeCheckpoint.materialise(.init(epoch: 3, location: .path(target.path)), in: trial, confinedTo: root.url)
        #expect(try Data(contentsOf: target) == Data([6]), "already in place")
        #expect(!FileManager.default.fileExists(atPath: target.path + ".partial"))

        #expect(throws: ResumeCheckpointMissing.self) {
            try ResumeCheckpoint.materialise(.init(epoch: 1, location: .path(root.url.appendingPathComponent("gone").path)), in: trial, confinedTo: root.url)
        }
    }

    /// What cannot succeed on retry (a bad configuration, a missing or unreadable model or data file, a full
    /// disk) is `permanent`; a resume checkpoint missing on this host, and anything unforeseen, an `error`.
    @Test func errorsThatCannotSucceedOnRetryArePermanent() {
        typealias Kind = Message.Failed.Kind
        #expect(Kind.classifying(MethodError("rank must be at least 1 (got 0)")) == .permanent)
        #expect(Kind.classifying(LoadErrorSample.configuration) == .permanent)
        #expect(Kind.classifying(LoadErrorSample.unreadable) == .permanent)
        #expect(Kind.classifying(CocoaError(.fileReadNoSuchFile)) == .permanent)
        #expect(Kind.classifying(POSIXError(.ENOSPC)) == .permanent)
        #expect(Kind.classifying(CocoaError(.fileWriteOutOfSpace)) == .permanent)
        #expect(Kind.classifying(ResumeCheckpointMissing(path: "/x")) == .error)
        #expect(Kind.classifying(POSIXError(.ECONNRESET)) == .error)
    }

    /// A resume path outside the checkpoint directory is refused unread: `..`, another absolute path, a symlink
    /// inside pointing out. Failed before the fix (each was copied into the trial's directory).
    @Test func resumePathsOutsideTheCheckpointDirectoryAreRefused() throws {
        let base = try TemporaryDirectory()
        let root = base.url.appendingPathComponent("checkpoints")
        let trial = root.appendingPathComponent("t-1")
        try FileManager.default.createDirectory(at: trial, withIntermediateDirectories: true)
        let secret = base.url.appendingPathComponent("secret")
        try Data("not a checkpoint".utf8).write(to: secret)
        let link = root.appendingPathComponent("t-2")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: base.url)
        for path in [root.path + "/../secret", secret.path, link.appendingPathComponent("secret").path] {
            #expect(throws: ResumeCheckpointOutside.self, "\(path)") {
                try ResumeCheckpoint.materialise(.init(epoch: 1, location: .path(path)), in: trial, confinedTo: root)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: trial.appendingPathComponent("checkpoint.safetensors").path))
        #expect(CheckpointConfinement.problem(root.path + "/t-1/checkpoint.safetensors", in: CheckpointConfinement.resolved(root)) == nil)
        #expect(CheckpointConfinement.problem("relative/checkpoint.safetensors", in: CheckpointConfinement.resolved(root)) != nil)
    }

    /// A resume checkpoint is used only if it holds the epoch the assignment names, inline or by path.
    @Test func aResumeCheckpointMustHoldTheAssignedEpoch() throws {
        let root = try TemporaryDirectory()
        let attempt = root.url.appendingPathComponent("t-1/attempt-5")
        try FileManager.default.createDirectory(at: attempt, withIntermediateDirectories: true)
        let runner = SimulatedTrainer(epochSeconds: 0)
        let epochThree = try JSONEncoder().encode(SimulatedCheckpoint.Contents(simulatedEpoch: 3))
        try ResumeCheckpoint.materialise(.init(epoch: 3, location: .inline(epochThree)), in: attempt, confinedTo: root.url, runner: runner)
        #expect(try runner.checkpointEpoch(in: attempt) == 3)
        let error = try #require(throws: ResumeEpochMismatch.self) {
            try ResumeCheckpoint.materialise(.init(epoch: 2, location: .inline(epochThree)), in: attempt, confinedTo: root.url, runner: runner)
        }
        #expect(error.found == 3 && error.assigned == 2)
        #expect("\(error)".contains("holds epoch 3") && "\(error)".contains("resumes from epoch 2") && "\(error)".contains("inline"), "\(error)")
    }

    /// Found by the chaos benchmark: a trial requeued to its newest recorded checkpoint (epoch 2) found the
    /// attempt's file rewritten by a later checkpoint (epoch 4) whose message was never recorded.
    @Test func aRecordedCheckpointPathKeepsItsEpoch() throws {
        let root = try TemporaryDirectory()
        let attempt = root.url.appendingPathComponent("t-1/attempt-5")
        let location = CheckpointLocation(shared: true, inlineLimit: 0, logger: CapturedLogs().logger())
        let runner = SimulatedTrainer(epochSeconds: 0)
        try SimulatedCheckpoint.write(epoch: 2, to: attempt)
        let second = try #require(location.reference(epoch: 2, directory: attempt))
        try SimulatedCheckpoint.write(epoch: 4, to: attempt)
        let fourth = try #require(location.reference(epoch: 4, directory: attempt))
        guard case .path(let path) = second.location, case .path(let later) = fourth.location else {
            Issue.record("shared checkpoints go by path"); return
        }
        #expect(path != later && path.hasSuffix("attempt-5/epoch-2.safetensors"), "\(path)")
        let resumed = root.url.appendingPathComponent("t-1/attempt-6")
        try FileManager.default.createDirectory(at: resumed, withIntermediateDirectories: true)
        try ResumeCheckpoint.materialise(second, in: resumed, confinedTo: root.url, runner: runner)
        #expect(try runner.checkpointEpoch(in: resumed) == 2)
        // Once epoch 4 is recorded, epoch 2's file goes; epoch 4's stays.
        CheckpointFiles.prune(before: 4, in: attempt)
        #expect(!FileManager.default.fileExists(atPath: path) && FileManager.default.fileExists(atPath: later))
    }

    @Test func aCoordinatorOnThisHostSeesItsFiles() {
        for endpoint in ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555", "inproc://x", "ipc:///tmp/s"] {
            #expect(WorkerSettings.coordinatorIsLocal(endpoint), "\(endpoint)")
        }
        for endpoint in ["tcp://head:5555", "tcp://10.0.0.2:5555", "tcp://[fe80::1]:5555"] {
            #expect(!WorkerSettings.coordinatorIsLocal(endpoint), "\(endpoint)")
        }
    }
}

private enum LoadErrorSample {
    static let configuration = LoadError.badConfiguration(file: "config.json", reason: "hidden_size is missing")
    static let unreadable = LoadError.unreadable(file: "model.safetensors", reason: "No such file")
}
