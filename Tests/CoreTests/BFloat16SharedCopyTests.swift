// BFloat16SharedCopyTests: an operand that several bf16 products read inside
// a `sharingBFloat16Copy` scope is rounded once, and the products' results do
// not change by a bit — for single products and for whole training steps of
// every method.
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct BFloat16SharedCopyTests {
    static func normals(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextNormal() }
    }

    /// The products a projection makes of its input x (m, k): x·W₁ᵀ, x·W₂ᵀ,
    /// xᵀ·G (transposed), and one over x's first m−1 rows (another operand
    /// that starts at the same address).
    static func products(x: [Float], w1: [Float], w2: [Float], g: [Float], m: Int, k: Int, n: Int) -> [[Float]] {
        var outputs = [[Float]](repeating: [Float](repeating: 0, count: m * n), count: 2)
        outputs.append([Float](repeating: 0, count: k * n))
        outputs.append([Float](repeating: 0, count: (m - 1) * n))
        gemm(transA: false, transB: true, m: m, n: n, k: k, a: x, lda: k, b: w1, ldb: k, beta: 0, c: &outputs[0], ldc: n)
        gemm(transA: false, transB: true, m: m, n: n, k: k, a: x, lda: k, b: w2, ldb: k, beta: 0, c: &outputs[1], ldc: n)
        gemm(transA: true, transB: false, m: k, n: n, k: m, a: x, lda: k, b: g, ldb: n, beta: 0, c: &outputs[2], ldc: n)
        gemm(transA: false, transB: true, m: m - 1, n: n, k: k, a: x, lda: k, b: w1, ldb: k, beta: 0, c: &outputs[3], ldc: n)
        return outputs
    }

    /// On the process's bf16 engine (without bf16 kernels the f32 path rounds into Float32 copies and shares nothing: same results, no count).
    @Test func sharedOperandIsRoundedOnceWithTheSameResults() throws {
        let m = 37, k = 64, n = 48
        let x = Self.normals(m * k, seed: 1), w1 = Self.normals(n * k, seed: 2), w2 = Self.normals(n * k, seed: 3)
        let g = Self.normals(m * n, seed: 4)
        let scratch = ProductScratch.current
        try ProductPrecision.run(.bf16) {
            let before = scratch.conversions
            let alone = Self.products(x: x, w1: w1, w2: w2, g: g, m: m, k: k, n: n)
            let aloneConversions = scratch.conversions - before
            var shared: [[Float]] = []
            let middle = scratch.conversions
            try x.withUnsafeBufferPointer { buffer in
                let pointer = FloatPointer(UnsafeMutablePointer(mutating: try #require(buffer.baseAddress)))
                sharingBFloat16Copy(of: pointer, rows: m, columns: k) {
                    // A nested scope over the same matrix adds no second copy.
                    sharingBFloat16Copy(of: pointer, rows: m, columns: k) {
                        #expect(scratch.sharedCopies.count == 1)
                        shared = Self.products(x: x, w1: w1, w2: w2, g: g, m: m, k: k, n: n)
                    }
                }
            }
            #expect(scratch.sharedCopies.isEmpty)
            let sharedConversions = scratch.conversions - middle
            #expect(shared == alone)
            if MatmulEngine.hasBF16Kernels {
                // Alone: x four times and each B once (4 + 4); shared: x once for the three full reads, once for the sub-block.
                #expect(aloneConversions == 8, "\(aloneConversions)")
                #expect(sharedConversions == 6, "\(sharedConversions)")
            }
        }
        // In f32 a scope holds nothing.
        x.withUnsafeBufferPointer { buffer in
            sharingBFloat16Copy(of: FloatPointer(UnsafeMutablePointer(mutating: buffer.baseAddress!)), rows: m, columns: k) {
                #expect(scratch.sharedCopies.isEmpty)
            }
        }
    }

    /// One bf16 forward and backward of the tiny golden model (LoRA and QLoRA
    /// with dropout, whose masked input takes the scratch path), and the same
    /// model's inference logits: loss, every gradient and the logits bit for
    /// bit the same with the copies shared and without, with fewer
    /// conversions on the calling thread. On one thread the unshared run
    /// shares nothing anywhere; on two, attention's scopes on the worker
    /// thread share in both runs.
    ///
    /// `kernels` false runs the whole step as on a CPU without bf16 kernels
    /// (`ProductPrecision.withoutBF16Kernels`), which is what such a CPU runs
    /// either way: there it checks only that the step is deterministic.
    @Test(arguments: [MethodKind.full, .lora, .qlora, .ia3], [(1, true), (2, true), (1, false), (2, false)])
    func trainingStepIsBitIdentical(_ kind: MethodKind, setting: (threads: Int, kernels: Bool)) throws {
        let (threads, kernels) = setting
        let golden = try BFloat16GoldenTests.golden("tiny-tied")
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: threads)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(kind, precision: .bf16), context: ctx)
        let b = try BFloat16GoldenTests.batch(golden)
        let lora = kind == .lora || kind == .qlora
        let ft = try FineTuning(base: model, method: MethodSettings(kind: kind, rank: 4, alpha: 8, dropout: lora ? 0.1 : 0),
                                optimizer: AdamWSettings(weightDecay: 0, maxGradNorm: 1), maxBatch: b.batchSize, maxSeq: b.seqLen,
                                seed: 3, precision: .bf16, context: ctx)
        // LoRA's B starts at zero: made non-zero, so that every adapter product carries information.
        for e in ft.trainable where lora {
            let values = Self.normals(e.count, seed: UInt64(e.offset + 7))
            for i in 0..<e.count { ft.parameters.base[e.offset + i] += 0.05 * values[i] }
        }
        let rows = Array(0..<(b.batchSize * b.seqLen))
        func step() -> (loss: Float, gradients: [Float], logits: [Float], conversions: Int) {
            let scratch = ProductScratch.current
            let before = scratch.conversions
            let (loss, logits) = ProductPrecision.run(.bf16) { () -> (Float, [Float]) in
                // `forward` without an rng draws the same dropout masks on every call.
                let loss = ft.network.forward(b, ft.activations, context: ft.context)
                ft.network.backward(b, ft.activations, context: ft.context)
                return (loss, ft.network.logits(b, outputRows: rows, ft.activations, context: ft.context))
            }
            let gradients = [Float](UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity))
            return (loss, gradients, logits, scratch.conversions - before)
        }
        func run<R>(_ body: () -> R) -> R { kernels ? body() : ProductPrecision.withoutBF16Kernels(body) }
        let shared = run(step)
        let alone = run { withoutSharedBFloat16Copies(step) }
        #expect(shared.gradients.contains { $0 != 0 })
        guard kernels && MatmulEngine.hasBF16Kernels else {
            // No bf16 kernels (OneDNNReuseTests.bf16Refused, or turned off): every product rounds its operands into f32 for an f32
            // product, so there are no bf16 copies to share. On oneDNN the two runs are bit for bit the same; on
            // OpenBLAS its sums follow the threads other tests leave it (see `MatmulEngine.current`), so they agree
            // to rounding.
            #expect(shared.conversions == 0 && alone.conversions == 0, "\(shared.conversions), \(alone.conversions)")
            if MatmulEngine.currentBF16 == .oneDNN {
                #expect(shared.loss == alone.loss)
                #expect(shared.gradients == alone.gradients)
                #expect(shared.logits == alone.logits)
            } else {
                #expect(abs(shared.loss - alone.loss) <= 1e-5 * abs(alone.loss))
                #expect(FewRowsProductTests.relativeError(shared.gradients, alone.gradients) < 1e-4)
                #expect(FewRowsProductTests.relativeError(shared.logits, alone.logits) < 1e-5)
            }
            if kernels {
                print("note: no bf16 kernels on \(CPUFeatures.modelName): checked the f32 path on \(MatmulEngine.currentBF16) (\(kind), \(threads) threads)")
            }
            return
        }
        #expect(shared.loss == alone.loss)
        #expect(shared.gradients == alone.gradients)
        #expect(shared.logits == alone.logits)
        #expect(shared.conversions < alone.conversions, "\(kind): \(shared.conversions) conversions shared, \(alone.conversions) alone")
    }
    /// Decoding in bf16: q, k and v (and gate and up) read one rounding of
    /// their input, as in training, and generate the same tokens as with a
    /// rounding per product. The first pass runs 48 rows, above
    /// `decodingFewRowsLimit`, so its products go to the engine; one thread,
    /// so every conversion is counted on this one.
    @Test func decodingSharesTheProjectionsInputCopies() throws {
        let (dir, lm, network) = try EvaluationTests.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 1)
        let prompts: [[Int32]] = (0..<4).map { (b: Int) -> [Int32] in
            (0..<12).map { (i: Int) -> Int32 in Int32(200 + 97 * (b * 12 + i) % 5000) }
        }
        #expect(prompts.count * 12 > decodingFewRowsLimit)
        let generator = CachedGenerator(network: network, maxBatch: prompts.count, maxLength: 12 + 4, context: ctx)
        let scratch = ProductScratch.current
        func decode() -> (outputs: [[Int32]], conversions: Int) {
            let before = scratch.conversions
            let outputs = ProductPrecision.run(.bf16) { generator.generate(prompts: prompts, maxNewTokens: 4, stopTokens: []) }
            return (outputs, scratch.conversions - before)
        }
        let shared = decode()
        let alone = withoutSharedBFloat16Copies(decode)
        #expect(shared.outputs == alone.outputs)
        #expect(shared.outputs.allSatisfy { $0.count == 4 })
        guard MatmulEngine.hasBF16Kernels else {
            print("note: no bf16 kernels on \(CPUFeatures.modelName): decoding's rounded copies not counted")
            return
        }
        // The first pass, per layer: q, k, v read one copy instead of three, gate and up one instead of two.
        #expect(alone.conversions - shared.conversions >= 3 * network.config.layerCount,
                "\(shared.conversions) conversions shared, \(alone.conversions) alone")
    }
}
