// The three-frame encoding: every message round-trips, and every kind of bad
// input is refused with its own ProtocolError.
import Foundation
import Testing
@testable import Protocol
import Trial

@Suite struct MessageCodecTests {
    @Test(arguments: MessageType.allCases)
    func everyMessageRoundTrips(_ type: MessageType) throws {
        let message = sample(type)
        #expect(message.type == type)
        let frames = try Message.encode(message)
        #expect(frames.count == 3)
        #expect(frames[0] == Data("factsweep/4".utf8))
        #expect(frames[1] == Data([type.rawValue]))
        #expect(try Message.decode(frames) == message)
    }

    @Test func codesAndNamesAreDistinct() {
        #expect(Set(MessageType.allCases.map(\.rawValue)).count == MessageType.allCases.count)
        #expect(Set(MessageType.allCases.map(\.description)).count == MessageType.allCases.count)
        #expect(MessageType.error.rawValue == 0x7F, "the error code is the same in every version")
    }

    @Test func wireNamesAreSnakeCase() throws {
        let body = try Message.encode(sample(.progress))[2]
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(Set(object.keys) == ["message_id", "trial", "attempt", "report"])
        // The report is the Trial module's EpochReport as checkpoints keep it (docs/protocol.md).
        let report = try #require(object["report"] as? [String: Any])
        #expect(Set(report.keys) == ["epoch", "loss", "trainSeconds", "epochSeconds", "tokens", "flops", "evaluation"])
        let evaluation = try #require(report["evaluation"] as? [String: Any])
        #expect(evaluation["accuracyAtThreshold"] != nil && evaluation["keyMatch"] != nil && evaluation["questions"] != nil)
        let done = try #require(try JSONSerialization.jsonObject(with: try Message.encode(sample(.done))[2]) as? [String: Any])
        let summary = try #require(done["summary"] as? [String: Any])
        #expect(summary["outcome"] as? String == "done" && summary["trainable_params"] != nil && summary["peak_rss_bytes"] != nil)
        let hello = try #require(try JSONSerialization.jsonObject(with: try Message.encode(sample(.hello))[2]) as? [String: Any])
        let storages = try #require(hello["model_storages"] as? [[String: Any]])
        #expect(storages.first?["model"] as? String == "models/smollm2-135m.gguf" && storages.first?["storage"] as? String == "float32")
        let inline = try Message.encode(sample(.checkpoint))[2]
        #expect(String(decoding: inline, as: UTF8.self).contains(#""inline":"AAEC/v8=""#))
    }

    @Test func onlyResultsCarryMessageIDs() {
        let results: Set<MessageType> = [.progress, .checkpoint, .done, .failed]
        for type in MessageType.allCases {
            #expect((sample(type).messageID != nil) == results.contains(type), "\(type)")
        }
    }

    @Test func aDivergedLossTravelsAsNaN() throws {
        let progress = Message.progress(.init(messageID: 1, trial: "t", attempt: 1,
                                              report: EpochReport(epoch: 3, loss: .nan, epochSeconds: 1, trainSeconds: 1)))
        let frames = try Message.encode(progress)
        #expect(String(decoding: frames[2], as: UTF8.self).contains(#""loss":"nan""#))
        guard case .progress(let decoded) = try Message.decode(frames) else { Issue.record("not progress"); return }
        #expect(decoded.report.loss.isNaN)
    }

