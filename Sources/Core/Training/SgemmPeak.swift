// SgemmPeak: the FLOP rate `gemm` reaches on this machine with the process's
// matmul engine, measured in the same run as a benchmark so that model FLOP
// utilisation compares like with like.
import Foundation

/// Measures `gemm` throughput on the process's `MatmulEngine`.
public enum SgemmPeak {
    /// Best GFLOP/s over `repeats` products of n×n by n×n at the context's threads.
    public static func measure(n: Int = 1024, repeats: Int = 16, context: ComputeContext) -> Double {
        measure(m: n, k: n, n: n, repeats: repeats, context: context)
    }

    /// Best GFLOP/s over `repeats` products (m×k)·(n×k)ᵀ — a `linearForward`
    /// of m rows through an [n, k] weight — at the context's threads.
    ///
    /// In a bf16 region with bf16 kernels both operands are rounded to bf16
    /// once, before the products are timed: the engine's own rate, as training's
    /// products over a frozen bf16 base reach it (their activations' rounding
    /// is part of the step, not of the peak). Rounding both on every call, as
    /// `gemm` does for Float32 operands, put the peak ~10% below those
    /// products' rates and so MFU above what the engine gave.
    public static func measure(m: Int, k: Int, n: Int, repeats: Int = 16, context: ComputeContext) -> Double {
        let arena = FloatArena(capacity: m * k + n * k + m * n)
        var rng = SeededGenerator(seed: 3)
        for i in 0..<(m * k + n * k) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, b = arena.base + m * k, c = arena.base + m * k + n * k
        let roundedOnce = ProductPrecision.current == .bf16 && MatmulEngine.currentBF16 == .oneDNN && OneDNNMatmul.supportsBF16
            && ProductPrecision.allowsBF16Kernels
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: roundedOnce ? m * k + n * k : 0)
        defer { bits.deallocate() }
        if roundedOnce {
            convertToBFloat16(bits, a, rows: m, columns: k, ld: k)
            convertToBFloat16(bits + m * k, b, rows: n, columns: k, ld: k)
        }
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            if roundedOnce {
                gemmBFloat16(transA: false, transB: true, m: m, n: n, k: k, a: .bf16(bits), lda: k, b: .bf16(bits + m * k), ldb: k,
                             beta: 0, c: c, ldc: n)
            } else {
                gemm(transA: false, transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, beta: 0, c: c, ldc: n)
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}

extension SgemmPeak {
    /// GFLOP/s of C (m×n) = A (m×k) · B (k×n), B plain and 64-byte aligned
    /// (a weight read by the backward), on oneDNN run whole and run split as
    /// `OneDNNMatmul.columnSplit` splits it, the two alternated call by call
    /// (best of `repeats` each) so that a noisy machine slows both alike; B
    /// cycles through copies filling 128 MiB, so that it comes from memory
    /// as a weight does in training. nil without oneDNN, or when the product
    /// is not one the split takes.
    public static func columnSplitRates(m: Int, k: Int, n: Int, repeats: Int = 8, context: ComputeContext)
        -> (whole: Double, split: Double)? {
        let copies = max(1, (128 << 20) / (4 * k * n))
        // A's floats rounded up to 16 keep B on the arena's 64-byte alignment.
        let aFloats = (m * k + 15) / 16 * 16
        let arena = FloatArena(capacity: aFloats + copies * k * n + m * n)
        var rng = SeededGenerator(seed: 4)
        for i in 0..<(aFloats + copies * k * n) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, b = arena.base + aFloats, c = arena.base + aFloats + copies * k * n
        let key = OneDNNMatmul.Key(transA: false, transB: false, m: m, n: n, k: k, lda: k, ldb: n, ldc: n,
                                   alpha: 1, beta: 0, bf16: false, threads: context.threads)
        guard OneDNNMatmul.isAvailable, OneDNNMatmul.columnSplit(key, b: UnsafeRawPointer(b)) != nil else { return nil }
        var best = (whole: Double.infinity, split: Double.infinity)
        for round in 0..<(2 * repeats) {
            let split = round % 2 == 1
            let start = DispatchTime.now().uptimeNanoseconds
            for copy in 0..<copies {
                guard OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(a), b: UnsafeMutableRawPointer(b + copy * k * n), c: c,
                                       splitsColumns: split) else { return nil }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 / Double(copies)
            if split { best.split = min(best.split, seconds) } else { best.whole = min(best.whole, seconds) }
        }
        let flops = 2 * Double(m) * Double(n) * Double(k) / 1e9
        return (flops / best.whole, flops / best.split)
    }
}

extension SgemmPeak {
    /// GFLOP/s of a frozen weight's products on oneDNN read as stored and
    /// read from its packed copy (`PackedWeight`, what adapter networks use
    /// where `LlamaModel.packsFrozenBases`), alternated round by round (best
    /// of `repeats` each) over weights filling 128 MiB, each with its own
    /// copy made in a first round that is not timed. `transB` true is the
    /// forward y = x·Wᵀ (W is [n, k]), false the backward dX = dY·W (W is
    /// [k, n]). Splits follow the process (`columnSplit`), as in training.
    /// Also the bytes the copies took per weight and whether the packed
    /// path read the weight in place (`OneDNNMatmul.readsPackedInPlace`:
    /// oneDNN asks for the layout it is stored in); nil without oneDNN or
    /// when oneDNN refuses a product.
    public static func packedRates(m: Int, k: Int, n: Int, transB: Bool, repeats: Int = 8, context: ComputeContext)
        -> (plain: Double, packed: Double, copyBytes: Int, inPlace: Bool)? {
        guard OneDNNMatmul.isAvailable else { return nil }
        let copies = max(1, (128 << 20) / (4 * k * n))
        let aFloats = (m * k + 15) / 16 * 16, weightFloats = (k * n + 15) / 16 * 16
        let arena = FloatArena(capacity: aFloats + copies * weightFloats + m * n)
        var rng = SeededGenerator(seed: 6)
        for i in 0..<(aFloats + copies * weightFloats) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, weights = arena.base + aFloats, c = arena.base + aFloats + copies * weightFloats
        let key = OneDNNMatmul.Key(transA: false, transB: transB, m: m, n: n, k: k, lda: k, ldb: transB ? k : n, ldc: n,
                                   alpha: 1, beta: 0, bf16: false, threads: context.threads)
        let packs = (0..<copies).map { _ in PackedWeight() }
        func sweep(packed: Bool) -> Double? {
            let start = DispatchTime.now().uptimeNanoseconds
            for copy in 0..<copies {
                guard OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(a), b: UnsafeMutableRawPointer(weights + copy * weightFloats),
                                       c: c, packed: packed ? packs[copy] : nil) else { return nil }
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 / Double(copies)
        }
        guard sweep(packed: true) != nil else { return nil }
        var best = (plain: Double.infinity, packed: Double.infinity)
        for round in 0..<(2 * repeats) {
            let packed = round % 2 == 1
            guard let seconds = sweep(packed: packed) else { return nil }
            if packed { best.packed = min(best.packed, seconds) } else { best.plain = min(best.plain, seconds) }
        }
        let flops = 2 * Double(m) * Double(n) * Double(k) / 1e9
        return (flops / best.plain, flops / best.packed, packs[0].byteCount, OneDNNMatmul.readsPackedInPlace(key))
    }
}
