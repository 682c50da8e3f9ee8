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
    public static func measure(m: Int, k: Int, n: Int, repeats: Int = 16, context: ComputeContext) -> Double {
        let arena = FloatArena(capacity: m * k + n * k + m * n)
        var rng = SeededGenerator(seed: 3)
        for i in 0..<(m * k + n * k) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, b = arena.base + m * k, c = arena.base + m * k + n * k
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            gemm(transA: false, transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, beta: 0, c: c, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return 2 * Double(m) * Double(n) * Double(k) / best / 1e9
    }
}
