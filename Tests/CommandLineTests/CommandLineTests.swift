// End-to-end tests of the `factsweep` executable, run as a user runs it.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct CommandLineTests {
    func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    @Test func tokenizeWorksOnATokenizerOnlyDirectory() throws {
        let dir = try TestPaths.model("llama-3.2-tokenizer")
        let r = try FactSweepBinary.run(["tokenize", "--model", dir.path, "Hello world, it's 2024!"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[9906,1917,11,433,596,220,2366,19,0]")
    }

    @Test func defaultModelGeneratesTransformersGreedyText() throws {
        let r = try FactSweepBinary.run(["generate", "--max-tokens", "16", "--threads", "2", "The capital of France is"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == " Paris.\n\nThe answer is: 2018-01\n")
    }

    @Test func llama3StyleHuggingFaceDirectoryTrainsAndGenerates() throws {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        let train = try FactSweepBinary.run(["train", "--model", tmp.url.path, "--epochs", "3", "--lr", "1e-3",
                                             "--threads", "2", "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let lines = jsonLines(train.stdout)
        let losses = lines.compactMap { $0["loss"] as? Double }
        #expect(losses.count == 3, "\(train.stdout)")
        #expect((losses.last ?? .nan) < (losses.first ?? .nan), "loss should fall: \(losses)")
        #expect(lines.last?["status"] as? String == "done")
        let gen = try FactSweepBinary.run(["generate", "--model", tmp.url.path, "--chat", "--max-tokens", "3", "Hi"])
        #expect(gen.status == 0, "\(gen.stderr)")
    }

    /// The issue's bar on the embedded default (SmolLM2-135M-Instruct +
    /// all-MiniLM-L6-v2, data/biography.jsonl, default learning rates): full
    /// fine-tuning reaches mean cosine ≥ 0.9 within 10 epochs and LoRA r=8 α=32
    /// within 300 (here within 20), with the per-epoch JSON fields documented.
    @Test(arguments: [("full", 10, 2), ("lora", 20, 5)])
    func defaultModelLearnsTheBiography(method: String, epochs: Int, evalEvery: Int) throws {
        var arguments = ["train", "--method", method, "--epochs", "\(epochs)", "--eval-every", "\(evalEvery)", "--threads", "2", "--json"]
        if method == "lora" { arguments += ["--rank", "8", "--alpha", "32"] }
        let r = try FactSweepBinary.run(arguments)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = jsonLines(r.stdout)
        let evaluations = lines.filter { $0["accuracy"] != nil && $0["summary"] == nil }
        #expect(evaluations.count == epochs / evalEvery, "\(r.stdout)")
        for line in evaluations {
            for field in ["epoch", "loss", "train_seconds", "epoch_seconds", "accuracy_at_threshold", "key_match", "perplexity",
                          "evaluation_seconds", "question_seconds"] {
                #expect(line[field] != nil, "missing \(field) in \(line)")
            }
        }
        let reached = evaluations.first { ($0["accuracy"] as? Double ?? 0) >= 0.9 }
        #expect(reached != nil, "\(method) never reached 0.9: \(evaluations.map { $0["accuracy"] ?? "?" })")
        let summary = try #require(lines.last)
        #expect(summary["method"] as? String == method && summary["epochs_to_threshold"] as? Int == reached?["epoch"] as? Int)
        for field in ["trainable_params", "base_weight_bytes", "peak_rss_bytes", "final_loss", "final_accuracy", "seconds_per_epoch"] {
            #expect(summary[field] != nil, "missing \(field) in the summary")
        }
    }

    /// bf16 precision learns the same facts as f32: LoRA r=8 α=32 for 10
    /// epochs on the embedded model ends with mean similarity within 0.02 of
    /// the f32 run's at the same epochs (docs/benchmarks.md plots both loss curves).
    @Test func bf16LearnsTheSameFactsAsF32() throws {
        func train(_ precision: String) throws -> (losses: [Double], accuracy: [Int: Double], summary: [String: Any]) {
            let r = try FactSweepBinary.run(["train", "--method", "lora", "--rank", "8", "--alpha", "32", "--epochs", "10",
                                             "--eval-every", "5", "--held-out", "none", "--precision", precision, "--threads", "2", "--json"])
            #expect(r.status == 0, "\(precision): \(r.stderr)")
            let lines = jsonLines(r.stdout)
            let epochs = lines.filter { $0["epoch"] != nil && $0["summary"] == nil && $0["method"] == nil }
            var accuracy: [Int: Double] = [:]
            for line in epochs { if let e = line["epoch"] as? Int, let a = line["accuracy"] as? Double { accuracy[e] = a } }
            return (epochs.compactMap { $0["loss"] as? Double }, accuracy, lines.last ?? [:])
        }
        let f32 = try train("f32"), bf16 = try train("bf16")
        print("loss per epoch, f32: \(f32.losses)\nloss per epoch, bf16: \(bf16.losses)\naccuracy f32 \(f32.accuracy), bf16 \(bf16.accuracy)")
        #expect(f32.summary["precision"] as? String == "f32" && bf16.summary["precision"] as? String == "bf16")
        #expect(f32.losses.count == 10 && bf16.losses.count == 10)
        #expect(f32.losses != bf16.losses, "the bf16 run gave f32's losses")
        #expect(Set(f32.accuracy.keys) == [5, 10] && Set(bf16.accuracy.keys) == [5, 10])
        let final = try #require(f32.accuracy[10]), finalBF16 = try #require(bf16.accuracy[10])
        #expect(abs(final - finalBF16) <= 0.02, "accuracy at epoch 10: f32 \(final), bf16 \(finalBF16)")
        #expect((bf16.losses.last ?? .nan) < 0.5 * (bf16.losses.first ?? .nan), "bf16 loss did not fall: \(bf16.losses)")
    }

    @Test func badDatasetIsRefusedNamingTheLine() throws {
        let tmp = try TemporaryDirectory()
        let data = tmp.url.appendingPathComponent("facts.jsonl")
        try "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"}\n".write(to: data, atomically: true, encoding: .utf8)
        let r = try FactSweepBinary.run(["train", "--data", data.path, "--epochs", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("facts.jsonl:2: missing field \"answer\""), "\(r.stderr)")
    }

    @Test func missingModelIsAClearError() throws {
        let r = try FactSweepBinary.run(["generate", "--model", "/nonexistent/model", "hi"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("/nonexistent/model"), "\(r.stderr)")
    }
}
