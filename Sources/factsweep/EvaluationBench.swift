// `factsweep bench --evaluation`: what one evaluation costs next to one
// training epoch of LoRA r=8 α=32, measured in the same process and in turns
// (epoch, evaluations, epoch, …) so that a busy machine slows both alike.
import Core
import Foundation
import Trial
import Worker

extension TrainingBenchCommand {
    func runEvaluationBench() throws {
        let context = ComputeContext.forProcess(threads: options.threads)
        let dataset = try FactDataset.load(try DefaultPaths.resolve(data, default: DefaultPaths.data, what: "dataset"))
        // The first --precision: in bf16 the frozen base is stored in bf16 and
        // both the epoch and the evaluations' decoding multiply in bf16.
        let productPrecision = precision.first ?? .f32
        let lm = try options.loadModel(storage: LinearStorage.training(.lora, precision: productPrecision))
        let embedder = try SentenceEmbedder.load(DefaultPaths.embedder)
        let heldOut = try lm.encode(String(contentsOf: DefaultPaths.heldOut, encoding: .utf8))
        var settings = TrainingSettings()
        settings.method = MethodSettings(kind: .lora, rank: 8, alpha: 32)
        settings.learningRate = TrainingSettings.defaultLearningRate(for: .lora)
        settings.epochs = epochs
        settings.precision = productPrecision
        let run = try TrainingRun(model: lm, dataset: dataset, settings: settings, context: context)
        var trained = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        trained.paraphrases = false
        let withParaphrases = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        // The same evaluation without proposals from the previous evaluation's answers: what they save, in the same run.
        var withoutPrevious = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        withoutPrevious.proposesPreviousAnswers = false
        // Perplexity timed apart from the questions, as a trial measures it (in activations kept between epochs).
        var perplexity = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        perplexity.heldOut = heldOut
        var rows: [[String: Any]] = []
        while !run.isFinished {
            let epoch = run.runEpoch()
            var decoding = Decoding()
            // As a trial evaluates: in the run's product precision.
            let (six, all, cold, perplexitySeconds) = try ProductPrecision.run(run.trainer.precision) {
                let six = try trained.evaluate(run.trainer.network, context: context)
                let all = try withParaphrases.evaluate(run.trainer.network, context: context)
                decoding = withParaphrases.lastDecoding
                let cold = try withoutPrevious.evaluate(run.trainer.network, context: context)
                let start = DispatchTime.now().uptimeNanoseconds
                _ = perplexity.perplexity(run.trainer.network, context: context)
                return (six, all, cold, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
            // The decoding's product FLOPs in the LoRA epoch's (which has no weight gradients).
            let decodingFlops: Double = lm.model.decodingFlops(layerRows: decoding.layerRows, headRows: decoding.headRows)
            let flopsInEpochs: Double = decodingFlops / epoch.flops
            FileHandle.standardError.write(Data("[bench] epoch \(epoch.epoch): \(String(format: "%.2f", epoch.epochSeconds)) s\n".utf8))
            rows.append([
                "epoch": epoch.epoch, "lora_epoch_seconds": epoch.epochSeconds,
                "questions": six.questions.count, "evaluation_seconds": six.seconds,
                "questions_with_paraphrases": all.questions.count, "evaluation_with_paraphrases_seconds": all.seconds,
                "evaluation_without_previous_answers_seconds": cold.seconds,
                "perplexity_seconds": perplexitySeconds, "accuracy": Double(six.accuracy),
                "passes_with_paraphrases": decoding.passes, "layer_rows_with_paraphrases": decoding.layerRows,
                "head_rows_with_paraphrases": decoding.headRows, "flops_in_epochs_with_paraphrases": flopsInEpochs,
                "longest_answer_tokens": try six.questions.map { try lm.encode($0.answer).count }.max() ?? 0,
            ])
        }
        // The first epoch and its evaluations warm caches and allocate buffers.
        let steady = rows.dropFirst()
        func mean(_ key: String) -> Double { steady.compactMap { $0[key] as? Double }.reduce(0, +) / Double(max(1, steady.count)) }
        let summary: [String: Any] = [
            "threads": options.threads, "precision": run.trainer.precision.rawValue, "epochs_measured": steady.count, "lora_epoch_seconds": mean("lora_epoch_seconds"),
            "evaluation_seconds": mean("evaluation_seconds"),
            "evaluation_with_paraphrases_seconds": mean("evaluation_with_paraphrases_seconds"),
            "evaluation_without_previous_answers_seconds": mean("evaluation_without_previous_answers_seconds"),
            "perplexity_seconds": mean("perplexity_seconds"), "per_epoch": Array(steady),
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            return
        }
        let q = rows.first?["questions"] ?? 0, all = rows.first?["questions_with_paraphrases"] ?? 0
        print("precision: \(run.trainer.precision.rawValue) (the epoch's products and the evaluations' decoding)")
        print("epoch  LoRA r8 epoch s | evaluation s: \(q) questions  \(all) questions  \(all) without previous answers  perplexity"
              + " | longest answer (tokens) | \(all) questions: passes, rows, head rows, FLOPs in epoch's")
        let keys = ["evaluation_seconds", "evaluation_with_paraphrases_seconds", "evaluation_without_previous_answers_seconds", "perplexity_seconds"]
        for r in steady {
            let values = keys.map { r[$0] as? Double ?? .nan }
            print(String(format: "%5d %16.3f | %26.3f %13.3f %31.3f %11.3f | %24d | %d, %d, %d, %.2f", r["epoch"] as? Int ?? 0,
                         r["lora_epoch_seconds"] as? Double ?? .nan, values[0], values[1], values[2], values[3],
                         r["longest_answer_tokens"] as? Int ?? 0, r["passes_with_paraphrases"] as? Int ?? 0,
                         r["layer_rows_with_paraphrases"] as? Int ?? 0, r["head_rows_with_paraphrases"] as? Int ?? 0,
                         r["flops_in_epochs_with_paraphrases"] as? Double ?? .nan))
        }
        let means = keys.map(mean), epoch = mean("lora_epoch_seconds")
        print(String(format: "mean  %16.3f | %26.3f %13.3f %31.3f %11.3f |                          | FLOPs in epoch's %.2f", epoch, means[0], means[1],
                     means[2], means[3], mean("flops_in_epochs_with_paraphrases")))
        print(String(format: "in LoRA epochs          | %26.2f %13.2f %31.2f %11.2f", means[0] / epoch, means[1] / epoch, means[2] / epoch,
                     means[3] / epoch))
    }
}
