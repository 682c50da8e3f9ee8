// `factsweep bench` (`bench training`): the study's workload (full fine-tuning on the 6 facts)
// at several thread counts and batch sizes, side by side with PyTorch.
//
// Each configuration runs in a child process of its own so that peak RSS is
// that configuration's, not the largest seen so far; the PyTorch reference
// (scripts/bench-pytorch.py) runs the same way in the same run.
import ArgumentParser
import Core
import Foundation
import Trial
import Worker

/// `factsweep bench`: training speed (`bench training`, the default) or the sweep coordinator (`bench sweep`).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark training speed against PyTorch (the default), or the sweep coordinator at scale (bench sweep).",
        subcommands: [TrainingBenchCommand.self, SweepBenchCommand.self, ChaosBenchCommand.self, ProxyCommand.self], defaultSubcommand: TrainingBenchCommand.self)
}

struct TrainingBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "training",
        abstract: "Benchmark training speed against PyTorch on the same machine, threads and workload.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Facts as JSON Lines (default: data/biography.jsonl).")
    var data: String?

    @Option(name: .long, parsing: .upToNextOption, help: "Thread counts to measure.")
    var threadCounts: [Int] = [1, 2]

    @Option(name: .long, parsing: .upToNextOption, help: "Batch sizes to measure (0 = all facts).")
    var batchSizes: [Int] = [1, 8]

    @Option(name: .long, parsing: .upToNextOption, help: "Methods to measure: full, lora-r4 (α16), lora-r8 (α32), qlora-r8 (α32), ia3.")
    var methods: [String] = ["full"]

    @Option(name: .long, parsing: .upToNextOption, help: "Matmul engines to measure, each in its own child: onednn, openblas.")
    var engines: [String] = ["onednn", "openblas"]

    @Option(name: .long, parsing: .upToNextOption, help: "Product precisions to measure: f32, bf16 (PyTorch with bf16 autocast beside bf16); --evaluation runs in the first; --products gives each its engine table.")
    var precision: [Precision] = [.f32]

    @Option(name: .long, help: "AdamW's moments on FactSweep's side: f32, or bf16 (half their memory; PyTorch keeps f32).")
    var adamMoments: Precision = .f32

    @Flag(name: .long, help: "FactSweep updates each layer's parameters during the backward pass (PyTorch updates after it; neither clips).")
    var updateInBackward = false

    @Option(name: .long, help: "Rounds per configuration: each runs FactSweep's children then PyTorch's; times are the medians and the speed-up the median of the rounds' paired ratios.")
    var rounds = 1

    @Option(name: .long, help: "Epochs per configuration; the first is a warm-up and not counted.")
    var epochs = 3

    @Option(name: .long, help: "Python with torch + transformers for the side-by-side reference (default: .venv/bin/python if present).")
    var python: String?

    @Flag(name: .long, help: "Skip the PyTorch reference.")
    var noPytorch = false

    @Option(name: .long, help: "Seconds a child (FactSweep's or PyTorch's) may take before it is stopped and its row reports it.")
    var childTimeout: Double = 3600

    @Flag(name: .long, help: "Print the results as JSON.")
    var json = false

    @Flag(name: .long, help: "Measure an evaluation (6 questions; with paraphrases; perplexity) against a LoRA r=8 α=32 epoch instead.")
    var evaluation = false

    @Flag(name: .long, help: "Measure each engine's GFLOP/s at the study's product shapes instead.")
    var products = false

    @Flag(name: .long, help: .hidden)
    var single = false

    func validate() throws {
        guard epochs >= 2 else { throw ValidationError("--epochs must be at least 2 (the first is a warm-up)") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        for count in threadCounts { try checkThreadCount(count, "--thread-counts") }
        guard batchSizes.allSatisfy({ $0 >= 0 }) else { throw ValidationError("batch sizes must be ≥ 0") }
        for name in engines where MatmulEngine(name: name) == nil {
            throw ValidationError("unknown matmul engine \(name) (onednn, openblas)")
        }
        guard childTimeout > 0 else { throw ValidationError("--child-timeout must be positive") }
        for name in methods where TrainingBenchCommand.method(named: name) == nil {
            throw ValidationError("unknown method \(name) (full, lora-r4, lora-r8, qlora-r8, ia3)")
        }
    }

    func run() throws {
        if evaluation { return try runEvaluationBench() }
        if products { return try runProductBench() }
        if single { return try runSingle() }
        let pythonPath = noPytorch ? nil : (python ?? defaultPython())
        if !noPytorch && pythonPath == nil {
            // Without it every PyTorch column would print "—" and no target be checked.
            throw CLIError("no PyTorch reference: \(DefaultPaths.root.appendingPathComponent(".venv/bin/python").path) is missing; "
                           + "create the venv (scripts/reference/README.md), pass --python PATH, or --no-pytorch")
        }
        var rows: [[String: Any]] = []
        for name in methods {
          guard let method = TrainingBenchCommand.method(named: name) else { continue }
          for threads in threadCounts {
            for batch in batchSizes {
              for precision in precision {
                // Each round runs every engine's child, then PyTorch's: pairing the ratios
                // round by round keeps them meaningful while the machine's speed drifts.
                var roundsMeasured: [[[String: Any]]] = []
                for round in 0..<rounds {
                    if rounds > 1 { FileHandle.standardError.write(Data("[bench] round \(round + 1) of \(rounds)\n".utf8)) }
                    roundsMeasured.append(measureRound(name: name, method: method, threads: threads, batch: batch, precision: precision,
                                                       pythonPath: pythonPath))
                }
                let engineRows = TrainingBenchCommand.combine(roundsMeasured)
                rows += engineRows
              }
            }
          }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("OpenBLAS kernels: \(rows.first?["openblas_core"] as? String ?? OpenBLASCore.name); "
                  + "oneDNN kernels: \(rows.first?["onednn_isa"] as? String ?? MatmulEngine.oneDNNInstructionSet ?? "none")")
            for notice in Set(rows.compactMap { $0["bf16_notice"] as? String }).sorted() { print("Note: \(notice)") }
            let waits = Set(rows.compactMap { $0["openmp_wait"] as? String }).sorted()
            if !waits.isEmpty {
                print("libgomp's threads wait by: \(waits.joined(separator: "; ")) (FactSweep); PyTorch's defaults (PyTorch)")
            }
            if adamMoments != .f32 { print("AdamW moments: \(adamMoments.rawValue) on FactSweep's side, f32 on PyTorch's") }
            if updateInBackward { print("AdamW's update: in the backward pass on FactSweep's side, after it on PyTorch's") }
            printTable(rows)
        }
        if rows.contains(where: { $0["error"] != nil || $0["pytorch_error"] != nil }) { throw ExitCode(1) }
    }

    /// One round of a configuration: each engine's child, then PyTorch's
    /// beside them; one row per engine.
    private func measureRound(name: String, method: MethodSettings, threads: Int, batch: Int, precision: Precision,
                              pythonPath: String?) -> [[String: Any]] {
        var engineRows: [[String: Any]] = []
        for engine in engines.compactMap(MatmulEngine.init(name:)) {
            FileHandle.standardError.write(Data("[bench] FactSweep (\(engine), \(precision)): \(name), threads \(threads), batch \(batch)\n".utf8))
            // A configuration that fails (out of memory, say) is reported in its row; the others still run.
            var row: [String: Any]
            do {
                row = try childJSON(CommandLine.arguments[0], selfArguments(method: name, threads: threads, batch: batch, precision: precision),
                                    environment: LibraryEnvironment.childSettings(engine: engine)
                                        .merging([MatmulEngine.environmentKey: engine.rawValue]) { $1 })
            } catch {
                FileHandle.standardError.write(Data("[bench] failed: \(error)\n".utf8))
                row = ["engine": engine.rawValue, "precision": precision.rawValue, "threads": threads, "batch_size": batch,
                       "error": "\(error)"]
            }
            row["method"] = name
            engineRows.append(row)
        }
        if let pythonPath {
            FileHandle.standardError.write(Data("[bench] PyTorch (\(precision == .bf16 ? "bf16 autocast" : "f32")): \(name), threads \(threads), batch \(batch)\n".utf8))
            let script = DefaultPaths.root.appendingPathComponent("scripts/bench-pytorch.py").path
            // FactSweep's workload: its facts, batches (0: all in one), and AdamW without weight decay (its default;
            // torch.optim.AdamW's is 0.01); PyTorch's attention is its default for Llama (sdpa).
            var torchArguments = [script, "--method", method.kind.rawValue, "--threads", "\(threads)",
                                  "--batch-size", "\(batch)", "--epochs", "\(epochs)", "--json",
                                  "--autocast", precision == .bf16 ? "bf16" : "none",
                                  "--weight-decay", "\(TrainingSettings().optimizer.weightDecay)"]
            if let data { torchArguments += ["--data", data] }
            if method.kind == .lora || method.kind == .qlora { torchArguments += ["--rank", "\(method.rank)", "--alpha", "\(Int(method.alpha))"] }
            if method.kind != .full { torchArguments += ["--targets", method.resolvedTargets.map(\.rawValue).joined(separator: ",")] }
            torchArguments += pytorchModelArguments()
            var torch: [String: Any]
            do { torch = try childJSON(pythonPath, torchArguments, base: LibraryEnvironment.environmentForOtherPrograms) } catch {
                FileHandle.standardError.write(Data("[bench] failed: \(error)\n".utf8))
                torch = ["error": "\(error)"]
            }
            if torch["error"] == nil, let problem = engineRows.lazy.compactMap({ Self.workloadsDiffer($0, torch) }).first {
                FileHandle.standardError.write(Data("[bench] \(problem)\n".utf8))
                torch = ["error": problem]
            }
            for index in engineRows.indices {
                engineRows[index]["pytorch_error"] = torch["error"]
                engineRows[index]["pytorch_seconds_per_epoch"] = torch["seconds_per_epoch"]
                engineRows[index]["pytorch_peak_rss_mib"] = torch["peak_rss_process_mib"]
                engineRows[index]["pytorch_trainable_parameters"] = torch["trainable_parameters"]
                if let ours = engineRows[index]["seconds_per_epoch"] as? Double, let theirs = torch["seconds_per_epoch"] as? Double {
                    let speedup = theirs / ours, target = Self.speedupTarget(precision)
                    engineRows[index]["speedup_vs_pytorch"] = speedup
                    engineRows[index]["speedup_target"] = target
                    // The share of the engine's peak at which this epoch's FLOPs would
                    // take PyTorch's time / target: above 1, no schedule of the same
                    // products on this engine reaches the target.
                    if let mfu = engineRows[index]["mfu"] as? Double { engineRows[index]["mfu_for_target"] = mfu * target / speedup }
                }
            }
        }
        return engineRows
    }

    /// The rows of several rounds as one row per engine: the first round's
    /// row (its products, memory, peak), with each time the median over the
    /// rounds and the speed-up the median of the rounds' paired ratios; the
    /// rounds' own figures are kept beside them.
    static func combine(_ rounds: [[[String: Any]]]) -> [[String: Any]] {
        guard var combined = rounds.first, rounds.count > 1 else { return rounds.first ?? [] }
        func median(_ values: [Double]) -> Double? {
            guard !values.isEmpty else { return nil }
            let sorted = values.sorted(), middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }
        for index in combined.indices {
            let rows = rounds.compactMap { $0.indices.contains(index) ? $0[index] : nil }
            combined[index]["rounds"] = rows.count
            // Each list has one entry per round, null where that round has no figure (a failed child),
            // so that a round's figures stay side by side.
            func perRound(_ key: String) -> [Any] { rows.map { ($0[key] as? Double).map { $0 as Any } ?? NSNull() } }
            for (key, listKey) in [("seconds_per_epoch", "seconds_per_epoch_rounds"), ("pytorch_seconds_per_epoch", "pytorch_seconds_per_epoch_rounds"),
                                   ("speedup_vs_pytorch", "speedup_vs_pytorch_rounds")] {
                combined[index][listKey] = perRound(key)
                combined[index][key] = median(rows.compactMap { $0[key] as? Double })
            }
            combined[index]["mfu_rounds"] = perRound("mfu")
            combined[index]["mfu_for_target_rounds"] = perRound("mfu_for_target")
            // The row's own figures from its median epoch and the rounds' highest peak, so that it
            // holds together: MFU = FLOPs / s / peak, the MFU the target needs = MFU × target / speed-up.
            combined[index]["mfu_for_target"] = nil
            let peak = rows.compactMap { $0["sgemm_peak_gflops"] as? Double }.max()
            combined[index]["vector_peak_gflops"] = rows.compactMap { $0["vector_peak_gflops"] as? Double }.max()
            combined[index]["vector_peak_instruction"] = rows.lazy.compactMap { $0["vector_peak_instruction"] as? String }.first
            if let gflops = combined[index]["model_gflops_per_epoch"] as? Double, let seconds = combined[index]["seconds_per_epoch"] as? Double,
               let peak {
                let mfu = gflops / seconds / peak
                combined[index]["sgemm_peak_gflops"] = peak
                combined[index]["mfu"] = mfu
                if let tokens = combined[index]["tokens_per_epoch"] as? Int { combined[index]["tokens_per_second"] = Double(tokens) / seconds }
                if let speedup = combined[index]["speedup_vs_pytorch"] as? Double, let target = combined[index]["speedup_target"] as? Double {
                    combined[index]["mfu_for_target"] = mfu * target / speedup
                }
            }
            if let error = rows.lazy.compactMap({ $0["error"] }).first { combined[index]["error"] = error }
            if let error = rows.lazy.compactMap({ $0["pytorch_error"] }).first { combined[index]["pytorch_error"] = error }
        }
        return combined
    }

    /// Why a reference's result does not measure FactSweep's workload, or nil:
    /// another number of facts (its `--data`), or other trained parameters
    /// (targets, rank). Checked where the reference reports them.
    static func workloadsDiffer(_ ours: [String: Any], _ theirs: [String: Any]) -> String? {
        if let mine = ours["facts"] as? Int, let other = theirs["facts"] as? Int, mine != other {
            return "the reference trained \(other) facts, FactSweep \(mine): not the same workload"
        }
        if let mine = ours["trainable_parameters"] as? Int, let other = theirs["trainable_parameters"] as? Int, mine != other {
            return "the reference trained \(other) parameters, FactSweep \(mine): not the same workload"
        }
        return nil
    }

    /// Issue 13's speed-up targets over PyTorch: 2.5× in f32, 3× in bf16 (against its bf16 autocast).
    static func speedupTarget(_ precision: Precision) -> Double { precision == .bf16 ? 3 : 2.5 }

    /// The benchmark's method configurations (those of the study).
    static func method(named name: String) -> MethodSettings? {
        switch name {
        case "full": MethodSettings(kind: .full)
        case "lora-r4": MethodSettings(kind: .lora, rank: 4, alpha: 16)
        case "lora-r8": MethodSettings(kind: .lora, rank: 8, alpha: 32)
        case "qlora-r8": MethodSettings(kind: .qlora, rank: 8, alpha: 32)
        case "ia3": MethodSettings(kind: .ia3)
        default: nil
        }
    }

    private func selfArguments(method: String, threads: Int, batch: Int, precision: Precision) -> [String] {
        var args = ["bench", "--single", "--methods", method, "--threads", "\(threads)", "--batch-sizes", "\(batch)", "--epochs", "\(epochs)",
                    "--precision", precision.rawValue, "--adam-moments", adamMoments.rawValue]
        if updateInBackward { args.append("--update-in-backward") }
        if let model = options.model { args += ["--model", model] }
        if let data { args += ["--data", data] }
        return args
    }

    /// The model for the PyTorch side: the same `--model` (a GGUF file, or a Hugging Face directory whose
    /// safetensors it loads in f32), or none for its default, the embedded GGUF.
    private func pytorchModelArguments() -> [String] {
        guard let model = options.model else { return [] }
        let url = URL(fileURLWithPath: model)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue {
            return ["--model-dir", url.path, "--gguf", ""]
        }
        return ["--model-dir", url.deletingLastPathComponent().path, "--gguf", url.lastPathComponent]
    }

    private func defaultPython() -> String? {
        let venv = DefaultPaths.root.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// Runs a child with `base` (this process's environment by default) and
    /// `environment` over it, and parses the last line of its standard output as JSON.
    private func childJSON(_ executable: String, _ arguments: [String], base: [String: String] = ProcessInfo.processInfo.environment,
                           environment: [String: String] = [:]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = base.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // A child that hangs (a wedged thread pool, say) is stopped, not waited for forever: TERM, then KILL.
        let timedOut = ChildTimeout()
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + childTimeout)
        timer.setEventHandler { [pid = process.processIdentifier] in
            timedOut.fire()
            kill(pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 10) { kill(pid, SIGKILL) }
        }
        timer.resume()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        if timedOut.fired {
            throw CLIError("\(executable) \(arguments.joined(separator: " ")) did not finish within \(childTimeout) s (--child-timeout) and was stopped")
        }
        guard process.terminationStatus == 0 else {
            let status = process.terminationStatus
            let how = process.terminationReason == .uncaughtSignal
                ? "was killed by signal \(status)\(status == SIGKILL ? " (the kernel's out-of-memory killer sends it)" : "")"
                : "failed with status \(status)"
            throw CLIError("\(executable) \(arguments.joined(separator: " ")) \(how)")
        }
        let lastLine = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any] else {
            throw CLIError("\(executable) printed no JSON result")
        }
        return object
    }

    /// One configuration, measured in this process.
    private func runSingle() throws {
        let threads = options.threads, batch = batchSizes.first ?? 1
        let context = ComputeContext.forProcess(threads: threads)
        // The peak of the engine the products run on (`gemm` is the one seam),
        // in the run's precision (bf16: operands' conversion included).
        // Measured before and after training, the higher one kept: a single window
        // of 16 products sometimes ran at half speed (the other core taken away
        // for its 0.2 s), which put MFU above 100%.
        let peakBefore = ProductPrecision.run(precision.first ?? .f32) { SgemmPeak.measure(context: context) }
        // The cores' own ceiling beside the engine's, measured the same way (before and after, the higher kept):
        // bf16's dot products where the engine multiplies bf16, else f32's FMA, which bf16 products then run on.
        let bf16 = precision.first == .bf16 && MatmulEngine.hasBF16Kernels
        let vectorPeakBefore = VectorPeak.measure(bf16: bf16, context: context)
        let dataset = try FactDataset.load(try DefaultPaths.resolve(data, default: DefaultPaths.data, what: "dataset"))
        guard let method = methods.first.flatMap(TrainingBenchCommand.method(named:)) else { throw CLIError("no method") }
        let lm = try options.loadModel(storage: LinearStorage.training(method.kind, precision: precision.first ?? .f32))
        var settings = TrainingSettings()
        // The reference script's workload: its learning rates, no clipping.
        settings.method = method
        settings.learningRate = method.kind == .full ? 1e-5 : 1e-4
        settings.optimizer.maxGradNorm = nil
        settings.epochs = epochs
        settings.batchSize = batch
        settings.precision = precision.first ?? .f32
        settings.optimizer.moments = adamMoments == .f32 ? nil : adamMoments
        settings.optimizer.updateInBackward = updateInBackward ? true : nil
        let run = try TrainingRun(model: lm, dataset: dataset, settings: settings, context: context)
        var reports: [EpochReport] = []
        // Products are timed over the steady epochs only (the warm-up makes the primitives and packed weights).
        try run.run { report in
            reports.append(report)
            if reports.count == 1 { ProductProfile.start() }
            return .more
        }
        // Training's peak, before the products alone allocate their operands
        // (at 1B the head's alone takes ~1.6 GB).
        let peakResident = ResourceUsage.peakResidentBytes
        let profiled = ProductProfile.stop()
        let products = Self.productRates(profiled, context: context)
        let peak = max(peakBefore, ProductPrecision.run(precision.first ?? .f32) { SgemmPeak.measure(context: context) })
        let vectorPeak = [vectorPeakBefore, VectorPeak.measure(bf16: bf16, context: context)].compactMap { $0 }.max()
        let steady = reports.dropFirst()
        let seconds = steady.map(\.epochSeconds).reduce(0, +) / Double(steady.count)
        let flops = steady.map(\.flops).reduce(0, +) / Double(steady.count)
        // The profile's own cost in the timed epochs: the products it timed per epoch, each at its cost alone.
        let profiledCalls = Double(profiled.reduce(0) { $0 + $1.calls }) / Double(steady.count)
        let profileCost = profiledCalls * ProductProfile.costPerCall()
        var result: [String: Any] = [
            "engine": MatmulEngine.current(for: settings.productPrecision).rawValue,
            "precision": settings.productPrecision.rawValue, "adam_moments": adamMoments.rawValue, "update_in_backward": updateInBackward,
            "openblas_core": OpenBLASCore.name,
            "openmp_wait": LibraryEnvironment.openMPWait, "threads": threads, "batch_size": batch, "epochs": epochs, "base_weight_bytes": lm.model.baseWeightBytes,
            "trainable_parameters": run.trainer.trainableParameterCount,
            "facts": dataset.facts.count,
            "tokens_per_epoch": reports[0].tokens,
            "warmup_epoch_seconds": reports[0].epochSeconds,
            "seconds_per_epoch": seconds,
            "tokens_per_second": Double(reports[0].tokens) / seconds,
            "peak_rss_mib": Double(peakResident) / 1_048_576,
            "sgemm_peak_gflops": peak,
            "model_gflops_per_epoch": flops / 1e9,
            "mfu": flops / seconds / (peak * 1e9),
            "final_loss": Double(reports.last?.loss ?? .nan),
            "products": products.rows, "products_vs_alone": products.ratio,
            "profiled_products_per_epoch": profiledCalls, "profile_seconds_per_epoch": profileCost,
            "onednn_isa": MatmulEngine.oneDNNInstructionSet ?? "none",
        ]
        if let vectorPeak { result["vector_peak_gflops"] = vectorPeak }
        if let instruction = VectorPeak.instruction(bf16: bf16) { result["vector_peak_instruction"] = instruction }
        if settings.productPrecision == .bf16 { result["bf16_kernels"] = MatmulEngine.hasBF16Kernels }
        if settings.productPrecision == .bf16, let notice = MatmulEngine.bf16Notice { result["bf16_notice"] = notice }
        if products.streamedRatio.isFinite { result["products_vs_streamed"] = products.streamedRatio }
        // JSON has no NaN (a diverged loss, a ratio over no products): such a figure is left out, the row kept.
        let data = try JSONSerialization.data(withJSONObject: result.filter { ($0.value as? Double)?.isFinite != false }, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// The shapes that took 95% of the profiled product time (at most 12), each
    /// with its GFLOP/s in training beside the same product's alone (B hot in
    /// cache, and B streamed from memory as training reads a frozen weight),
    /// and the ratio of the time all profiled products would take alone to
    /// the time they took in training (`streamedRatio`: the same over the
    /// shapes with a streamed rate, against it).
    static func productRates(_ entries: [ProductProfile.Entry], context: ComputeContext)
        -> (rows: [[String: Any]], ratio: Double, streamedRatio: Double) {
        let total = entries.reduce(0) { $0 + $1.seconds }
        var rows: [[String: Any]] = [], covered = 0.0, aloneSeconds = 0.0, measuredSeconds = 0.0
        var streamedSeconds = 0.0, measuredStreamedSeconds = 0.0
        for entry in entries where covered < 0.95 * total && rows.count < 12 {
            covered += entry.seconds
            let alone = ProductProfile.isolatedRate(entry.shape)
            aloneSeconds += entry.shape.flops * Double(entry.calls) / (alone * 1e9)
            measuredSeconds += entry.seconds
            var row: [String: Any] = ["shape": entry.shape.description, "calls": entry.calls, "seconds": entry.seconds,
                                      "gflops": entry.gflops, "alone_gflops": alone, "share": entry.seconds / total]
            if let streamed = ProductProfile.streamedRate(entry.shape) {
                row["streamed_gflops"] = streamed
                streamedSeconds += entry.shape.flops * Double(entry.calls) / (streamed * 1e9)
                measuredStreamedSeconds += entry.seconds
            }
            rows.append(row)
        }
        return (rows, measuredSeconds > 0 ? aloneSeconds / measuredSeconds : .nan,
                measuredStreamedSeconds > 0 ? streamedSeconds / measuredStreamedSeconds : .nan)
    }

    private func printTable(_ rows: [[String: Any]]) {
        func f(_ v: Any?, _ format: String) -> String { (v as? Double).map { String(format: format, $0) } ?? "—" }
        func verdict(_ r: [String: Any]) -> String {
            guard let speedup = r["speedup_vs_pytorch"] as? Double, let target = r["speedup_target"] as? Double else { return "       " }
            return speedup >= target ? "met    " : "not met"
        }
        print("method    engine   prec  threads batch  s/epoch  tokens/s  peak RSS MiB  sgemm GFLOP/s   MFU   | PyTorch s/epoch  RSS MiB  speed-up"
              + "  target  MFU the target needs")
        for r in rows {
            print(((r["method"] as? String) ?? "").padding(toLength: 9, withPad: " ", startingAt: 0),
                  ((r["engine"] as? String) ?? "").padding(toLength: 8, withPad: " ", startingAt: 0),
                  ((r["precision"] as? String) ?? "").padding(toLength: 5, withPad: " ", startingAt: 0),
                  String(format: "%7d %5d", r["threads"] as? Int ?? 0, r["batch_size"] as? Int ?? 0),
                  f(r["seconds_per_epoch"], "%8.3f"), f(r["tokens_per_second"], "%9.1f"), f(r["peak_rss_mib"], "%13.0f"),
                  f(r["sgemm_peak_gflops"], "%14.1f"), f((r["mfu"] as? Double).map { $0 * 100 }, "%5.1f%%"), "|",
                  f(r["pytorch_seconds_per_epoch"], "%15.3f"), f(r["pytorch_peak_rss_mib"], "%8.0f"), f(r["speedup_vs_pytorch"], "%8.2f×"),
                  f(r["speedup_target"], "%5.1f×"), verdict(r), f((r["mfu_for_target"] as? Double).map { $0 * 100 }, "%6.0f%%"))
        }
        if rows.contains(where: { ($0["mfu_for_target"] as? Double ?? 0) > 1 }) {
            print("(a target that needs more than 100% of the engine's peak is out of reach of any schedule of these products)")
        }
        // With several rounds, each row's figures round by round (the table shows their medians).
        for r in rows where (r["rounds"] as? Int ?? 1) > 1 {
            func list(_ key: String, _ format: String) -> String {
                ((r[key] as? [Any]) ?? []).map { ($0 as? Double).map { String(format: format, $0) } ?? "—" }.joined(separator: ", ")
            }
            print("rounds of \(r["method"] as? String ?? "") \(r["engine"] as? String ?? "") \(r["precision"] as? String ?? "") batch \(r["batch_size"] as? Int ?? 0):"
                  + " s/epoch \(list("seconds_per_epoch_rounds", "%.3f")); PyTorch \(list("pytorch_seconds_per_epoch_rounds", "%.3f"));"
                  + " speed-ups \(list("speedup_vs_pytorch_rounds", "%.2f×"))")
        }
        // Each row's engine peak beside the cores' own, and its MFU against both.
        for r in rows {
            guard let vector = r["vector_peak_gflops"] as? Double, let sgemm = r["sgemm_peak_gflops"] as? Double else { continue }
            let mfu = r["mfu"] as? Double
            print("peaks of \(r["method"] as? String ?? "") \(r["engine"] as? String ?? "") \(r["precision"] as? String ?? "") threads \(r["threads"] as? Int ?? 0) batch \(r["batch_size"] as? Int ?? 0):"
                  + " the cores' vector multiply-adds (\(r["vector_peak_instruction"] as? String ?? "?")) \(f(vector, "%.1f")) GFLOP/s; the engine's 1024³ product \(f(sgemm, "%.1f"))"
                  + " (\(f(sgemm / vector * 100, "%.0f"))% of the cores'); the step's MFU \(f(mfu.map { $0 * 100 }, "%.1f"))% of the engine's,"
                  + " \(f(mfu.map { $0 * sgemm / vector * 100 }, "%.1f"))% of the cores'")
        }
        for r in rows {
            if let error = r["error"] as? String { print("failed: \(r["method"] as? String ?? "") \(r["precision"] as? String ?? ""): \(error)") }
            if let error = r["pytorch_error"] as? String { print("PyTorch failed beside \(r["method"] as? String ?? "") \(r["precision"] as? String ?? ""): \(error)") }
        }
        // Each configuration's products: GFLOP/s in training against the same product alone, in the same child.
        for r in rows {
            guard let products = r["products"] as? [[String: Any]], !products.isEmpty else { continue }
            print("\nproducts of \(r["method"] as? String ?? "") \(r["engine"] as? String ?? "") \(r["precision"] as? String ?? "") threads \(r["threads"] as? Int ?? 0) batch \(r["batch_size"] as? Int ?? 0):"
                  + " training at \(f((r["products_vs_alone"] as? Double).map { $0 * 100 }, "%.0f"))% of their rate alone,"
                  + " \(f((r["products_vs_streamed"] as? Double).map { $0 * 100 }, "%.0f"))% of their rate with B streamed from memory"
                  + " (time-weighted; streamed: the frozen bases' shapes only, bf16-stored or packed)")
            print("  M×K×N layout precision".padding(toLength: 46, withPad: " ", startingAt: 0)
                  + "calls  time share  GFLOP/s training  alone   ratio | B streamed  ratio")
            for p in products {
                let training = p["gflops"] as? Double ?? .nan, alone = p["alone_gflops"] as? Double ?? .nan
                let streamed = p["streamed_gflops"] as? Double
                print("  " + (p["shape"] as? String ?? "").padding(toLength: 44, withPad: " ", startingAt: 0),
                      String(format: "%5d %10.1f%% %17.1f %6.1f %6.0f%% |", p["calls"] as? Int ?? 0, (p["share"] as? Double ?? 0) * 100,
                             training, alone, training / alone * 100),
                      streamed.map { String(format: "%10.1f %5.0f%%", $0, training / $0 * 100) } ?? "         —      —")
            }
        }
    }
}

/// Whether a child's time ran out (set on the timer's queue, read after the child exits).
private final class ChildTimeout: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func fire() { lock.withLock { value = true } }
    var fired: Bool { lock.withLock { value } }
}
