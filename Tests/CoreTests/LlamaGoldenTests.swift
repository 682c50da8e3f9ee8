// Golden tests against transformers (scripts/reference/make_llama_golden.py):
// logits, loss, every parameter gradient and 10 AdamW steps of tiny random
// Llamas loaded from real Hugging Face directories — llm.c's test_gpt2.c.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct LlamaGoldenTests {
    struct Golden {
        let model: LlamaModel
        let batch: TokenBatch
        let file: SafetensorsFile

        init(_ variant: String) throws {
            let dir = TestPaths.golden(variant)
            let loaded = try ModelLocation.open(dir)
            model = try LlamaModel(config: loaded.configuration, source: loaded.tensors)
            file = try SafetensorsFile(url: dir.appendingPathComponent("golden.safetensors"))
            let shape = try #require(file.shape(of: "input_ids"))
            batch = TokenBatch(batchSize: shape[0], seqLen: shape[1],
                               tokens: try file.ints("input_ids").map { Int32($0) },
                               targets: try file.ints("targets").map { Int32($0) })
        }

        func floats(_ name: String) throws -> [Float] {
            let count = try #require(file.shape(of: name)).reduce(1, *)
            var out = [Float](repeating: 0, count: count)
            try out.withUnsafeMutableBufferPointer { try file.read(name, into: $0) }
            return out
        }
    }

    /// Largest |a − b| divided by the largest |b| (at least `floor`).
    static func relativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-3) -> Float {
        precondition(a.count == b.count)
        var diff: Float = 0, scale: Float = floor
        for i in a.indices { diff = max(diff, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return diff / scale
    }

    static let variants = ["tiny-tied", "tiny-untied-llama3", "tiny-headdim"]

    @Test(arguments: variants)
    func logitsLossAndGradientsMatchTransformers(variant: String) throws {
        let g = try Golden(variant)
        let ctx = ComputeContext(threads: 2)
        let b = g.batch
        let frozen = g.model.frozenNetwork()
        let frozenActs = LlamaActivations(network: frozen, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
        let logits = frozen.logits(b, outputRows: Array(0..<(b.batchSize * b.seqLen)), frozenActs, context: ctx)
        let logitError = Self.relativeError(logits, try g.floats("logits"))
        #expect(logitError < 2e-5, "\(variant): logits relative error \(logitError)")

        let ft = try FineTuning(base: g.model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(),
                                maxBatch: b.batchSize, maxSeq: b.seqLen, seed: 1, context: ctx)
        let gradArena = ft.gradients
        let loss = ft.network.forward(b, ft.activations, context: ctx)
        let expectedLoss = try g.floats("loss")[0]
        #expect(abs(loss - expectedLoss) < 2e-5, "\(variant): loss \(loss) vs \(expectedLoss)")
        ft.network.backward(b, ft.activations, context: ctx)
        var worst: (Float, String) = (0, "")
        for e in g.model.layout.entries {
            let ours = Array(UnsafeBufferPointer(start: gradArena.base + e.offset, count: e.count))
            let error = Self.relativeError(ours, try g.floats("grad." + e.name))
            if error > worst.0 { worst = (error, e.name) }
            #expect(error < 1e-4, "\(variant): gradient of \(e.name) relative error \(error)")
        }
        print("golden \(variant): logits \(logitError), loss |Δ| \(abs(loss - expectedLoss)), worst gradient \(worst.0) (\(worst.1))")
    }

    @Test(arguments: variants)
    func tenAdamWStepsMatchTorch(variant: String) throws {
        let g = try Golden(variant)
        let ctx = ComputeContext(threads: 2)
        let meta = g.file.metadata
        func setting(_ key: String) throws -> Float { try #require(meta[key].flatMap { Float($0) }, "metadata \(key)") }
        let settings = AdamWSettings(beta1: try setting("beta1"), beta2: try setting("beta2"), eps: try setting("eps"),
                                     weightDecay: try setting("weight_decay"), maxGradNorm: try setting("clip"))
        let trainer = try FineTuning(base: g.model, method: MethodSettings(kind: .full), optimizer: settings,
                                     maxBatch: g.batch.batchSize, maxSeq: g.batch.seqLen, seed: 1, context: ctx)
        let expectedLosses = try g.floats("step_losses"), expectedNorms = try g.floats("grad_norm")
        let lr = try setting("lr")
        for step in 0..<expectedLosses.count {
            let r = trainer.step(g.batch, lr: lr)
            #expect(abs(r.loss - expectedLosses[step]) < 1e-4 * max(1, expectedLosses[step]), "\(variant) step \(step): loss \(r.loss) vs \(expectedLosses[step])")
            let norm = try #require(r.gradientNorm, "clipping needs the norm")
            #expect(abs(norm - expectedNorms[step]) < 1e-4 * max(1, expectedNorms[step]), "\(variant) step \(step): norm \(norm) vs \(expectedNorms[step])")
        }
        var worst: Float = 0
        for e in g.model.layout.entries {
            let ours = Array(try #require(trainer.tensor(e.name)))
            let error = Self.relativeError(ours, try g.floats("final." + e.name))
            worst = max(worst, error)
            // 2e-4, not the 1e-4 of the per-step losses and norms: AdamW divides by sqrt(v), which magnifies
            // float32 reassociation in small gradients over ten steps, and OpenBLAS sums differently per CPU:
            // tiny-untied-llama3 ends at 1.04e-4 on the Intel Xeon machines here (every branch, unchanged Core), below
            // 1e-4 on AMD Zen 4. Any real error in a gradient or the update is orders of magnitude larger.
            #expect(error < 2e-4, "\(variant): parameter \(e.name) after 10 steps, relative error \(error)")
        }
        print("golden \(variant): 10 AdamW steps, worst final-parameter relative error \(worst)")
    }
}
