// Adapter methods: parameter counts equal PEFT's, and finite-difference checks
// of every adapter parameter's gradient for LoRA (default targets, all-linear,
// rsLoRA, dropout) and IA³.
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct AdapterTests {
    static let smolLM2 = LlamaConfiguration(
        vocabularySize: 49152, hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3,
        rmsNormEps: 1e-5, ropeTheta: 100000, tieWordEmbeddings: true)

    @Test func trainableCountsEqualPEFTOnSmolLM2() {
        #expect(ParameterLayout(config: Self.smolLM2).parameterCount == 134_515_008)
        func count(_ m: MethodSettings) -> Int { AdapterLayout(config: Self.smolLM2, method: m).entries.reduce(0) { $0 + $1.count } }
        #expect(count(MethodSettings(kind: .lora, rank: 4, alpha: 16)) == 230_400)
        #expect(count(MethodSettings(kind: .lora, rank: 8, alpha: 32)) == 460_800)
        #expect(count(MethodSettings(kind: .qlora, rank: 8, alpha: 32)) == 460_800)
        #expect(count(MethodSettings(kind: .ia3)) == 57_600)
    }

    static let methods: [(String, MethodSettings)] = [
        ("lora q,v", MethodSettings(kind: .lora, rank: 3, alpha: 6)),
        ("lora all-linear rslora", MethodSettings(kind: .lora, rank: 2, alpha: 5, rsLoRA: true, targets: ProjectionKind.allCases)),
        ("lora dropout", MethodSettings(kind: .lora, rank: 2, alpha: 4, dropout: 0.3, targets: [.k, .o, .down])),
        ("ia3", MethodSettings(kind: .ia3)),
        ("ia3 all-linear", MethodSettings(kind: .ia3, targets: ProjectionKind.allCases)),
    ]

    @Test(arguments: 0..<5)
    func adapterGradientsMatchFiniteDifferences(index: Int) throws {
        let (name, method) = Self.methods[index]
        let config = TinyModels.config(tied: index % 2 == 0, llama3Rope: index % 2 == 1)
        let model = TinyModels.model(config)
        let batch = TinyModels.batch(vocab: config.vocabularySize)
        let ctx = ComputeContext(threads: 2)
        let ft = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: 2, maxSeq: batch.seqLen, seed: 3, context: ctx)
        // Move away from the initialisation (B = 0, l = 1) so every gradient is informative.
        var rng = SeededGenerator(seed: 9)
        for e in ft.trainable {
            let t = try #require(ft.tensor(e.name))
            for i in t.indices { t[i] += 0.3 * rng.nextNormal() }
        }
        func loss() -> Float {
            var maskRNG = SeededGenerator(seed: 77)
            return ft.network.forward(batch, ft.activations, rng: &maskRNG, context: ctx)
        }
        _ = loss()
        ft.network.backward(batch, ft.activations, context: ctx)
        var worst: Float = 0
        for e in ft.trainable {
            let p = try #require(ft.tensor(e.name))
            for _ in 0..<4 {
                let i = Int(rng.next() % UInt64(e.count))
                // Small steps: the perturbed adapters make the loss strongly curved.
                let saved = p[i], h: Float = 2e-3
                p[i] = saved + h
                let up = loss()
                p[i] = saved - h
                let down = loss()
                p[i] = saved
                let numeric = (up - down) / (2 * h)
                let analytic = ft.gradients.base[e.offset + i]
                let error = abs(numeric - analytic) / max(1e-2, abs(numeric) + abs(analytic))
                worst = max(worst, error)
                #expect(error < 2e-2, "\(name) \(e.name)[\(i)]: analytic \(analytic) numeric \(numeric)")
            }
        }
        print("adapter gradient check \(name): \(ft.trainableParameterCount) parameters, worst relative error \(worst)")
    }

    @Test func frozenBaseIsNotModifiedByAdapterTraining() throws {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        let before = Array(model.parameters.buffer)
        let batch = TinyModels.batch(vocab: config.vocabularySize)
        let ft = try FineTuning(base: model, method: MethodSettings(kind: .lora, rank: 2, alpha: 4), optimizer: AdamWSettings(),
                                maxBatch: 2, maxSeq: batch.seqLen, seed: 1, context: ComputeContext(threads: 1))
        let first = ft.step(batch, lr: 1e-2).loss
        var last = first
        for _ in 0..<20 { last = ft.step(batch, lr: 1e-2).loss }
        #expect(last < first)
        let changed = firstDifference(Array(model.parameters.buffer), before)
        #expect(changed == nil, "\(changed ?? "")")
    }

    @Test func invalidSettingsAreRefused() {
        for bad in [MethodSettings(kind: .lora, rank: 0), MethodSettings(kind: .lora, alpha: -1), MethodSettings(kind: .lora, dropout: 1)] {
            #expect(throws: MethodError.self) { try bad.validate() }
        }
        #expect(throws: MethodError.self) { try MethodSettings.parseTargets("q_proj,attn") }
        #expect((try? MethodSettings.parseTargets("all-linear")) == ProjectionKind.allCases)
    }
}
