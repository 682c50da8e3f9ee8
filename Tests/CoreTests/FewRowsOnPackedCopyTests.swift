// FewRowsOnPackedCopyTests: few-row products (decoding's, and training's
// below 17 rows) over a frozen Float32 weight with packed copies read the
// copy through oneDNN, not the weight's plain rows, whichever product made
// it, and equal the few-rows kernel's products within f32 rounding.
import TestSupport
import Testing
@testable import Core

@Suite struct FewRowsOnPackedCopyTests {
    /// Fails the test where no copy can be made: oneDNN missing, the
    /// process on OpenBLAS, or reuse (and so packing) off.
    static func requirePacking() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        try #require(MatmulEngine.current == .oneDNN, "the process's engine is \(MatmulEngine.current), not oneDNN")
        try #require(OneDNNMatmul.reuse, "\(OneDNNMatmul.reuseEnvironmentKey)=off is set: no packed copies are made")
        try #require(fewRowsOnPackedCopy.byEnvironment, "\(fewRowsOnPackedCopy.environmentKey)=off is set")
    }

    /// After a 48-row product has packed W, products of 1–32 rows equal the
    /// few-rows kernel's over W; with W's plain rows then overwritten by NaN
    /// (the copy is not told) they still do, so they read the copy alone,
    /// and with the path switched off they give NaN: the test can tell.
    @Test(arguments: [(576, 1536), (1536, 576), (200, 64)])
    func decodingProductsReadTheCopy(outDim: Int, inDim: Int) throws {
        try Self.requirePacking()
        try #require(OneDNNMatmul.makesBlockedF32Copies, "oneDNN's matmul here (\(CPUFeatures.modelName)) packs f32 in plain rows")
        let context = ComputeContext(threads: 2)
        let weights = FewRowsProductTests.random(outDim * inDim, seed: 11)
        let arena = FloatArena(capacity: outDim * inDim + 48 * (inDim + outDim))
        let w = FloatPointer(arena.take(outDim * inDim)), inp = FloatPointer(arena.take(48 * inDim)), out = FloatPointer(arena.take(48 * outDim))
        w.base.update(from: weights, count: weights.count)
        inp.base.update(from: FewRowsProductTests.random(48 * inDim, seed: 12), count: 48 * inDim)
        let packed = PackedWeight()
        let matrix = FrozenMatrix.dense(w, outDim: outDim, inDim: inDim, packed: packed)
        matrix.multiply(out: out, inp: inp, n: 48, context: context, fewRows: decodingFewRowsLimit)
        #expect(packed.byteCount > 0, "the 48-row product made no packed copy")
        let rowCounts = [1, 2, 3, 4, 8, 17, decodingFewRowsLimit]
        var references: [Int: [Float]] = [:]
        for rows in rowCounts {
            fewRowsOnPackedCopy.withoutIt {
                matrix.multiply(out: out, inp: inp, n: rows, context: context, fewRows: decodingFewRowsLimit)
            }
            references[rows] = Array(UnsafeBufferPointer(start: out.base, count: rows * outDim))
        }
        w.base.update(repeating: .nan, count: outDim * inDim)
        for rows in rowCounts {
            out.base.update(repeating: 0, count: rows * outDim)
            matrix.multiply(out: out, inp: inp, n: rows, context: context, fewRows: decodingFewRowsLimit)
            let got = Array(UnsafeBufferPointer(start: out.base, count: rows * outDim))
            #expect(!got.contains { $0.isNaN }, "\(rows) rows read W's plain rows")
            #expect(FewRowsProductTests.relativeError(got, references[rows] ?? []) < 1e-5, "\(rows)×\(inDim) · (\(outDim)×\(inDim))ᵀ")
        }
        fewRowsOnPackedCopy.withoutIt {
            matrix.multiply(out: out, inp: inp, n: 4, context: context, fewRows: decodingFewRowsLimit)
        }
        #expect(out.base[0].isNaN, "the few-rows kernel did not read W's plain rows")
    }

    /// A weight with copies multiplies through them at any rows: a first
    /// product of 5 rows makes the forward's copy itself, and computes the
    /// same Floats as the same product after a 48-row one made it, so that
    /// no product depends on what ran before (a trial's on the trials
    /// before it on the same model).
    @Test func fewRowsGiveTheSameFloatsWhicheverProductPackedFirst() throws {
        try Self.requirePacking()
        let outDim = 64, inDim = 96, rows = 5
        let context = ComputeContext(threads: 2)
        let arena = FloatArena(capacity: outDim * inDim + 48 * (inDim + outDim))
        let w = FloatPointer(arena.take(outDim * inDim)), inp = FloatPointer(arena.take(48 * inDim)), out = FloatPointer(arena.take(48 * outDim))
        w.base.update(from: FewRowsProductTests.random(outDim * inDim, seed: 13), count: outDim * inDim)
        inp.base.update(from: FewRowsProductTests.random(48 * inDim, seed: 14), count: 48 * inDim)
        func fewRows(after first: Int?) -> [Float] {
            let matrix = FrozenMatrix.dense(w, outDim: outDim, inDim: inDim, packed: PackedWeight())
            if let first { matrix.multiply(out: out, inp: inp, n: first, context: context, fewRows: decodingFewRowsLimit) }
            matrix.multiply(out: out, inp: inp, n: rows, context: context, fewRows: decodingFewRowsLimit)
            return Array(UnsafeBufferPointer(start: out.base, count: rows * outDim))
        }
        let alone = fewRows(after: nil), afterLarger = fewRows(after: 48)
        let same = zip(alone, afterLarger).allSatisfy { $0.bitPattern == $1.bitPattern }
        #expect(same, "a few-row product computed otherwise once a larger one had made the copy")
        var reference = [Float](repeating: 0, count: rows * outDim)
        linearForward(&reference, inp.base, w.base, n: rows, inDim: inDim, outDim: outDim)
        #expect(FewRowsProductTests.relativeError(alone, reference) < 1e-6)
    }

    /// The study's products find the copy a training product made at every
    /// row count decoding and training use: oneDNN picks one blocked layout
    /// per direction for these shapes whatever the rows, so that decoding
    /// never needs a layout of its own (which would run over plain rows).
    /// SmolLM2-135M's and Llama-3.2-1B's projection shapes (out × in).
    @Test(arguments: [(576, 576), (192, 576), (1536, 576), (576, 1536), (2048, 2048), (512, 2048), (8192, 2048), (2048, 8192)])
    func everyRowCountReadsTheTrainingCopy(outDim: Int, inDim: Int) throws {
        try Self.requirePacking()
        try #require(OneDNNMatmul.makesBlockedF32Copies, "oneDNN's matmul here (\(CPUFeatures.modelName)) packs f32 in plain rows")
        let threads = try #require(BLASThreads.threadsOutsideSections)
        let w = FloatArena(capacity: outDim * inDim), x = FloatArena(capacity: 64 * max(outDim, inDim)),
            y = FloatArena(capacity: 64 * max(outDim, inDim))
        let packed = PackedWeight()
        linearForward(y.base, x.base, w.base, n: 64, inDim: inDim, outDim: outDim, packed: packed)
        linearBackward(dinp: y.base, dweight: nil, dout: x.base, inp: x.base, weight: w.base, n: 64, inDim: inDim, outDim: outDim,
                       accumulateInput: false, packed: packed)
        #expect(packed.holdsBothDirections(float32: true))
        for m in [1, 2, 3, 8, 17, 32, 62, 373] {
            let forward = OneDNNMatmul.Key(transA: false, transB: true, m: m, n: outDim, k: inDim, lda: inDim, ldb: inDim, ldc: outDim,
                                           alpha: 1, beta: 0, bf16: false, threads: threads)
            let backward = OneDNNMatmul.Key(transA: false, transB: false, m: m, n: inDim, k: outDim, lda: outDim, ldb: inDim, ldc: inDim,
                                            alpha: 1, beta: 1, bf16: false, threads: threads)
            #expect(OneDNNMatmul.currentPackedCopy(forward, in: packed) != nil, "\(m) rows forward want another layout")
            #expect(OneDNNMatmul.currentPackedCopy(backward, in: packed) != nil, "\(m) rows backward want another layout")
        }
    }

    /// A weight keeps one copy per direction: a bf16 product over it after an
    /// f32 forward made its copy runs unpacked instead of taking the second
    /// slot, so the f32 backward still makes its own, whichever ran first.
    @Test func eachDirectionKeepsItsSlot() throws {
        try Self.requirePacking()
        try #require(OneDNNMatmul.makesBlockedF32Copies, "oneDNN's matmul here (\(CPUFeatures.modelName)) packs f32 in plain rows")
        try #require(MatmulEngine.hasBF16Kernels, "no bf16 kernels on \(CPUFeatures.modelName): no bf16 copy to take a slot")
        let outDim = 192, inDim = 128, m = 48
        let w = FloatArena(capacity: outDim * inDim), x = FloatArena(capacity: m * max(outDim, inDim)), y = FloatArena(capacity: m * max(outDim, inDim))
        w.base.update(from: FewRowsProductTests.random(outDim * inDim, seed: 15), count: outDim * inDim)
        x.base.update(from: FewRowsProductTests.random(m * max(outDim, inDim), seed: 16), count: m * max(outDim, inDim))
        let packed = PackedWeight()
        linearForward(y.base, x.base, w.base, n: m, inDim: inDim, outDim: outDim, packed: packed)
        let f32Forward = packed.byteCount
        ProductPrecision.run(.bf16) { linearForward(y.base, x.base, w.base, n: m, inDim: inDim, outDim: outDim, packed: packed) }
        #expect(packed.byteCount == f32Forward, "a bf16 product took the second slot")
        linearBackward(dinp: y.base, dweight: nil, dout: x.base, inp: x.base, weight: w.base, n: m, inDim: inDim, outDim: outDim,
                       accumulateInput: false, packed: packed)
        #expect(packed.holdsBothDirections(float32: true), "the f32 backward found no slot for its copy")
    }
}
