// Finite-difference checks of the whole model's backward pass: every parameter
// tensor of tiny models (tied/untied, plain/Llama-3 RoPE, head_dim ≠ C/H).
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct ModelGradientCheckTests {
    static let variants: [(String, LlamaConfiguration)] = [
        ("tied", TinyModels.config()),
        ("untied-llama3", TinyModels.config(tied: false, llama3Rope: true)),
        ("headdim", TinyModels.config(headDimension: 6)),
    ]

    @Test(arguments: 0..<3)
    func everyParameterMatchesFiniteDifferences(variant: Int) throws {
        let (name, config) = Self.variants[variant]
        let model = TinyModels.model(config)
        let batch = TinyModels.batch(vocab: config.vocabularySize)
        let ctx = ComputeContext(threads: 2)
        let ft = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(),
                                maxBatch: 2, maxSeq: batch.seqLen, seed: 1, context: ctx)
        let net = ft.network, acts = ft.activations, gradArena = ft.gradients
        net.forward(batch, acts, context: ctx)
        net.backward(batch, acts, context: ctx)

        var rng = SeededGenerator(seed: 7)
        var worst: Float = 0
        for e in model.layout.entries {
            let p = try #require(ft.tensor(e.name))
            for _ in 0..<6 {
                let i = Int(rng.next() % UInt64(e.count))
                let saved = p[i], h: Float = 1e-2
                p[i] = saved + h
                let up = net.forward(batch, acts, context: ctx)
                p[i] = saved - h
                let down = net.forward(batch, acts, context: ctx)
                p[i] = saved
                let numeric = (up - down) / (2 * h)
                let analytic = gradArena.base[e.offset + i]
                let error = abs(numeric - analytic) / max(1e-2, abs(numeric) + abs(analytic))
                worst = max(worst, error)
                #expect(error < 2e-2, "\(name) \(e.name)[\(i)]: analytic \(analytic) numeric \(numeric)")
            }
        }
        print("gradient check \(name): worst relative error \(worst)")
    }
}
