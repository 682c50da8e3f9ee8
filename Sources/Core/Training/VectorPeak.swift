// VectorPeak: the machine's own arithmetic ceiling, beside the engine's.
//
// `SgemmPeak` says what the matmul engine reaches on a large product; MFU is
// measured against it. This says what the cores can issue at all: every
// thread of the context running independent vector multiply-adds at once
// (vector_peak.c), the instruction the inner loop of a product on the vector
// units is made of, with no loads. So an engine's peak near it means the
// products are at the hardware's limit, not the library's (the question issue
// 13 opened with). It bounds products on the vector units only: a CPU with
// AMX tiles multiplies bf16 outside them.
import CKernels
import Foundation

/// Measures the machine's vector multiply-add rate at the context's threads.
public enum VectorPeak {
    /// Best GFLOP/s over `windows` windows, in each of which every thread of
    /// the context runs `rounds` rounds of twelve multiply-adds (about 30 ms
    /// at 3 GHz). f32: fused multiply-adds; bf16: AVX512_BF16's dot products
    /// where the CPU has them, as oneDNN's bf16 matmul runs, else f32's,
    /// which bf16 products then run on. nil where the kernels have no vector
    /// path (a build that is not x86-64, a CPU without AVX2), or for no window.
    public static func measure(bf16: Bool, rounds: Int = 8_000_000, windows: Int = 5, context: ComputeContext) -> Double? {
        var best: Double?
        for _ in 0..<windows {
            let (flops, seconds) = window(bf16: bf16, rounds: rounds, context: context)
            guard flops > 0 else { return nil }
            best = max(best ?? 0, flops / seconds / 1e9)
        }
        return best
    }

    /// One window: the operations the threads did, each running the loop once
    /// as a member of the context's team, and the wall time of the whole.
    static func window(bf16: Bool, rounds: Int, context: ComputeContext) -> (flops: Double, seconds: Double) {
        let threads = context.threads
        let done = UnsafeMutablePointer<Double>.allocate(capacity: threads)
        defer { done.deallocate() }
        done.initialize(repeating: 0, count: threads)
        let start = DispatchTime.now().uptimeNanoseconds
        context.parallelChunks(threads) { chunk, _ in
            var checksum = 0.0
            done[chunk] = factsweep_vector_peak_run(rounds, bf16 ? 1 : 0, &checksum)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return ((0..<threads).reduce(0.0) { $0 + done[$1] }, seconds)
    }

    /// The instruction `measure(bf16:)` times on this CPU ("vdpbf16ps zmm",
    /// "vfmadd231ps zmm", "vfmadd231ps ymm"), nil where it times none.
    public static func instruction(bf16: Bool) -> String? {
        factsweep_vector_peak_instruction(bf16 ? 1 : 0).map { String(cString: $0) }
    }

    /// One thread's `rounds` rounds on the calling thread: the operations the
    /// kernel counts and the sum of its accumulators' lanes, for the tests
    /// that check both against what the instruction does.
    static func run(rounds: Int, bf16: Bool) -> (operations: Double, checksum: Double) {
        var checksum = 0.0
        let operations = factsweep_vector_peak_run(rounds, bf16 ? 1 : 0, &checksum)
        return (operations, checksum)
    }
}
