// Export and import: PEFT adapter directories round-trip, and a merged model
// loaded as a plain Hugging Face checkpoint computes the same logits as the
// base plus adapter.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite(.serialized) struct ExportTests {
    static let methods = [
        MethodSettings(kind: .lora, rank: 4, alpha: 8, targets: [.q, .v, .down]),
        MethodSettings(kind: .lora, rank: 2, alpha: 4, rsLoRA: true, targets: ProjectionKind.allCases),
        MethodSettings(kind: .ia3),
    ]

    @Test(arguments: 0..<3)
    func adapterRoundTripsAndMergedModelMatches(index: Int) throws {
        let method = Self.methods[index]
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let lm = try LanguageModel.load(dir.url)
        let ctx = ComputeContext(threads: 2)
        let ids = try lm.encode("Where did Talvi Orsenko study?", addSpecialTokens: true)
        let batch = TokenBatch(batchSize: 1, seqLen: ids.count, tokens: ids, targets: Array(repeating: TokenBatch.ignore, count: ids.count))
        let ft = try FineTuning(base: lm.model, method: method, optimizer: AdamWSettings(), maxBatch: 1, maxSeq: ids.count, seed: 4, context: ctx)
        var rng = SeededGenerator(seed: 8)
        for i in 0..<ft.parameters.capacity { ft.parameters.base[i] += 0.2 * rng.nextNormal() }
        let rows = Array(0..<ids.count)
        let expected = ft.network.logits(batch, outputRows: rows, ft.activations, context: ctx)

        // Adapter directory → a fresh trial with --init-adapter semantics.
        let adapterDir = dir.url.appendingPathComponent("adapter")
        try ft.exportAdapter(to: adapterDir, baseModel: "tiny")
        let settings = try FineTuning.adapterSettings(adapterDir, quantizedBase: false)
        #expect(settings.kind == method.kind && settings.resolvedTargets == method.resolvedTargets)
        #expect(method.kind == .ia3 || (settings.rank == method.rank && settings.alpha == method.alpha && settings.rsLoRA == method.rsLoRA))
        let again = try FineTuning(base: lm.model, method: settings, optimizer: AdamWSettings(), maxBatch: 1, maxSeq: ids.count, seed: 99, context: ctx)
        try again.loadAdapter(from: adapterDir)
        #expect(again.network.logits(batch, outputRows: rows, again.activations, context: ctx) == expected)

        // Merged directory → a plain model with no adapter.
        let mergedDir = dir.url.appendingPathComponent("merged")
        try ft.exportMerged(to: mergedDir)
        try lm.writeTokenizerFiles(to: mergedDir)
        let merged = try LanguageModel.load(mergedDir)
        let net = merged.model.frozenNetwork()
        let acts = LlamaActivations(network: net, maxBatch: 1, maxSeq: ids.count, threads: ctx.threads)
        let logits = net.logits(batch, outputRows: rows, acts, context: ctx)
        var worst: Float = 0, scale: Float = 0
        for i in logits.indices { worst = max(worst, abs(logits[i] - expected[i])); scale = max(scale, abs(expected[i])) }
        #expect(worst <= 1e-5 * max(1, scale), "\(method.kind) merged logits differ by \(worst)")
        print("export \(method.kind): merged vs adapter max |Δlogit| \(worst) (scale \(scale))")
    }

    /// A trial that trained on bf16 or NF4 projections records the
    /// fingerprint of that load; export loads the same files with Float32
    /// projections and must recognise them (and still refuse another model).
    @Test func checkpointsOfEveryStorageExportFromAFloat32Load() throws {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        let ctx = ComputeContext(threads: 2)
        let float32 = try LanguageModel.load(dir.url)
        for storage in [LinearStorage.bf16, .nf4] {
            #expect(float32.model.fingerprint(as: storage) == (try LanguageModel.load(dir.url, storage: storage)).model.fingerprint, "\(storage)")
        }
        #expect(try LanguageModel.load(dir.url, storage: .bf16).model.fingerprint(as: .float32) == nil)
        let otherDir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: otherDir.url, seed: 2)
        let other = try LanguageModel.load(otherDir.url)
        for (kind, precision) in [(MethodKind.lora, Precision.bf16), (.ia3, .bf16), (.qlora, .f32)] {
            var settings = TrainingSettings()
            settings.method = MethodSettings(kind: kind, rank: 2)
            settings.precision = precision == .bf16 ? .bf16 : nil
            settings.epochs = 1
            settings.learningRate = 1e-2
            let storage = LinearStorage.training(kind, precision: precision)
            let trained = try LanguageModel.load(dir.url, storage: storage, context: ctx)
            let run = try TrainingRun(model: trained, dataset: dataset, settings: settings, context: ctx)
            try run.run { _ in .more }
            let checkpoint = dir.url.appendingPathComponent("checkpoint-\(kind.rawValue)")
            try run.saveCheckpoint(to: checkpoint)
            // What `factsweep export` loads: NF4 for QLoRA, Float32 projections otherwise.
            let exportBase = kind == .qlora ? trained : float32
            let exported = try FineTuning(checkpoint: checkpoint, base: exportBase.model, maxSeq: 8, context: ctx)
            #expect(Array(exported.parameters.buffer) == Array(run.trainer.parameters.buffer), "\(kind) \(precision)")
            if kind != .qlora {
                #expect { try FineTuning(checkpoint: checkpoint, base: other.model, maxSeq: 8, context: ctx) } throws: { error in
                    "\(error)".contains("another base model")
                }
            }
        }
    }

    /// `base_model_name_or_path` names the model rather than this machine's path: the default GGUF's
    /// `general.name`, a Hugging Face directory's `_name_or_path`, and the path only when the files hold no name.
    @Test func adapterNamesItsBaseModelByNameAndByPathOnlyWithoutOne() throws {
        let dir = try TemporaryDirectory()
        func exportedBase(_ lm: LanguageModel) throws -> String? {
            let ft = try FineTuning(base: lm.model, method: MethodSettings(kind: .ia3), optimizer: AdamWSettings(), maxBatch: 1,
                                    maxSeq: 4, seed: 1, context: ComputeContext(threads: 1))
            let out = dir.url.appendingPathComponent(UUID().uuidString)
            try ft.exportAdapter(to: out, baseModel: lm.adapterBaseModel)
            let data = try Data(contentsOf: out.appendingPathComponent("adapter_config.json"))
            return try JSONDecoder().decode(PEFTAdapterConfig.self, from: data).baseModelNameOrPath
        }
        #expect(try exportedBase(LanguageModel.load(TestPaths.model("smollm2-135m-instruct"))) == "Smollm2 135M 8k Lc100K Mix1 Ep2")

        let tiny = dir.url.appendingPathComponent("tiny")
        try FileManager.default.createDirectory(at: tiny, withIntermediateDirectories: true)
        try TinyCheckpoints.llama3(in: tiny)
        #expect(try exportedBase(LanguageModel.load(tiny)) == tiny.path)
        let configURL = tiny.appendingPathComponent("config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["_name_or_path"] = "example/tiny-llama"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        #expect(try exportedBase(LanguageModel.load(tiny)) == "example/tiny-llama")
    }

    @Test func foreignAdaptersAreRefused() throws {
        let dir = try TemporaryDirectory()
        let config = #"{"peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "target_modules": ["q_proj"]}"#
        try config.write(to: dir.file("adapter_config.json"), atomically: true, encoding: .utf8)
        #expect { try FineTuning.adapterSettings(dir.url, quantizedBase: false) } throws: { "\($0)".contains("PREFIX_TUNING") }
        let bias = #"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "target_modules": ["q_proj"], "r": 4, "lora_alpha": 8, "bias": "all"}"#
        try bias.write(to: dir.file("adapter_config.json"), atomically: true, encoding: .utf8)
        #expect { try FineTuning.adapterSettings(dir.url, quantizedBase: false) } throws: { "\($0)".contains("bias") }
    }
}
