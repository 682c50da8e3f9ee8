// MessageBodies: the fields of each message (frame 2), with their wire names
// beside the Swift ones. docs/protocol.md lists who sends what.
import Foundation

extension Message {
    /// Worker → coordinator, first on every connection: who it is and what it still runs.
    public struct Hello: Codable, Sendable, Equatable {
        public var workerID: String
        /// Random per process start; message ids are unique within it.
        public var session: String
        public var host: String
        public var pid: Int32
        public var threads: Int
        public var protocolVersion: Int
        /// Models this worker has on hand, as the sweep names them.
        public var models: [String]
        /// Attempts this worker is still running, re-announced after a reconnect.
        public var held: [HeldAttempt]

        public init(workerID: String, session: String, host: String, pid: Int32, threads: Int,
                    protocolVersion: Int = ProtocolVersion.current, models: [String] = [], held: [HeldAttempt] = []) {
            self.workerID = workerID; self.session = session; self.host = host; self.pid = pid; self.threads = threads
            self.protocolVersion = protocolVersion; self.models = models; self.held = held
        }

        enum CodingKeys: String, CodingKey {
            case workerID = "worker_id", session, host, pid, threads, protocolVersion = "protocol_version", models, held
        }
    }

    /// An attempt a worker holds, and the last epoch it finished.
    public struct HeldAttempt: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var lastEpoch: Int

        public init(trial: TrialKey, attempt: AttemptID, lastEpoch: Int) {
            self.trial = trial; self.attempt = attempt; self.lastEpoch = lastEpoch
        }

