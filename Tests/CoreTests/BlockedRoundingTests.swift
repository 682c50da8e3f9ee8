// BlockedRoundingTests: full fine-tuning in bf16 keeps its trained weights'
// roundings in oneDNN's blocked layouts, one per direction, written by the
// update 16 rows at a time (`factsweep_bf16_round_vnni`,
// `BFloat16Matrix.init(rounding:blocked:)`): every value lands in its place
// on every kernel path, the products over them equal those over plain rows,
// and training steps as with plain roundings, after the backward and in it,
// and after a write from outside.
import CKernels
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct BlockedRoundingTests {
    /// Values of every kind the rounding meets: normal ones of both signs and
    /// many exponents, ties, subnormals (which AVX512_BF16's own conversion
    /// would flush), zeros of both signs, infinities and a NaN.
    static func awkwardValues(_ count: Int, seed: UInt64) -> [Float] {
        var values = FewRowsProductTests.random(count, seed: seed).enumerated().map { i, x in x * Float(1 << (i % 9)) }
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .nan, Float(bitPattern: 0x0000_0001), Float(bitPattern: 0x807F_FFFF),
                                 Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), .greatestFiniteMagnitude]
        for (i, s) in specials.enumerated() { values[(i * 97 + 13) % count] = s }
        return values
    }

    /// `count` words filled with 0xFFFF, 64-byte aligned (as the copies are:
    /// the AVX-512 path's non-temporal stores need it) or, with `offset`,
    /// that many words past such an address (which the portable loop takes).
    static func words(_ count: Int, offset: Int) -> UnsafeMutableBufferPointer<UInt16> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * (count + offset), alignment: 64)
        let words = raw.bindMemory(to: UInt16.self, capacity: count + offset) + offset
        words.initialize(repeating: 0xFFFF, count: count)
        return UnsafeMutableBufferPointer(start: words, count: count)
    }

    static func free(_ words: UnsafeMutableBufferPointer<UInt16>, offset: Int) {
        UnsafeMutableRawPointer(words.baseAddress! - offset).deallocate()
    }

    /// Every row of the given range lands where oneDNN's layout puts it in
    /// both copies, rounded as `bfloat16Bits` rounds it; rows outside it are
    /// not written; sizes and ranges the layout cannot take are refused with
    /// nothing written. Copies that are not 64-byte aligned take the
    /// portable loop, with the same result.
    @Test(arguments: [KernelPath.widest, .portable], [0, 8])
    func roundingPlacesEveryValueInBothLayouts(path: KernelPath, offset: Int) throws {
        for (rows, columns, r0, r1) in [(64, 64, 0, 64), (128, 192, 16, 96), (192, 128, 0, 192)] {
            let w = Self.awkwardValues(rows * columns, seed: UInt64(rows + columns))
            let forward = Self.words(rows * columns, offset: offset), backward = Self.words(rows * columns, offset: offset)
            defer { Self.free(forward, offset: offset); Self.free(backward, offset: offset) }
            let done = factsweep_bf16_round_vnni(w, rows, columns, r0, r1, forward.baseAddress!, backward.baseAddress!, path.code)
            #expect(done == 1, "\(rows)×\(columns)")
            var misplaced = 0, written = 0
            for r in 0..<rows {
                for c in 0..<columns {
                    let f = forward[NF4ProductTests.blockedOffset(rowsOfB: columns, c, r)]
                    let b = backward[NF4ProductTests.blockedOffset(rowsOfB: rows, r, c)]
                    if (r0..<r1).contains(r) {
                        let bits = bfloat16Bits(w[r * columns + c])
                        if f != bits || b != bits { misplaced += 1 }
                    } else if f != 0xFFFF || b != 0xFFFF {
                        written += 1
                    }
                }
            }
            #expect(misplaced == 0, "\(rows)×\(columns), rows \(r0)..<\(r1): \(misplaced) values misplaced or misrounded")
            #expect(written == 0, "\(rows)×\(columns): \(written) values written outside rows \(r0)..<\(r1)")
        }
        for (rows, columns, r0, r1) in [(96, 64, 0, 96), (64, 96, 0, 64), (64, 64, 8, 64), (64, 64, 0, 40), (64, 64, 32, 16), (64, 64, 0, 80)] {
            let w = [Float](repeating: 1, count: max(rows, 80) * columns)
            let forward = Self.words(max(rows, 80) * columns, offset: offset), backward = Self.words(max(rows, 80) * columns, offset: offset)
            defer { Self.free(forward, offset: offset); Self.free(backward, offset: offset) }
            let done = factsweep_bf16_round_vnni(w, rows, columns, r0, r1, forward.baseAddress!, backward.baseAddress!, path.code)
            #expect(done == 0 && forward.allSatisfy { $0 == 0xFFFF } && backward.allSatisfy { $0 == 0xFFFF },
                    "\(rows)×\(columns), rows \(r0)..<\(r1) should be refused")
        }
    }

    /// A matrix with blocked roundings and one with plain rows, over the same
    /// weights: the forward's and the backward's products agree, and the
    /// blocked one reads its copies (two blocked products, made from the
    /// source on the first).
    @Test func blockedProductsEqualThePlainOnes() throws {
        let (rows, columns, m) = (192, 128, 62)
        let w = FewRowsProductTests.random(rows * columns, seed: 21), x = FewRowsProductTests.random(m * max(rows, columns), seed: 22)
        let context = ComputeContext(threads: 2)
        let readsBlocked = BFloat16Matrix.writesBlocked(rows: rows, columns: columns)
        if OneDNNMatmul.instructionSet == "avx512_core_bf16" { #expect(readsBlocked) }
        try w.withUnsafeBufferPointer { weights in
            let source = try #require(weights.baseAddress)
            let blocked = BFloat16Matrix(rounding: source, rows: rows, columns: columns, blocked: true)
            let plain = BFloat16Matrix(rounding: source, rows: rows, columns: columns, blocked: false)
            #expect(blocked.holdsBlockedRounding == readsBlocked)
            #expect(!plain.holdsBlockedRounding)
            func products(_ matrix: BFloat16Matrix) -> (forward: [Float], backward: [Float], blockedProducts: Int) {
                var forward = [Float](repeating: 0, count: m * rows), backward = [Float](repeating: 0, count: m * columns)
                let before = ProductScratch.current.blockedProducts
                ProductPrecision.run(.bf16) {
                    matrix.product(transB: true, m: m, a: x, beta: 0, c: &forward, context: context)
                    matrix.product(transB: false, m: m, a: x, beta: 0, c: &backward, context: context)
                }
                return (forward, backward, ProductScratch.current.blockedProducts - before)
            }
            let b = products(blocked), p = products(plain)
            #expect(b.blockedProducts == (readsBlocked ? 2 : 0))
            #expect(p.blockedProducts == 0)
            #expect(FewRowsProductTests.relativeError(b.forward, p.forward) < 1e-6)
            #expect(FewRowsProductTests.relativeError(b.backward, p.backward) < 1e-6)
            #expect(b.forward.contains { $0 != 0 } && b.backward.contains { $0 != 0 })
            // Without bf16 kernels (oneDNN's AVX2 matmul) the products read the plain rounding through f32
            // kernels, and nothing packs it and lets it go: it stays current.
            #expect(blocked.isCurrent == (MatmulEngine.hasBF16Kernels ? readsBlocked : true))
        }
    }

    /// A Llama whose every trained matrix fits the blocked layout (sizes multiples of 64).
    static let config = LlamaConfiguration(
        vocabularySize: 192, hiddenSize: 128, intermediateSize: 192, layerCount: 2, headCount: 4, kvHeadCount: 2,
        headDimension: nil, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 64)

    /// Full fine-tuning in bf16 with blocked roundings against plain ones:
    /// the same losses and weights step after step (the products read the
    /// same bf16 values in another layout), every rounding current and
    /// holding the new weights after each step; after a write from outside
    /// the blocked roundings are made again from the weights.
    @Test(arguments: [false, true])
    func trainingStepsAsWithPlainRoundings(inBackward: Bool) throws {
        let model = TinyModels.model(Self.config, seed: 4, std: 0.1)
        let batch = TinyModels.batch(vocab: Self.config.vocabularySize, seqLen: 9)
        let ctx = ComputeContext(threads: 2)
        let settings = AdamWSettings(weightDecay: 0.01, maxGradNorm: inBackward ? nil : 1, updateInBackward: inBackward ? true : nil)
        func trial() throws -> FineTuning {
            try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: settings, maxBatch: batch.batchSize,
                           maxSeq: batch.seqLen, seed: 3, precision: .bf16, context: ctx)
        }
        try #require(LlamaModel.blocksTrainedRoundings(Self.config), "FACTSWEEP_TRAINED_BF16_BLOCKED=off turns off what this test checks")
        let blocked = try trial(), plain = try BFloat16Matrix.trainedBlocked.withoutIt(trial)
        let readsBlocked = BFloat16Matrix.writesBlocked(rows: 128, columns: 128)
        if OneDNNMatmul.instructionSet == "avx512_core_bf16" { #expect(readsBlocked) }
        // The head (tied to the embedding) and every projection of every layer.
        #expect(blocked.network.trainedRoundings.count == 1 + 7 * Self.config.layerCount)
        #expect(blocked.network.trainedRoundings.allSatisfy { $0.holdsBlockedRounding == readsBlocked })
        #expect(plain.network.trainedRoundings.allSatisfy { !$0.holdsBlockedRounding })
        let initial = RoundInUpdateTests.parameters(blocked)
        func close(_ a: [Float], _ b: [Float]) -> Bool { FewRowsProductTests.relativeError(a, b) < 1e-5 }
        for step in 1...3 {
            let before = ProductScratch.current.blockedProducts
            let b = blocked.step(batch, lr: 1e-3), p = plain.step(batch, lr: 1e-3)
            if readsBlocked { #expect(ProductScratch.current.blockedProducts > before, "step \(step): no product read a blocked rounding") }
            #expect(abs(b.loss - p.loss) <= 1e-5 * abs(p.loss), "step \(step): \(b.loss) against \(p.loss)")
            #expect(close(RoundInUpdateTests.parameters(blocked), RoundInUpdateTests.parameters(plain)), "step \(step): the weights differ")
            #expect(RoundInUpdateTests.roundingsHoldTheWeights(blocked), "step \(step): the update did not write the blocked roundings")
        }
        let moved = RoundInUpdateTests.parameters(blocked) != initial
        #expect(moved)
        // A checkpoint's weights, written from outside a step: the blocked roundings are stale until a product makes them again.
        for trial in [blocked, plain] {
            trial.parameters.base.update(from: initial, count: initial.count)
            trial.parametersChanged()
        }
        #expect(blocked.network.trainedRoundings.allSatisfy { !$0.isCurrent })
        let b = blocked.step(batch, lr: 1e-3), p = plain.step(batch, lr: 1e-3)
        #expect(abs(b.loss - p.loss) <= 1e-5 * abs(p.loss), "after the restore: \(b.loss) against \(p.loss)")
        #expect(close(RoundInUpdateTests.parameters(blocked), RoundInUpdateTests.parameters(plain)))
        #expect(RoundInUpdateTests.roundingsHoldTheWeights(blocked))
    }

    /// The model's rule: SmolLM2's extra copy (269 MB) is kept, Llama-3.2-1B's (2.5 GB) is not.
    @Test func theRuleKeepsSmolLM2sAndNot1Bs() throws {
        try #require(ProcessInfo.processInfo.environment["FACTSWEEP_TRAINED_BF16_BLOCKED"] == nil,
                     "FACTSWEEP_TRAINED_BF16_BLOCKED decides the rule for every model")
        let llama1B = LlamaConfiguration(
            vocabularySize: 128256, hiddenSize: 2048, intermediateSize: 8192, layerCount: 16, headCount: 32, kvHeadCount: 8,
            headDimension: 64, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 131072)
        #expect(LlamaModel.trainedBFloat16Bytes(AdapterTests.smolLM2) == 268_959_744)
        #expect(LlamaModel.trainedBFloat16Bytes(llama1B) == 2_471_493_632)
        // An untied head is rounded; its embedding, only gathered from, is not.
        var untied = AdapterTests.smolLM2
        untied.tieWordEmbeddings = false
        #expect(LlamaModel.trainedBFloat16Bytes(untied) == 268_959_744)
        #expect(LlamaModel.blocksTrainedRoundings(AdapterTests.smolLM2))
        #expect(!LlamaModel.blocksTrainedRoundings(llama1B))
    }
}
