// KernelPath: which code a C kernel with an AVX-512, an AVX2 and a plain path
// may run (nf4.c, few_rows.c). Training and decoding take the widest; tests run
// the narrower ones too, so that every path the CPU has is checked.
import CKernels

/// The widest path the CPU has, at most AVX2, or the plain C loop.
enum KernelPath: CaseIterable, Sendable {
    case widest, portable, avx2

    /// The kernels' `path` argument (`FACTSWEEP_PATH_*` in cpu.h).
    var code: Int32 {
        switch self {
        case .widest: Int32(FACTSWEEP_PATH_WIDEST)
        case .portable: Int32(FACTSWEEP_PATH_PORTABLE)
        case .avx2: Int32(FACTSWEEP_PATH_AVX2)
        }
    }
}
