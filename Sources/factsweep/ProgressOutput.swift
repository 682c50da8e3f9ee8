// ProgressOutput: a one-line progress display on a terminal, JSON lines otherwise.
import Core
import Foundation
import Trial

/// Used from the training thread only.
final class ProgressOutput: @unchecked Sendable {
    let json: Bool
    let isTerminal: Bool
    private var lastAccuracy: Float?

    init(json: Bool) {
        self.json = json || isatty(STDOUT_FILENO) == 0
        isTerminal = isatty(STDERR_FILENO) != 0
    }

    func start(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    func baseline(perplexity: Float) {
        if json { emit(["epoch": 0, "perplexity": Double(perplexity)]) } else { write(String(format: "before training: perplexity %.2f\n", perplexity)) }
    }

    func epoch(_ r: EpochReport, of total: Int) {
        if json {
            // Epoch 0 (the base model, evaluated before training) has no loss.
            var object: [String: Any] = ["epoch": r.epoch, "loss": r.loss.isNaN ? NSNull() : Double(r.loss) as Any,
                                         "epoch_seconds": r.epochSeconds, "train_seconds": r.trainSeconds]
            if let e = r.evaluation {
                object["accuracy"] = Double(e.accuracy)
                object["accuracy_at_threshold"] = Double(e.accuracyAtThreshold)
                object["key_match"] = e.keyMatch.map { Double($0) } ?? NSNull()
                object["perplexity"] = e.perplexity.map { Double($0) } ?? NSNull()
                object["evaluation_seconds"] = e.seconds
                object["question_seconds"] = e.questionSeconds ?? NSNull()
            }
            emit(object)
            return
        }
        if let e = r.evaluation { lastAccuracy = e.accuracy }
        if r.epoch == 0 {
            let accuracy = r.evaluation.map { String(format: "accuracy %.3f", $0.accuracy) } ?? "not evaluated"
            write(String(format: "epoch 0/%d base model, before training: %@  (%.2f s)\n", total, accuracy, r.epochSeconds))
            return
        }
        let width = 24, filled = width * r.epoch / max(total, 1)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let eta = r.trainSeconds / Double(r.epoch) * Double(total - r.epoch)
        let accuracy = lastAccuracy.map { String(format: "  accuracy %.3f", $0) } ?? ""
        let line = String(format: "epoch %d/%d %@ loss %.4f%@  %.2f s/epoch  ETA %.0f s", r.epoch, total, bar, r.loss, accuracy, r.epochSeconds, eta)
        write((isTerminal ? "\r" + line : line) + (isTerminal && r.epoch < total ? "" : "\n"))
    }

    func summary(_ fields: [String: Any]) {
        if json {
            emit(fields.merging(["summary": true]) { a, _ in a })
        } else {
            write(fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "\n") + "\n")
        }
    }

    /// Unbuffered, so that a reader of a pipe sees each epoch as it ends.
    private func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    private func emit(_ object: [String: Any]) {
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
           let text = String(data: data, encoding: .utf8) {
            write(text + "\n")
        }
    }
}
