// `factsweep train`: one fine-tuning trial on a fact dataset.
import ArgumentParser
import Core
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a model on question/answer facts and report loss and time per epoch.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Facts as JSON Lines (default: data/biography.jsonl).")
    var data: String?

    @Option(name: .long, help: "Training method: full, lora, qlora or ia3.")
    var method: MethodKind = .full

    @Option(name: .long, help: "LoRA/QLoRA rank.")
    var rank = 8

    @Option(name: .long, help: "LoRA/QLoRA alpha (adapter scale alpha/rank).")
    var alpha: Float = 16

    @Option(name: .long, help: "LoRA/QLoRA dropout on the adapter input.")
    var dropout: Float = 0

    @Flag(name: .long, help: "rsLoRA scaling alpha/√rank.")
    var rslora = false

    @Option(name: .long, help: "Adapted modules, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear; default PEFT's for the method.")
    var targets: String?

    @Option(name: .long, help: "Peak learning rate (default per method: full 5e-5, lora/qlora 2e-4, ia3 3e-3).")
    var lr: Float?

    @Option(name: .long, help: "Epochs (passes over the facts).")
    var epochs = 10

    @Option(name: .long, help: "Examples per step; 0 = all facts in one batch.")
    var batchSize = 1

    @Option(name: .long, help: "Seed for example order.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Linear warm-up steps.")
    var warmupSteps = 0

    @Option(name: .long, help: "Learning-rate decay after warm-up: constant, linear or cosine.")
    var schedule: LearningRateSchedule.Decay = .constant

    @Option(name: .long, help: "Weight decay (decoupled, AdamW).")
    var weightDecay: Float = 0

    @Option(name: .long, help: "Clip the global gradient norm to this (0 disables).")
    var clip: Float = 1

    @Option(name: .long, help: "Start LoRA/QLoRA/IA³ from this PEFT adapter directory (its adapter_config.json sets rank, alpha and targets).")
    var initAdapter: String?

    @Option(name: .long, help: "Write a checkpoint every C epochs (and at the end) to --out.")
    var checkpointEvery: Int?

    @Option(name: .long, help: "Directory for checkpoints and the final adapter/metrics (created if needed).")
    var out: String?

    @Option(name: .long, help: "Continue the run checkpointed in this directory (its settings apply; --threads may differ).")
    var resume: String?

    @Option(name: .long, help: "Evaluate every K epochs (and after the last); 0 disables evaluation.")
    var evalEvery = 1

    @Option(name: .long, help: "Sentence embedder for evaluation (default: the embedded all-MiniLM-L6-v2).")
    var embedder: String?

    @Option(name: .long, help: "Similarity at or above which an answer counts as correct.")
    var threshold: Float = 0.9

    @Option(name: .long, help: "Most tokens generated per evaluation answer (default: twice the longest reference answer plus 8).")
    var maxNewTokens: Int?

    @Option(name: .long, help: "General text for the forgetting measure (perplexity); default data/heldout.txt, \"none\" to skip.")
    var heldOut: String?

    @Flag(name: .long, help: "Train on every token, not only the answers.")
    var trainOnPrompt = false

    @Flag(name: .long, help: "One JSON object per epoch and a summary, instead of text.")
    var json = false

    func validate() throws {
        if let lr { guard lr > 0, lr.isFinite else { throw ValidationError("--lr must be a positive number") } }
        if let checkpointEvery {
            guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
            guard out != nil || resume != nil else { throw ValidationError("--checkpoint-every needs --out DIR") }
        }
        if initAdapter != nil, method == .full { throw ValidationError("--init-adapter needs --method lora, qlora or ia3") }
        guard evalEvery >= 0 else { throw ValidationError("--eval-every must be 0 (off) or positive") }
        guard (0...1).contains(threshold) else { throw ValidationError("--threshold must be between 0 and 1") }
        if let maxNewTokens { guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") } }
        do { try methodSettings().validate() } catch { throw ValidationError("\(error)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batchSize >= 0 else { throw ValidationError("--batch-size must be 0 (all) or positive") }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps must not be negative") }
        guard clip >= 0 else { throw ValidationError("--clip must not be negative") }
    }

    func run() throws {
        let context = ComputeContext(threads: options.threads)
        let dataURL = try DefaultPaths.resolve(data, default: DefaultPaths.data, what: "dataset")
        let dataset = try FactDataset.load(dataURL)
        let kind = try resume.map { try TrainingCheckpoint.read(URL(fileURLWithPath: $0)).0.settings.method.kind } ?? method
        let lm = try options.loadModel(storage: kind == .qlora ? .nf4 : .float32)
        var settings = TrainingSettings()
        settings.method = try methodSettings()
        if let initAdapter {
            let adapter = try FineTuning.adapterSettings(URL(fileURLWithPath: initAdapter), quantizedBase: method == .qlora)
            guard (adapter.kind == .ia3) == (method == .ia3) else {
                throw CLIError("\(initAdapter) holds a \(adapter.kind == .ia3 ? "IA3" : "LoRA") adapter, not one for --method \(method.rawValue)")
            }
            settings.method = adapter
            settings.initAdapter = initAdapter
        }
        settings.learningRate = lr ?? TrainingSettings.defaultLearningRate(for: method)
        settings.epochs = epochs
        settings.batchSize = batchSize
        settings.seed = seed
        settings.warmupSteps = warmupSteps
        settings.decay = schedule
        settings.lossScope = trainOnPrompt ? .all : .answer
        settings.optimizer.weightDecay = weightDecay
        settings.optimizer.maxGradNorm = clip > 0 ? clip : nil
        let run: TrainingRun
        if let resume {
            run = try TrainingRun(resuming: URL(fileURLWithPath: resume), model: lm, dataset: dataset, context: context)
            settings = run.settings
        } else {
            run = try TrainingRun(model: lm, dataset: dataset, settings: settings, context: context)
        }
        let outDir = (out ?? resume).map { URL(fileURLWithPath: $0) }
        let evaluator = try makeEvaluator(lm, dataset: dataset)
        let output = ProgressOutput(json: json)
        let epochs = settings.epochs
        output.start("\(settings.method.kind.rawValue): \(run.trainer.trainableParameterCount) trainable parameters, \(dataset.facts.count) facts, "
                     + "\(epochs) epochs, lr \(settings.learningRate)" + (resume != nil ? ", resumed after epoch \(run.completedEpochs)" : ""))
        var perplexityBefore: Float?
        if let evaluator, let heldOut = evaluator.heldOut, run.completedEpochs == 0 {
            perplexityBefore = Perplexity.measure(run.trainer.network, tokens: heldOut, context: context)
            output.baseline(perplexity: perplexityBefore ?? .nan)
        }
        let interrupt = InterruptFlag()
        var last: EpochReport? = run.reports.last
        var status = "done"
        var evaluationSeconds: Double = 0
        try run.run(evaluator: evaluator, evalEvery: evalEvery) { report in
            last = report
            evaluationSeconds += report.evaluation?.seconds ?? 0
            output.epoch(report, of: epochs)
            if !report.loss.isFinite { status = "diverged"; return .stop }
            let checkpointDue = checkpointEvery.map { report.epoch % $0 == 0 || report.epoch == epochs } ?? false
            if let outDir, checkpointDue || interrupt.isSet { try run.saveCheckpoint(to: outDir) }
            if interrupt.isSet { status = "interrupted"; return .stop }
            return .more
        }
        if let outDir, status == "done", settings.method.kind != .full {
            try run.trainer.exportAdapter(to: outDir.appendingPathComponent("adapter"), baseModel: try options.modelURL.path)
        }
        let lastEvaluation = run.reports.last { $0.evaluation != nil }?.evaluation
        var summary: [String: Any] = [
            "method": settings.method.kind.rawValue, "status": status,
            "trainable_params": run.trainer.trainableParameterCount,
            "base_weight_bytes": lm.model.baseWeightBytes,
            "peak_rss_bytes": ResourceUsage.peakResidentBytes,
            "epochs": last?.epoch ?? 0, "final_loss": Double(last?.loss ?? .nan),
            "seconds_per_epoch": (last?.trainSeconds ?? 0) / Double(max(1, last?.epoch ?? 1)),
            "evaluation_seconds": evaluationSeconds,
        ]
        if let e = lastEvaluation {
            summary["final_accuracy"] = Double(e.accuracy)
            summary["final_accuracy_at_threshold"] = Double(e.accuracyAtThreshold)
            summary["epochs_to_threshold"] = run.epochsToThreshold(threshold) ?? NSNull()
            if let p = e.perplexity { summary["final_perplexity"] = Double(p) }
        }
        if let p = perplexityBefore { summary["perplexity_before"] = Double(p) }
        output.summary(summary)
        if let outDir, let e = lastEvaluation {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
            try encoder.encode(e).write(to: outDir.appendingPathComponent("evaluation.json"), options: .atomic)
        }
        switch status {
        case "diverged": throw ExitCode(3)
        case "interrupted":
            FileHandle.standardError.write(Data("interrupted after epoch \(last?.epoch ?? 0)\(outDir.map { "; checkpoint in \($0.path), continue with --resume \($0.path)" } ?? "")\n".utf8))
            throw ExitCode(130)
        default: break
        }
    }

    /// The evaluator of the run, or nil with --eval-every 0.
    func makeEvaluator(_ lm: LanguageModel, dataset: FactDataset) throws -> FactEvaluator? {
        guard evalEvery > 0 else { return nil }
        let embedderURL = try DefaultPaths.resolve(embedder, default: DefaultPaths.embedder, what: "sentence embedder")
        var evaluator = FactEvaluator(model: lm, embedder: try SentenceEmbedder.load(embedderURL), dataset: dataset)
        evaluator.threshold = threshold
        evaluator.maxNewTokens = maxNewTokens
        if heldOut != "none" {
            let url = try DefaultPaths.resolve(heldOut, default: DefaultPaths.heldOut, what: "held-out text")
            let text: String
            do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw CLIError("\(url.path): cannot read: \(error.localizedDescription)") }
            evaluator.heldOut = try lm.encode(text)
        }
        return evaluator
    }

    func methodSettings() throws -> MethodSettings {
        MethodSettings(kind: method, rank: rank, alpha: alpha, dropout: dropout, rsLoRA: rslora,
                       targets: try targets.map(MethodSettings.parseTargets))
    }
}

extension LearningRateSchedule.Decay: ExpressibleByArgument {}
extension MethodKind: ExpressibleByArgument {}
