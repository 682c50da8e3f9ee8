// SgemmPeak: the FLOP rate `gemm` reaches on this machine with the process's
// matmul engine, measured in the same run as a benchmark so that model FLOP
// utilisation compares like with like.
import Foundation

/// Measures sgemm throughput on square matrices of size `n`.
public enum SgemmPeak {
    /// Best GFLOP/s over `repeats` products of n×n by n×n at the context's threads.
    public static func measure(n: Int = 1024, repeats: Int = 16, context: ComputeContext) -> Double {
        let arena = FloatArena(capacity: 3 * n * n)
        var rng = SeededGenerator(seed: 3)
        for i in 0..<(2 * n * n) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, b = arena.base + n * n, c = arena.base + 2 * n * n
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            gemm(transA: false, transB: true, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}