    /// Run databases written by protocol version 1 store summaries with `diverged` and no outcome:
    /// status and report still read them.
    @Test func aVersionOneSummaryStillReads() throws {
        let stored = #"{"diverged":true,"epochs":3,"evaluation_seconds":0,"final_loss":"nan","peak_rss_bytes":1,"#
            + #""seconds_per_epoch":2,"trainable_params":8}"#
        let summary = try TrialJSON.decoder().decode(TrialSummary.self, from: Data(stored.utf8))
        #expect(summary.outcome == .diverged && summary.epochs == 3 && summary.finalLoss?.isNaN == true)
        #expect(summary.baseWeightBytes == nil && summary.finalAccuracy == nil)
        let done = stored.replacingOccurrences(of: #""diverged":true"#, with: #""diverged":false"#)
        #expect(try TrialJSON.decoder().decode(TrialSummary.self, from: Data(done.utf8)).outcome == .done)
        // And a NaN loss written today reads back as NaN, not as an error.
        let again = try TrialJSON.decoder().decode(TrialSummary.self, from: try TrialJSON.encoder().encode(summary))
        #expect(again.outcome == .diverged && again.finalLoss?.isNaN == true)
    }

    @Test func garbageIsRefusedByKind() throws {
        let good = try Message.encode(sample(.hello))
        func refusal(_ frames: [Data]) -> ProtocolError? {
            do { _ = try Message.decode(frames); return nil } catch { return error }
        }
        #expect(refusal([]) == .badFrameCount(0))
        #expect(refusal([Data("GET / HTTP/1.1\r\n".utf8)]) == .badFrameCount(1))
        #expect(refusal(good + [Data()]) == .badFrameCount(4))
        #expect(refusal([Data("MDPW01".utf8), good[1], good[2]]) == .badHeader(Data("MDPW01".utf8)))
        #expect(refusal([Data("factsweep/x".utf8), good[1], good[2]]) == .badHeader(Data("factsweep/x".utf8)))
        #expect(refusal([Data("factsweep/1".utf8), good[1], good[2]]) == .wrongVersion(found: 1))
        #expect(refusal([good[0], Data([0x42]), good[2]]) == .unknownType(Data([0x42])))
        #expect(refusal([good[0], Data([0x01, 0x02]), good[2]]) == .unknownType(Data([0x01, 0x02])))
        #expect(refusal([good[0], good[1], Data(repeating: 0, count: 200)])?.label == "malformed_body")
    }

    @Test func malformedBodiesNameTheTypeAndTheProblem() throws {
        let good = try Message.encode(sample(.hello))
        func reason(_ type: MessageType, _ body: String) -> String? {
            do {
                _ = try Message.decode([good[0], Data([type.rawValue]), Data(body.utf8)])
                return nil
            } catch {
                guard case .malformedBody(let found, let reason) = error, found == type else { return "wrong error \(error)" }
                return reason
            }
        }
        let truncated = String(decoding: good[2].prefix(good[2].count / 2), as: UTF8.self)
        #expect(reason(.hello, truncated)?.contains("not valid JSON") == true)
        #expect(reason(.ready, "{}") == "missing field free_slots")
        #expect(reason(.ready, #"{"free_slots":"two"}"#) == "field free_slots: expected Int")
        #expect(reason(.ack, #"{"message_ids":[1,null]}"#)?.contains("message_ids.[1]") == true)
        // A storage no worker loads (a newer build's, or a typo) is refused by name, not taken as Float32.
        #expect(reason(.ready, #"{"free_slots":1,"model_storages":[{"model":"m","storage":"f16"}]}"#)?
            .contains("model_storages.[0].storage") == true)
        #expect(reason(.ready, #"{"free_slots":1,"model_storages":[{"storage":"nf4"}]}"#)?.contains("model") == true)
        #expect(reason(.checkpoint, #"{"message_id":1,"trial":"t","attempt":1,"checkpoint":{"epoch":1}}"#)?
            .contains("exactly one of path and inline") == true)
        var hello = try #require(try JSONSerialization.jsonObject(with: good[2]) as? [String: Any])
        hello["protocol_version"] = 1
        let mismatched = String(decoding: try JSONSerialization.data(withJSONObject: hello), as: UTF8.self)
        #expect(reason(.hello, mismatched) == "protocol_version 1 differs from the header's \(ProtocolVersion.current)")
    }

    /// Values that pass as JSON but that no worker of ours sends, and that the coordinator met deep inside
    /// (a NaN duration failed a NOT NULL column, a slot count of Int.min trapped, an id at Int64.max
    /// overflowed the ledger, 33,000 models overflowed SQLite's parameters): refused at decode, by rule.
    @Test func bodiesBreakingARuleAreRefusedByName() throws {
        func reason(_ message: Message) -> String? {
            do {
                _ = try Message.decode(try Message.encode(message))
                return nil
            } catch {
                guard case .malformedBody(let type, let reason) = error, type == message.type else { return "wrong error \(error)" }
                return reason
            }
        }
        func progress(id: MessageID = 1, _ edit: (inout EpochReport) -> Void) -> Message {
            var report = EpochReport(epoch: 1, loss: .nan, epochSeconds: 1, trainSeconds: 1)
            edit(&report)
            return .progress(.init(messageID: id, trial: "t", attempt: 1, report: report))
        }
        // A NaN loss is a diverged trial's, and fine.
        #expect(reason(progress { _ in }) == nil)
        #expect(reason(progress { $0.trainSeconds = .nan }) == "report.trainSeconds is nan")
        #expect(reason(progress { $0.epochSeconds = -1 }) == "report.epochSeconds is -1.0")
        #expect(reason(progress { $0.epochSeconds = .infinity }) == "report.epochSeconds is inf")
        #expect(reason(progress { $0.epoch = -2 }) == "report.epoch is -2, not in 0…1000000")
        #expect(reason(progress { $0.epoch = .max })?.hasPrefix("report.epoch is 9223372036854775807") == true)
        #expect(reason(progress { $0.tokens = -1 }) == "report.tokens is -1")
        #expect(reason(progress { $0.flops = .nan }) == "report.flops is nan")
        let question = QuestionResult(question: "q", paraphrase: false, reference: "r", answer: "a", similarity: .nan, keyMatch: nil)
        let evaluation = EvaluationReport(accuracy: 0.5, accuracyAtThreshold: 0.5, threshold: 0.8, keyMatch: nil, perplexity: nil,
                                          seconds: 1, questions: [question])
        #expect(reason(progress { $0.evaluation = evaluation }) == "report.evaluation.questions[0].similarity is NaN")
        var noAccuracy = evaluation
        noAccuracy.accuracy = .nan
        #expect(reason(progress { $0.evaluation = noAccuracy }) == "report.evaluation.accuracy is NaN")
        #expect(reason(progress(id: 0) { _ in }) == "message id 0 is outside 1…\(Message.maxMessageID)")
        #expect(reason(progress(id: .max) { _ in })?.hasPrefix("message id 9223372036854775807 is outside") == true)
        #expect(reason(.ack(.init(messageIDs: [3, -1]))) == "message id -1 is outside 1…\(Message.maxMessageID)")
        #expect(reason(.ready(.init(freeSlots: -1))) == "free_slots is -1")
        #expect(reason(.heartbeat(.init(running: [], freeSlots: .min))) == "free_slots is \(Int.min)")
        #expect(reason(.heartbeat(.init(running: [], freeSlots: nil))) == nil)
        // What a worker counts on from: an assign resuming at epoch Int.max trapped its next epoch.
        guard case var .assign(assign) = sample(.assign) else { Issue.record("no sample assign"); return }
        #expect(reason(.assign(assign)) == nil)
        assign.resume = CheckpointRef(epoch: .max, location: .inline(Data()))
        #expect(reason(.assign(assign)) == "resume.epoch is \(Int.max), not in 0…1000000")
        assign.resume = nil
        assign.epochsRecorded = -1
        #expect(reason(.assign(assign)) == "epochs_recorded is -1, not in 0…1000000")
        assign.epochsRecorded = 0
        assign.config.training.epochs = 1_000_001
        #expect(reason(.assign(assign)) == "config.training.epochs is 1000001, not in 1…1000000")
        let many = (0...Message.maxModels).map { "m\($0)" }
        #expect(reason(.hello(.init(workerID: "w", session: "s", host: "h", pid: 1, threads: 1, models: many)))
            == "models lists \(Message.maxModels + 1) models, at most \(Message.maxModels)")
        #expect(reason(.hello(.init(workerID: "w", session: "s", host: "h", pid: 1, threads: 1, models: Array(many.dropLast())))) == nil)
        #expect(reason(.ready(.init(freeSlots: 1, models: many))) == "models lists \(Message.maxModels + 1) models, at most \(Message.maxModels)")
        #expect(reason(.ready(.init(freeSlots: 1, models: Array(many.dropLast())))) == nil)
        let manyStorages = many.map { Message.ModelStorage(model: $0, storage: .bf16) }
        #expect(reason(.hello(.init(workerID: "w", session: "s", host: "h", pid: 1, threads: 1, modelStorages: manyStorages)))
            == "model_storages lists \(Message.maxModels + 1) models, at most \(Message.maxModels)")
        #expect(reason(.ready(.init(freeSlots: 1, modelStorages: manyStorages)))
            == "model_storages lists \(Message.maxModels + 1) models, at most \(Message.maxModels)")
        #expect(reason(.ready(.init(freeSlots: 1, modelStorages: Array(manyStorages.dropLast())))) == nil)
    }

    @Test func anErrorIsReadWhateverItsVersion() throws {
        let frames = [Data("factsweep/7".utf8), Data([0x7F]), Data(#"{"reason":"speaks factsweep/1; this peer speaks factsweep/7"}"#.utf8)]
        #expect(try Message.decode(frames) == .error(.init(reason: "speaks factsweep/1; this peer speaks factsweep/7")))
        #expect(throws: ProtocolError.wrongVersion(found: 7)) { try Message.decode([frames[0], frames[1], Data("{}".utf8)]) }
    }

    @Test func unknownKeysAreIgnored() throws {
        let good = try Message.encode(sample(.ready))
        let frames = [good[0], good[1], Data(#"{"free_slots":3,"gpu":"none"}"#.utf8)]
        #expect(try Message.decode(frames) == .ready(.init(freeSlots: 3)))
        // A ready's models are read when present: the coordinator claims on them.
        let listed = [good[0], good[1], Data(#"{"free_slots":1,"models":["models/a"]}"#.utf8)]
        #expect(try Message.decode(listed) == .ready(.init(freeSlots: 1, models: ["models/a"])))
        let stored = [good[0], good[1], Data(#"{"free_slots":1,"models":["models/a"],"model_storages":[{"model":"models/a","storage":"nf4"}]}"#.utf8)]
        #expect(try Message.decode(stored) == .ready(.init(freeSlots: 1, models: ["models/a"],
                                                           modelStorages: [.init(model: "models/a", storage: .nf4)])))
    }

    /// `failed` names the settings a refusing worker does not read under `unread_settings`; a `failed`
    /// without it (every other failure, and workers built before it) reads as before and is no refusal.
    @Test func aRefusalNamesTheSettingsItDoesNotRead() throws {
        let refusal = Message.failed(.init(messageID: 4, trial: "t-1", attempt: 2, reason: "does not know config.training.x",
                                           kind: .error, unreadSettings: ["config.training.x"]))
        let frames = try Message.encode(refusal)
        let body = try #require(try JSONSerialization.jsonObject(with: frames[2]) as? [String: Any])
        #expect(body["unread_settings"] as? [String] == ["config.training.x"])
        guard case .failed(let decoded) = try Message.decode(frames) else { Issue.record("not failed"); return }
        #expect(Message.failed(decoded) == refusal && decoded.refusedUnreadSettings)
        let plain = #"{"message_id":4,"trial":"t-1","attempt":2,"reason":"boom","retryable":true,"kind":"error"}"#
        guard case .failed(let older) = try Message.decode([frames[0], frames[1], Data(plain.utf8)]) else { Issue.record("not failed"); return }
        #expect(older.unreadSettings == nil && !older.refusedUnreadSettings)
        // Only a retryable error is a refusal: a permanent failure naming settings stays permanent.
        let permanent = Message.Failed(messageID: 5, trial: "t-1", attempt: 2, reason: "r", kind: .permanent, unreadSettings: ["x"])
        #expect(!permanent.refusedUnreadSettings)
        #expect(!Message.Failed(messageID: 6, trial: "t-1", attempt: 2, reason: "r", kind: .error, unreadSettings: []).refusedUnreadSettings)
    }

    /// An assign's members this build does not read are named, at any depth, so the worker can refuse
    /// what it would otherwise ignore (version 4). Null asks for nothing; what this build sends has none.
    @Test func anAssignsUnknownMembersAreNamed() throws {
        let good = try Message.encode(sample(.assign))
        guard case .assign(let plain) = try Message.decode(good) else { Issue.record("not assign"); return }
        #expect(plain.unknownFields.isEmpty)

        var body = try #require(try JSONSerialization.jsonObject(with: good[2]) as? [String: Any])
        var config = try #require(body["config"] as? [String: Any])
        var training = try #require(config["training"] as? [String: Any])
        var optimizer = try #require(training["optimizer"] as? [String: Any])
        optimizer["amsgrad"] = true
        training["optimizer"] = optimizer
        training["dropoutSchedule"] = "linear"
        config["training"] = training
        config["tokenizer"] = NSNull()
        body["config"] = config
        body["priority"] = 1
        let frames = [good[0], good[1], try JSONSerialization.data(withJSONObject: body)]
        guard case .assign(let assign) = try Message.decode(frames) else { Issue.record("not assign"); return }
        #expect(assign.unknownFields == ["config.training.dropoutSchedule", "config.training.optimizer.amsgrad", "priority"])
        // Everything it knows reads as sent.
        #expect(assign.config == plain.config && assign.resume == plain.resume && assign.epochsRecorded == plain.epochsRecorded)
    }

    /// Every optional setting set, an inline resume: what this build sends, it reads whole.
    @Test func aFullAssignHasNoUnknownMembers() throws {
        var config = sampleConfig()
        config.training.precision = .bf16
        config.training.optimizer = AdamWSettings(maxGradNorm: nil, moments: .bf16, updateInBackward: true)
        config.training.initAdapter = "adapters/start"
        config.training.decay = .cosine
        config.training.method.dropout = 0.05
        config.evalEpochs = [0, 2]
        config.embedder = "models/minilm"
        let message = Message.assign(.init(trial: "t-1", attempt: 3, config: config,
                                           resume: .init(epoch: 2, location: .inline(Data([0, 1, 2, 255]))), epochsRecorded: 2))
        let decoded = try Message.decode(try Message.encode(message))
        guard case .assign(let assign) = decoded else { Issue.record("not assign"); return }
        #expect(assign.unknownFields.isEmpty, "\(assign.unknownFields)")
        #expect(decoded == message)
    }

    @Test func unknownMembersArePathsThroughObjectsAndLists() throws {
        func value(_ text: String) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }
        let understood = try value(#"{"a":[{"x":1},{"x":2}],"b":{"c":"d"},"e":3}"#)
        #expect(UnknownFields.paths(received: understood, understood: understood).isEmpty)
        let received = try value(#"{"a":[{"x":1},{"x":2,"y":0}],"b":{"c":"d","f":{"g":1}},"e":3,"h":null,"i":[]}"#)
        #expect(UnknownFields.paths(received: received, understood: understood) == ["a[1].y", "b.f", "i"])
    }

    @Test func oversizedFramesAreNeitherBuiltNorRead() throws {
        let big = Message.checkpoint(.init(messageID: 1, trial: "t", attempt: 1,
                                           checkpoint: .init(epoch: 1, location: .inline(Data(count: 3000)))))
        let frames = try Message.encode(big)
        let refusal = ProtocolError.oversized(bytes: frames[2].count, limit: 4000)
        #expect(frames[2].count > 4000)
        #expect(throws: refusal) { try Message.encode(big, maxFrameBytes: 4000) }
        #expect(throws: refusal) { try Message.decode(frames, maxFrameBytes: 4000) }
    }
}

@Suite struct ProtocolTimingTests {
    @Test func defaults() {
        let timing = ProtocolTiming()
        #expect(timing.heartbeatInterval == .seconds(1) && timing.heartbeatLiveness == 5)
        #expect(timing.peerDeadAfter == .seconds(5))
        #expect(timing.maxMessageBytes == 64 << 20)
        #expect(timing.inlineCheckpointLimit * 4 / 3 < timing.maxMessageBytes, "an inline checkpoint in base64 fits")
    }

    @Test func reconnectBackOffDoublesUpToTheMaximum() {
        let timing = ProtocolTiming()
        let delays = (0..<8).map { timing.reconnectDelay(afterFailures: $0) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 32, 32].map { Duration.seconds($0) })
    }

    @Test func clusterJSONOverridesSomeKeysAndRefusesNonsense() throws {
        let timing = try JSONDecoder().decode(
            ProtocolTiming.self, from: Data(#"{"heartbeat_interval_seconds":0.25,"lease_expiry_seconds":600}"#.utf8))
        #expect(timing.heartbeatInterval == .milliseconds(250) && timing.leaseExpiry == .seconds(600))
        #expect(timing.heartbeatLiveness == 5)
        let again = try JSONDecoder().decode(ProtocolTiming.self, from: JSONEncoder().encode(timing))
        #expect(again == timing)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ProtocolTiming.self, from: Data(#"{"heartbeat_liveness":0}"#.utf8))
        }
    }
}