        enum CodingKeys: String, CodingKey { case trial, attempt, lastEpoch = "last_epoch" }
    }

    /// Worker → coordinator: it can start this many more trials now.
    public struct Ready: Codable, Sendable, Equatable {
        public var freeSlots: Int

        public init(freeSlots: Int) { self.freeSlots = freeSlots }

        enum CodingKeys: String, CodingKey { case freeSlots = "free_slots" }
    }

    /// Worker → coordinator, once per finished epoch.
    public struct Progress: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var epoch: Int
        public var loss: Float
        /// Training time so far, excluding evaluation.
        public var trainSeconds: Double
        public var epochSeconds: Double
        /// Present at evaluation epochs.
        public var evaluation: Evaluation?

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, epoch: Int, loss: Float,
                    trainSeconds: Double, epochSeconds: Double, evaluation: Evaluation? = nil) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.epoch = epoch; self.loss = loss
            self.trainSeconds = trainSeconds; self.epochSeconds = epochSeconds; self.evaluation = evaluation
        }

        enum CodingKeys: String, CodingKey {
            case messageID = "message_id", trial, attempt, epoch, loss
            case trainSeconds = "train_seconds", epochSeconds = "epoch_seconds", evaluation
        }
    }

    /// An evaluation's metrics (Core's `EvaluationReport`, without depending on Core).
    public struct Evaluation: Codable, Sendable, Equatable {
        /// Mean cosine similarity of answers to references.
        public var accuracy: Float
        public var accuracyAtThreshold: Float
        public var threshold: Float
        public var keyMatch: Float?
        public var perplexity: Float?
        public var seconds: Double
        public var answers: [Answer]

        public init(accuracy: Float, accuracyAtThreshold: Float, threshold: Float, keyMatch: Float? = nil,
                    perplexity: Float? = nil, seconds: Double, answers: [Answer] = []) {
            self.accuracy = accuracy; self.accuracyAtThreshold = accuracyAtThreshold; self.threshold = threshold
            self.keyMatch = keyMatch; self.perplexity = perplexity; self.seconds = seconds; self.answers = answers
        }

        enum CodingKeys: String, CodingKey {
            case accuracy, accuracyAtThreshold = "accuracy_at_threshold", threshold, keyMatch = "key_match"
            case perplexity, seconds, answers
        }
    }

    /// One question asked at an evaluation (Core's `QuestionResult`).
    public struct Answer: Codable, Sendable, Equatable {
        public var question: String
        public var paraphrase: Bool
        public var reference: String
        public var answer: String
        public var similarity: Float
        public var keyMatch: Bool?

        public init(question: String, paraphrase: Bool, reference: String, answer: String, similarity: Float,
                    keyMatch: Bool? = nil) {
            self.question = question; self.paraphrase = paraphrase; self.reference = reference; self.answer = answer
            self.similarity = similarity; self.keyMatch = keyMatch
        }

        enum CodingKeys: String, CodingKey {
            case question, paraphrase, reference, answer, similarity, keyMatch = "key_match"
        }
    }

    /// Worker → coordinator: a checkpoint was written.
    public struct Checkpoint: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var checkpoint: CheckpointRef

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, checkpoint: CheckpointRef) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.checkpoint = checkpoint
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, checkpoint }
    }

    /// A checkpoint after `epoch`: a path both hosts can read, or the state itself for small adapters.
    public struct CheckpointRef: Codable, Sendable, Equatable {
        public enum Location: Sendable, Equatable {
            case path(String)
            /// At most `ProtocolTiming.inlineCheckpointLimit` bytes; base64 on the wire.
            case inline(Data)
        }

        public var epoch: Int
        public var location: Location

        public init(epoch: Int, location: Location) { self.epoch = epoch; self.location = location }

        enum CodingKeys: String, CodingKey { case epoch, path, inline }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            epoch = try container.decode(Int.self, forKey: .epoch)
            switch (try container.decodeIfPresent(String.self, forKey: .path),
                    try container.decodeIfPresent(Data.self, forKey: .inline)) {
            case (let path?, nil): location = .path(path)
            case (nil, let bytes?): location = .inline(bytes)
            default:
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath, debugDescription: "a checkpoint needs exactly one of path and inline"))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(epoch, forKey: .epoch)
            switch location {
            case .path(let path): try container.encode(path, forKey: .path)
            case .inline(let bytes): try container.encode(bytes, forKey: .inline)
            }
        }
    }

    /// Worker → coordinator: the trial finished (a diverged run is a result too).
    public struct Done: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var summary: Summary

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, summary: Summary) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.summary = summary
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, summary }
    }

    /// A finished trial's summary (the fields of `factsweep train`'s summary).
    public struct Summary: Codable, Sendable, Equatable {
        public var epochs: Int
        public var finalLoss: Float
        public var diverged: Bool
        public var secondsPerEpoch: Double
        public var evaluationSeconds: Double
        public var trainableParams: Int
        public var peakRSSBytes: Int
        public var finalAccuracy: Float?
        public var finalAccuracyAtThreshold: Float?
        public var epochsToThreshold: Int?
        public var finalPerplexity: Float?
        public var perplexityBefore: Float?
        /// Bytes of the frozen base weights (NF4 for QLoRA): optional, added in version 1.
        public var baseWeightBytes: Int?
        /// The model trained, as the worker loaded it (optional, added in version 1; absent
        /// from older workers and simulated trials): its own name when its files hold one,
        /// its file, how the file stores the weights and what training used
        /// ("GGUF Q4_1 …, dequantised to Float32"), and its parameter count.
        public var modelName: String?
        public var modelFile: String?
        public var modelWeights: String?
        public var modelParameters: Int?

        public init(epochs: Int, finalLoss: Float, diverged: Bool = false, secondsPerEpoch: Double,
                    evaluationSeconds: Double, trainableParams: Int, peakRSSBytes: Int, finalAccuracy: Float? = nil,
                    finalAccuracyAtThreshold: Float? = nil, epochsToThreshold: Int? = nil,
                    finalPerplexity: Float? = nil, perplexityBefore: Float? = nil, baseWeightBytes: Int? = nil,
                    modelName: String? = nil, modelFile: String? = nil, modelWeights: String? = nil, modelParameters: Int? = nil) {
            self.baseWeightBytes = baseWeightBytes
            self.modelName = modelName; self.modelFile = modelFile; self.modelWeights = modelWeights
            self.modelParameters = modelParameters
            self.epochs = epochs; self.finalLoss = finalLoss; self.diverged = diverged
            self.secondsPerEpoch = secondsPerEpoch; self.evaluationSeconds = evaluationSeconds
            self.trainableParams = trainableParams; self.peakRSSBytes = peakRSSBytes; self.finalAccuracy = finalAccuracy
            self.finalAccuracyAtThreshold = finalAccuracyAtThreshold; self.epochsToThreshold = epochsToThreshold
            self.finalPerplexity = finalPerplexity; self.perplexityBefore = perplexityBefore
        }

        enum CodingKeys: String, CodingKey {
            case epochs, finalLoss = "final_loss", diverged, secondsPerEpoch = "seconds_per_epoch"
            case evaluationSeconds = "evaluation_seconds", trainableParams = "trainable_params"
            case peakRSSBytes = "peak_rss_bytes", finalAccuracy = "final_accuracy"
            case finalAccuracyAtThreshold = "final_accuracy_at_threshold", epochsToThreshold = "epochs_to_threshold"
            case finalPerplexity = "final_perplexity", perplexityBefore = "perplexity_before"
            case baseWeightBytes = "base_weight_bytes"
            case modelName = "model_name", modelFile = "model_file", modelWeights = "model_weights"
            case modelParameters = "model_parameters"
        }
    }

    /// Worker → coordinator: the attempt stopped with an error.
    public struct Failed: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var reason: String
        /// Whether another attempt (elsewhere) may succeed: a lost file is, a bad configuration is not.
        public var retryable: Bool

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, reason: String, retryable: Bool) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.reason = reason
            self.retryable = retryable
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, reason, retryable }
    }

    /// Either way, every `ProtocolTiming.heartbeatInterval`: alive, and where each training loop is.
    public struct Heartbeat: Codable, Sendable, Equatable {
        /// Empty from the coordinator and from an idle worker.
        public var running: [Activity]

        public init(running: [Activity] = []) { self.running = running }
    }

    /// Where one training loop is: renews the attempt's lease while `(epoch, step)` advances.
    public struct Activity: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var epoch: Int
        public var step: Int

        public init(trial: TrialKey, attempt: AttemptID, epoch: Int, step: Int) {
            self.trial = trial; self.attempt = attempt; self.epoch = epoch; self.step = step
        }
    }

    /// Coordinator → worker: run this attempt of a trial.
    public struct Assign: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        /// The trial's configuration as canonical JSON text (Core's `TrialConfig.canonicalJSON`).
        public var configJSON: String
        /// nil: start from scratch.
        public var resume: CheckpointRef?
        /// Epochs the store already has; the worker does not send them again.
        public var epochsRecorded: Int

        public init(trial: TrialKey, attempt: AttemptID, configJSON: String, resume: CheckpointRef? = nil,
                    epochsRecorded: Int = 0) {
            self.trial = trial; self.attempt = attempt; self.configJSON = configJSON; self.resume = resume
            self.epochsRecorded = epochsRecorded
        }

        enum CodingKeys: String, CodingKey {
            case trial, attempt, configJSON = "config_json", resume, epochsRecorded = "epochs_recorded"
        }
    }

    /// Coordinator → worker: these result messages are applied; stop resending them.
    public struct Ack: Codable, Sendable, Equatable {
        public var messageIDs: [MessageID]

        public init(messageIDs: [MessageID]) { self.messageIDs = messageIDs }

        enum CodingKeys: String, CodingKey { case messageIDs = "message_ids" }
    }

    /// Coordinator → worker: stop the trial (whatever attempt) and report nothing more for it.
    public struct Cancel: Codable, Sendable, Equatable {
        public var trial: TrialKey

        public init(trial: TrialKey) { self.trial = trial }
    }

    /// Coordinator → worker: this attempt is stale (fenced by a newer one); stop it and forget it.
    public struct Drop: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var reason: String

        public init(trial: TrialKey, attempt: AttemptID, reason: String) {
            self.trial = trial; self.attempt = attempt; self.reason = reason
        }
    }

    /// Coordinator → worker: exit without sending anything more.
    public struct Shutdown: Codable, Sendable, Equatable {
        public var reason: String

        public init(reason: String) { self.reason = reason }
    }

    /// Either way: the last message could not be used, and why. Never answered.
    public struct ErrorReply: Codable, Sendable, Equatable {
        public var reason: String

        public init(reason: String) { self.reason = reason }

        /// The reason prefix of the coordinator's answer to anything but hello
        /// from a worker it does not know (a restarted coordinator reached by
        /// the DEALER's automatic reconnect): the worker says hello again,
        /// announcing what it holds, and resends its unacknowledged results.
        public static let helloRequired = "hello required"

        public var asksForHello: Bool { reason.hasPrefix(Self.helloRequired) }
    }
}
