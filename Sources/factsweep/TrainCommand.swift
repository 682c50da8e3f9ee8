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
        let output = ProgressOutput(json: json)
        let epochs = settings.epochs
        output.start("\(settings.method.kind.rawValue): \(run.trainer.trainableParameterCount) trainable parameters, \(dataset.facts.count) facts, "
                     + "\(epochs) epochs, lr \(settings.learningRate)" + (resume != nil ? ", resumed after epoch \(run.completedEpochs)" : ""))
        var last: EpochReport? = run.reports.last
        var diverged = false
        var failure: Error?
        run.run { report in
            last = report
            output.epoch(report, of: epochs)
            if !report.loss.isFinite { diverged = true; return .stop }
            if let outDir, let every = checkpointEvery, report.epoch % every == 0 || report.epoch == epochs {
                do { try run.saveCheckpoint(to: outDir) } catch { failure = error; return .stop }
            }
            return .more
        }
        if let failure { throw failure }
        if let outDir, !diverged, settings.method.kind != .full {
            try run.trainer.exportAdapter(to: outDir.appendingPathComponent("adapter"), baseModel: try options.modelURL.path)
        }
        output.summary([
            "method": settings.method.kind.rawValue, "status": diverged ? "diverged" : "done",
            "trainable_params": run.trainer.trainableParameterCount,
            "base_weight_bytes": lm.model.baseWeightBytes,
            "peak_rss_bytes": ResourceUsage.peakResidentBytes,
            "epochs": last?.epoch ?? 0, "final_loss": Double(last?.loss ?? .nan),
            "seconds_per_epoch": (last?.trainSeconds ?? 0) / Double(max(1, last?.epoch ?? 1)),
        ])
        if diverged { throw ExitCode(3) }
    }


    func methodSettings() throws -> MethodSettings {
        MethodSettings(kind: method, rank: rank, alpha: alpha, dropout: dropout, rsLoRA: rslora,
                       targets: try targets.map(MethodSettings.parseTargets))
    }
}

extension LearningRateSchedule.Decay: ExpressibleByArgument {}
extension MethodKind: ExpressibleByArgument {}
