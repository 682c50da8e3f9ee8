// `factsweep train`: one fine-tuning trial on a fact dataset.
import ArgumentParser
import Core
import Foundation
import Logging
import Trial
import Worker

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

    @Option(name: .long, help: "Peak learning rate (default per method: full 5e-5, lora/qlora 1e-3, ia3 1e-2).")
    var lr: Float?

    @Option(name: .long, help: "Epochs (passes over the facts).")
    var epochs = 10

    @Option(name: .long, help: "Examples per step; 0 = all facts in one batch.")
    var batchSize = 1

    @Option(name: .long, help: "Seed for example order.")
    var seed = 0

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

    @Option(name: .long, help: "Continue the run checkpointed in this directory: its training settings apply (a flag that would change them is refused); --threads and the evaluation flags may differ.")
    var resume: String?

    @Option(name: .long, help: "Evaluate every K epochs (and after the last); 0 disables evaluation.")
    var evalEvery = 1

    @Option(name: .long, help: "Also evaluate at these epochs, comma-separated (0: the base model, before training).")
    var evalEpochs: String?

    @Option(name: .long, help: "Sentence embedder for evaluation (default: the embedded all-MiniLM-L6-v2).")
    var embedder: String?

    @Option(name: .long, help: "Similarity at or above which an answer counts as correct.")
    var threshold: Float = 0.9

    @Option(name: .long, help: "Most tokens generated per evaluation answer (default: twice the longest reference answer plus 8).")
    var maxNewTokens: Int?

    @Option(name: .long, help: "General text for the forgetting measure (perplexity); default data/heldout.txt, \"none\" to skip.")
    var heldOut: String?

    @Option(name: .long, help: "Matrix products' inputs: f32, or bf16 (PyTorch CPU autocast: bf16 inputs, f32 accumulation; weights, optimizer, norms and loss stay f32).")
    var precision: Precision = .f32

    @Option(name: .long, help: "AdamW's two moments stored in f32, or bf16 (half their memory; the update still computes in f32).")
    var adamMoments: Precision = .f32

    @Flag(name: .long, help: "Train on every token, not only the answers.")
    var trainOnPrompt = false

    @Flag(name: .long, help: "Update each layer's parameters during the backward pass, while its gradients are in cache (needs --clip 0); full fine-tuning then keeps one layer's gradients at a time, not every layer's.")
    var updateInBackward = false

    @Flag(name: .long, help: "One JSON object per epoch and a summary, instead of text.")
    var json = false

    /// The flags that are sweep settings, as the spec would give them: checked
    /// and applied by the same table (`TrialSetting`), so `train` and a sweep
    /// accept exactly the same values.
    func settingValues(for kind: MethodKind? = nil) throws -> [(TrialSetting, SettingValue)] {
        var values: [(TrialSetting, SettingValue)] = [
            (.rank, .int(rank)), (.alpha, .float(alpha)), (.dropout, .float(dropout)), (.rslora, .bool(rslora)),
            (.epochs, .int(epochs)), (.batchSize, .int(batchSize)), (.warmupSteps, .int(warmupSteps)),
            (.schedule, .schedule(schedule)), (.weightDecay, .float(weightDecay)), (.clip, .float(clip)),
            (.trainOnPrompt, .bool(trainOnPrompt)), (.evalEvery, .int(evalEvery)), (.threshold, .float(threshold)),
            (.precision, .precision(precision)), (.adamMoments, .precision(adamMoments)), (.updateInBackward, .bool(updateInBackward)),
            (.seed, .int(seed)),
        ]
        if let targets {
            do { values.append((.targets, .targets(try MethodSettings.parseTargets(targets)))) } catch {
                throw ValidationError("--targets: \(error)")
            }
        }
        if let evalEpochs {
            let items = evalEpochs.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let epochs = items.compactMap { Int($0) }
            guard epochs.count == items.count else {
                throw ValidationError("--eval-epochs: expected epochs separated by commas, such as 0,1,2 (got \(evalEpochs))")
            }
            values.append((.evalEpochs, .epochs(epochs)))
        }
        if let lr { values.append((.lr, .float(lr))) }
        if let maxNewTokens { values.append((.maxNewTokens, .int(maxNewTokens))) }
        if let checkpointEvery { values.append((.checkpointEvery, .int(checkpointEvery))) }
        if let embedder { values.append((.embedder, .text(embedder))) }
        if let heldOut { values.append((.heldOut, .text(heldOut))) }
        return values.filter { $0.0.methods.contains(kind ?? method) }
    }

    /// A resumed run trains on its checkpoint's settings (`saved`), so a
    /// training flag that would change them is refused, named, rather than
    /// ignored. A flag at its default cannot be told from one not given:
    /// those set otherwise are compared. Evaluation flags apply to the resumed run.
    func refuseFlagsTheCheckpointOverrides(_ saved: TrainingSettings, checkpoint: String) throws {
        let defaults = try Self.parse([])
        var refused: [String] = []
        if method != defaults.method, method != saved.method.kind { refused.append("--method") }
        if initAdapter != nil { refused.append("--init-adapter") }
        let defaultValues = try defaults.settingValues(for: saved.method.kind)
        for (setting, value) in try settingValues(for: saved.method.kind) where !defaultValues.contains(where: { $0 == (setting, value) }) {
            var probe = TrialConfig(model: "", data: "", training: saved, checkpointEvery: 0)
            // validate() checked the flags of --method's settings, not the checkpoint method's.
            do throws(SettingRefusal) { try setting.apply(value, to: &probe) } catch { throw CLIError("\(setting.flag) \(error.message)") }
            if probe.training != saved { refused.append(setting.flag) }
        }
        guard refused.isEmpty else {
            throw CLIError("\(checkpoint): a resumed run keeps its checkpoint's training settings, which "
                           + "\(refused.joined(separator: ", ")) would change: drop \(refused.count == 1 ? "it" : "them"), "
                           + "or start a new run with --out")
        }
    }

    func validate() throws {
        for (setting, value) in try settingValues() {
            do throws(SettingRefusal) { try setting.check(value) } catch {
                throw ValidationError("\(setting.flag) \(error.message)")
            }
        }
        if checkpointEvery != nil, out == nil, resume == nil { throw ValidationError("--checkpoint-every needs --out DIR") }
        if initAdapter != nil, method == .full { throw ValidationError("--init-adapter needs --method lora, qlora or ia3") }
        // A resumed run's optimizer settings are its checkpoint's (`refuseFlagsTheCheckpointOverrides`).
        if resume == nil {
            do throws(SettingRefusal) {
                try AdamWSettings(maxGradNorm: clip > 0 ? clip : nil, updateInBackward: updateInBackward).validate(naming: \.flag)
            } catch {
                throw ValidationError(error.message)
            }
        }
    }

    func run() throws {
        let context = ComputeContext.forProcess(threads: options.threads)
        let dataURL = try DefaultPaths.resolve(data, default: DefaultPaths.data, what: "dataset")
        let modelURL = try options.modelURL
        var config = TrialConfig(model: modelURL.path, data: dataURL.path, training: TrainingSettings(method: method),
                                 checkpointEvery: 0)
        for (setting, value) in try settingValues() {
            do throws(SettingRefusal) { try setting.apply(value, to: &config) } catch {
                throw CLIError("\(setting.flag) \(error.message)")
            }
        }
        try config.training.method.validate()
        if let resume {
            let saved = try TrainingCheckpoint.read(URL(fileURLWithPath: resume)).0.settings
            try refuseFlagsTheCheckpointOverrides(saved, checkpoint: resume)
            config.training = saved
        } else if let initAdapter {
            let adapter = try FineTuning.adapterSettings(URL(fileURLWithPath: initAdapter), quantizedBase: method == .qlora)
            guard (adapter.kind == .ia3) == (method == .ia3) else {
                throw CLIError("\(initAdapter) holds a \(adapter.kind == .ia3 ? "IA3" : "LoRA") adapter, not one for --method \(method.rawValue)")
            }
            config.training.method = adapter
            config.training.initAdapter = initAdapter
        }
        let settings = config.training
        let directory = (out ?? resume).map { URL(fileURLWithPath: $0) }
        let output = ProgressOutput(json: json)
        let interrupt = SignalWatch(message: "interrupt: finishing this epoch, then checkpointing (Ctrl-C again to quit at once)")
        let epochs = settings.epochs, kind = settings.method.kind, lr = settings.learningRate, facts = try FactDataset.load(dataURL).facts.count
        var events = TrialEvents()
        events.started = { trainable, done in
            output.start("\(kind.rawValue): \(trainable) trainable parameters, \(facts) facts, \(epochs) epochs, lr \(lr)"
                         + (done > 0 ? ", resumed after epoch \(done)" : ""))
        }
        events.baseline = { output.baseline(perplexity: $0) }
        events.epoch = { output.epoch($0, of: epochs) }
        events.shouldStop = { interrupt.isSet }
        let runner = TrialRunner(cache: ModelCache(logger: Logger(label: "factsweep.train")), context: context,
                                 logger: Logger(label: "factsweep.train"))
        let summary = try runner.run(config, directory: directory, resume: resume != nil, events: events)
        var fields: [String: Any] = [
            "method": kind.rawValue, "precision": settings.productPrecision.rawValue, "openblas_core": OpenBLASCore.name,
            "engine": summary.engine ?? MatmulEngine.productsName(for: settings.productPrecision),
            "onednn_isa": MatmulEngine.oneDNNInstructionSet ?? "none", "status": summary.outcome == .stopped ? "interrupted" : summary.outcome.rawValue,
            "trainable_params": summary.trainableParameters, "base_weight_bytes": summary.baseWeightBytes ?? NSNull(),
            "peak_rss_bytes": summary.peakResidentBytes, "epochs": summary.epochs,
            "final_loss": summary.finalLoss.map { Double($0) } ?? NSNull(),
            "seconds_per_epoch": summary.secondsPerEpoch, "evaluation_seconds": summary.evaluationSeconds,
        ]
        if let a = summary.finalAccuracy {
            fields["final_accuracy"] = Double(a)
            fields["final_accuracy_at_threshold"] = summary.finalAccuracyAtThreshold.map { Double($0) } ?? NSNull()
            fields["epochs_to_threshold"] = summary.epochsToThreshold ?? NSNull()
        }
        if let p = summary.finalPerplexity { fields["final_perplexity"] = Double(p) }
        if let p = summary.perplexityBefore { fields["perplexity_before"] = Double(p) }
        output.summary(fields)
        switch summary.outcome {
        case .diverged: throw ExitCode(3)
        case .stopped:
            FileHandle.standardError.write(Data("interrupted after epoch \(summary.epochs)\(directory.map { "; checkpoint in \($0.path), continue with --resume \($0.path)" } ?? "")\n".utf8))
            throw ExitCode(130)
        case .done: break
        }
    }
}

extension LearningRateSchedule.Decay: ExpressibleByArgument {}
extension MethodKind: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
