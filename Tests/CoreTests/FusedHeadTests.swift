// FusedHeadTests: the frozen head's loss and input gradient in one pass over
// its weight (FusedHead.swift) against the same in Double and against the two
// products with the loss between them; and a network's training step with it
// against the step without it, for the methods and precisions that take it.
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct FusedHeadTests {
    /// Random labelled rows and head whose softmax maximum lies in the first
    /// block for one row, in the last for another, and moves between blocks
    /// for the rest (W's rows grow with their index); targets at the ends of
    /// blocks and of the vocabulary's halves (the threads' shares on two).
    struct Case {
        let rows: Int, vocab: Int, width: Int
        let inp: [Float], weight: [Float], targets: [Int32]

        init(vocab V: Int, width C: Int) {
            var rng = SeededGenerator(seed: 21)
            var w = [Float](repeating: 0, count: V * C)
            for v in 0..<V {
                let grow = 0.1 * (1 + 4 * Float(v) / Float(V))
                for i in 0..<C { w[v * C + i] = grow * rng.nextNormal() }
            }
            let blockRows = fusedHeadBlockRows(width: C, vocab: V, chunks: 1)
            targets = [0, Int32(V - 1), Int32(blockRows - 1), Int32(blockRows), Int32(V / 2), Int32(V / 2 - 1), 7]
            rows = targets.count
            var x = [Float](repeating: 0, count: rows * C)
            for r in 0..<rows { for i in 0..<C { x[r * C + i] = rng.nextNormal() } }
            // Row 0's logit at its target 0 and row 1's at its target V − 1 are 40, far above the rest.
            for (r, v) in [(0, 0), (1, V - 1)] {
                let norm = (0..<C).reduce(Float(0)) { $0 + w[v * C + $1] * w[v * C + $1] }
                for i in 0..<C { x[r * C + i] = 40 * w[v * C + i] / norm }
            }
            (vocab, width, inp, weight) = (V, C, x, w)
        }

        /// Each row's loss and gradScale · ∂loss/∂inp, in Double.
        func exact(gradScale: Double) -> (losses: [Double], dinp: [Double]) {
            var losses = [Double](), dinp = [Double](repeating: 0, count: rows * width)
            for r in 0..<rows {
                let logits = (0..<vocab).map { v in (0..<width).reduce(0.0) { $0 + Double(inp[r * width + $1]) * Double(weight[v * width + $1]) } }
                let top = logits.max()!, sum = logits.reduce(0.0) { $0 + exp($1 - top) }
                losses.append(top + log(sum) - logits[Int(targets[r])])
                for v in 0..<vocab {
                    let p = exp(logits[v] - top) / sum - (v == Int(targets[r]) ? 1 : 0)
                    for i in 0..<width { dinp[r * width + i] += gradScale * p * Double(weight[v * width + i]) }
                }
            }
            return (losses, dinp)
        }

        /// The fused pass on `threads` threads: the mean loss, each row's, and
        /// the gradient; it must write nothing past its scratch.
        func fused(threads: Int, gradScale: Float) -> (mean: Float, losses: [Float], dinp: [Float]) {
            let ctx = ComputeContext(threads: threads)
            var losses = [Float](repeating: .nan, count: rows), dinp = [Float](repeating: .nan, count: rows * width)
            let count = fusedHeadScratchFloats(rows: rows, vocab: vocab, width: width, threads: threads), guardCount = 64
            var scratch = [Float](repeating: .nan, count: count + guardCount)
            for i in count..<(count + guardCount) { scratch[i] = 12345 }
            let mean = fusedHeadCrossEntropy(inp: inp, weight: weight, vocab: vocab, width: width, targets: targets, rows: rows,
                                             gradScale: gradScale, losses: &losses, dinp: &dinp, scratch: &scratch, context: ctx)
            #expect(scratch[count...].allSatisfy { $0 == 12345 }, "the pass wrote past its scratch")
            return (mean, losses, dinp)
        }

        /// The two products and the loss between them, as without the fused head.
        func unfused(threads: Int, gradScale: Float) -> (mean: Float, losses: [Float], dinp: [Float]) {
            let ctx = ComputeContext(threads: threads)
            var logits = [Float](repeating: 0, count: rows * vocab), losses = [Float](repeating: 0, count: rows)
            var dinp = [Float](repeating: 0, count: rows * width)
            gemm(transA: false, transB: true, m: rows, n: vocab, k: width, a: inp, lda: width, b: weight, ldb: width, beta: 0, c: &logits, ldc: vocab)
            let mean = logits.withUnsafeMutableBufferPointer { l in
                losses.withUnsafeMutableBufferPointer { out in
                    crossEntropyForwardBackward(logits: FloatPointer(l.baseAddress!), losses: FloatPointer(out.baseAddress!), targets: targets,
                                                rows: rows, vocab: vocab, gradScale: gradScale, context: ctx)
                }
            }
            gemm(transA: false, transB: false, m: rows, n: width, k: vocab, a: logits, lda: vocab, b: weight, ldb: width, beta: 0, c: &dinp, ldc: width)
            return (mean, losses, dinp)
        }
    }

    /// Llama-3.2-1B's width (blocks of 128 rows) and SmolLM2's (448), with a
    /// last block shorter than the rest, on one, two and three threads.
    @Test(arguments: [(1000, 2048, 2), (2000, 576, 1), (2000, 576, 2), (1500, 576, 3)])
    func sameAsInDoubleAndAsTheTwoProducts(_ shape: (vocab: Int, width: Int, threads: Int)) {
        let c = Case(vocab: shape.vocab, width: shape.width)
        #expect(shape.vocab / shape.threads > fusedHeadBlockRows(width: shape.width, vocab: shape.vocab, chunks: shape.threads), "a thread's share spans several blocks")
        let gradScale = 1 / Float(c.rows)
        let fused = c.fused(threads: shape.threads, gradScale: gradScale)
        let exact = c.exact(gradScale: Double(gradScale)), plain = c.unfused(threads: shape.threads, gradScale: gradScale)
        #expect(exact.losses[0] < 1e-2 && exact.losses[2] > 2, "row 0 picks its target, row 2 does not: \(exact.losses)")
        for r in 0..<c.rows {
            #expect(abs(Double(fused.losses[r]) - exact.losses[r]) <= 2e-5 * max(1, exact.losses[r]), "row \(r): \(fused.losses[r]) against \(exact.losses[r])")
            #expect(abs(fused.losses[r] - plain.losses[r]) <= 1e-5 * max(1, plain.losses[r]), "row \(r): \(fused.losses[r]) against \(plain.losses[r]) unfused")
        }
        let mean = exact.losses.reduce(0, +) / Double(c.rows)
        #expect(abs(Double(fused.mean) - mean) <= 2e-5 * mean && abs(fused.mean - plain.mean) <= 1e-5 * plain.mean)
        let scale = exact.dinp.map(abs).max()!
        let worstExact = zip(fused.dinp, exact.dinp).map { abs(Double($0) - $1) }.max()!
        let worstPlain = zip(fused.dinp, plain.dinp).map { abs($0 - $1) }.max()!
        #expect(scale > 0 && worstExact <= 1e-5 * scale, "gradient \(worstExact) from Double's (largest \(scale))")
        #expect(worstPlain <= 1e-5 * Float(scale), "gradient \(worstPlain) from the two products'")
    }

    /// No labelled rows: a loss of 0, nothing read or written.
    @Test func noRows() {
        var losses: [Float] = [.nan], dinp: [Float] = [.nan], scratch: [Float] = [.nan]
        let loss = fusedHeadCrossEntropy(inp: [1], weight: [1], vocab: 1, width: 1, targets: [0], rows: 0, gradScale: 1,
                                         losses: &losses, dinp: &dinp, scratch: &scratch, context: ComputeContext(threads: 2))
        #expect(loss == 0 && losses[0].isNaN && dinp[0].isNaN && scratch[0].isNaN)
    }

    /// A NaN in a row's input makes that row's loss and gradient NaN (the
    /// trial's loss then fails it), and only that row's.
    @Test func aNaNRowGivesANaNLoss() {
        var c = Case(vocab: 600, width: 2048)
        var inp = c.inp
        inp[3 * 2048 + 10] = .nan
        c = Case(copying: c, inp: inp)
        let fused = c.fused(threads: 2, gradScale: 1)
        #expect(fused.losses[3].isNaN && fused.mean.isNaN)
        #expect(fused.losses.enumerated().allSatisfy { $0.offset == 3 || $0.element.isFinite })
        let C = c.width
        #expect(fused.dinp[(3 * C)..<(4 * C)].allSatisfy { $0.isNaN }, "the NaN row's gradient")
        #expect(fused.dinp.enumerated().allSatisfy { $0.offset / C == 3 || $0.element.isFinite }, "a NaN leaked into other rows' gradients")
    }

    /// One training forward and backward of the tiny golden batch with the
    /// fused head and without it: the same loss and gradients for the
    /// methods whose head is frozen, in f32; full fine-tuning (whose head
    /// trains) and bf16 products take the two products.
    @Test(arguments: [MethodKind.full, .lora, .qlora, .ia3], [Precision.f32, .bf16])
    func sameStepAsWithoutIt(_ kind: MethodKind, precision: Precision) throws {
        try #require(fusedHead.byEnvironment, "\(fusedHead.environmentKey)=off turns off what this test checks")
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(kind, precision: precision),
                                   context: ctx)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        try #require(b.labelledCount > 0)
        let method = MethodSettings(kind: kind, rank: 4, alpha: 8)
        func run() throws -> (loss: Float, gradients: [Float], fused: Bool) {
            let ft = try LastLayerRowsTests.trial(model, method, batch: b, precision: precision, context: ctx)
            // As `FineTuning.step` runs them: in the trial's product precision.
            let (loss, fused) = ProductPrecision.run(precision) {
                let loss = ft.network.forward(b, ft.activations, context: ctx), fused = ft.activations.fusedHead
                ft.network.backward(b, ft.activations, context: ctx)
                return (loss, fused)
            }
            return (loss, Array(UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity)), fused)
        }
        let with = try run(), without = try fusedHead.withoutIt { try run() }
        #expect(with.fused == (kind != .full && precision == .f32) && !without.fused)
        #expect(abs(with.loss - without.loss) <= 1e-5 * abs(without.loss), "loss \(with.loss) fused, \(without.loss) not")
        let scale = without.gradients.map(abs).max() ?? 0
        let worst = zip(with.gradients, without.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0 && worst <= 1e-5 * scale, "\(kind) \(precision): gradients differ by \(worst) (largest \(scale))")
        #expect(with.gradients.allSatisfy { $0.isFinite })
    }
}

extension FusedHeadTests.Case {
    init(copying c: Self, inp: [Float]) {
        (rows, vocab, width, weight, targets) = (c.rows, c.vocab, c.width, c.weight, c.targets)
        self.inp = inp
    }
}
