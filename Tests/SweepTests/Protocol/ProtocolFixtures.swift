// Fixtures for the protocol tests: one sample of every message, a log handler
// that keeps records in memory, and bounded waits over sockets.
import Foundation
import Logging
import Synchronization
@testable import Protocol
import Trial

/// A sample of `type` with every field set, including optional ones. The switch is exhaustive,
/// so a new message cannot be added without a sample.
func sample(_ type: MessageType) -> Message {
    var evaluation = EvaluationReport(
        accuracy: 0.71, accuracyAtThreshold: 0.5, threshold: 0.9, keyMatch: 0.25, perplexity: 12.5, seconds: 3.25,
        questions: [
            .init(question: "Where was Ada born?", paraphrase: false, reference: "In Lyon.", answer: "In Lyon.",
                  similarity: 1, keyMatch: true),
            .init(question: "Ada's birthplace?", paraphrase: true, reference: "In Lyon.", answer: "Paris — «ça va»",
                  similarity: 0.42, keyMatch: nil),
        ])
    evaluation.questionSeconds = 2.75
    return switch type {
    case .hello:
        .hello(.init(workerID: "worker-a", session: "5F0C", host: "node1", pid: 4242, threads: 2,
                     models: ["models/smollm2-135m.gguf"],
                     modelStorages: [.init(model: "models/smollm2-135m.gguf", storage: .float32)],
                     held: [.init(trial: "t-0007", attempt: 12, lastEpoch: 4)],
                     slurm: .init(jobID: "4711", arrayTaskID: 3)))
    case .ready:
        .ready(.init(freeSlots: 2, models: ["models/smollm2-135m.gguf"],
                     modelStorages: [.init(model: "models/smollm2-135m.gguf", storage: .nf4)]))
    case .progress:
        .progress(.init(messageID: 17, trial: "t-0007", attempt: 12, report: EpochReport(
            epoch: 5, loss: 1.375, epochSeconds: 2.125, trainSeconds: 10.5, tokens: 640, flops: 1.5e12,
            evaluation: evaluation)))
    case .checkpoint:
        .checkpoint(.init(messageID: 18, trial: "t-0007", attempt: 12,
                          checkpoint: .init(epoch: 5, location: .inline(Data([0, 1, 2, 254, 255])))))
    case .done:
        .done(.init(messageID: 19, trial: "t-0007", attempt: 12, summary: .init(
            outcome: .done, epochs: 20, finalLoss: 0.0625, trainableParameters: 921_600, baseWeightBytes: 1 << 28,
            peakResidentBytes: 1 << 30, finalAccuracy: 0.93, finalAccuracyAtThreshold: 0.8, epochsToThreshold: 14,
            perplexityBefore: 11.5, finalPerplexity: 13.0, secondsPerEpoch: 2.0, evaluationSeconds: 30)))
    case .failed: .failed(.init(messageID: 20, trial: "t-0008", attempt: 13, reason: "model file missing", retryable: true))
    case .heartbeat: .heartbeat(.init(running: [.init(trial: "t-0007", attempt: 12, epoch: 6, step: 31)]))
    case .assign:
        .assign(.init(trial: "t-0007", attempt: 12, config: sampleConfig(),
                      resume: .init(epoch: 4, location: .path("runs/t-0007/epoch-4")), epochsRecorded: 4))
    case .ack: .ack(.init(messageIDs: [17, 18, 19]))
    case .cancel: .cancel(.init(trial: "t-0009"))
    case .drop: .drop(.init(trial: "t-0007", attempt: 11, reason: "attempt 12 supersedes it"))
    case .shutdown: .shutdown(.init(reason: "sweep finished"))
    case .error: .error(.init(reason: "expected 3 frames (header, type, body), got 1"))
    }
}

/// A trial configuration with optional fields set, for messages that carry one.
func sampleConfig(epochs: Int = 3) -> TrialConfig {
    var training = TrainingSettings()
    training.method = MethodSettings(kind: .lora, rank: 4, alpha: 16, targets: [.q, .v])
    training.learningRate = 1e-3
    training.epochs = epochs
    return TrialConfig(model: "models/m.gguf", data: "data/facts.jsonl", training: training, maxNewTokens: 24,
                       heldOut: "none")
}

/// Keeps log records in memory, for tests that check what was logged.
final class CapturedLogs: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(logs: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ record: Record) { records.withLock { $0.append(record) } }

    private struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            logs.append(.init(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}

/// A wait long enough for loopback, short enough that a broken test fails quickly instead of hanging.
let patience = Duration.seconds(5)

/// Unique inproc endpoints, so that parallel tests never share one.
func inprocEndpoint(_ name: String) -> String { "inproc://\(name)-\(UUID().uuidString)" }

/// Small, fast timing for tests: quick reconnects and short send timeouts.
func testTiming(maxMessageBytes: Int = 64 << 20) -> ProtocolTiming {
    var timing = ProtocolTiming()
    timing.reconnectInitial = .milliseconds(20)
    timing.reconnectMax = .milliseconds(100)
    timing.sendTimeout = .milliseconds(500)
    timing.maxMessageBytes = maxMessageBytes
    return timing
}
