// OpenBLASCore: which kernels OpenBLAS runs, and which to ask for instead when
// it picked too old a set (or an AVX-512 one under FACTSWEEP_MAX_CPU_ISA=avx2). Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernels
// by CPU model when it is loaded; 0.3.21 does not know this project's Intel
// Xeons (family 6, model 207) and falls back to Prescott's SSE3 kernels, which
// made f32 full fine-tuning of SmolLM2 1.85× slower (6.56 against 3.55
// s/epoch, docs/benchmarks.md). OpenBLAS reads OPENBLAS_CORETYPE once, when it
// is loaded, so `factsweep` sets it and re-executes itself (as for
// libgomp's GOMP_SPINCOUNT); a value the user set stands.
import CBLAS
import CKernels

public enum OpenBLASCore {
    /// The kernel set OpenBLAS chose (`openblas_get_corename`), such as "SkylakeX" or "Prescott".
    public static var name: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Kernel sets OpenBLAS falls back to for a CPU it does not know: older than AVX2.
    static let fallbacks: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge",
                                         "katmai", "coppermine", "northwood", "banias", "generic"]

    /// Kernel sets that need AVX-512.
    static let avx512Sets: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// The kernel set to ask for instead of `core` on a CPU with these
    /// features; nil when `core` is not a fallback or nothing better runs.
    /// An AVX-512 set where the kernels may not use AVX-512 (`FACTSWEEP_MAX_CPU_ISA=avx2`)
    /// gives way to Haswell's, as on an AVX2 host.
    public static func replacement(for core: String, avx512: Bool, avx2: Bool) -> String? {
        if !avx512, avx512Sets.contains(core.lowercased()) { return avx2 ? "Haswell" : "Prescott" }
        guard fallbacks.contains(core.lowercased()) else { return nil }
        if avx512 { return "SkylakeX" }
        if avx2 { return "Haswell" }
        return nil
    }

    /// The replacement for the loaded kernels on this CPU, if any.
    public static var recommended: String? {
        replacement(for: name, avx512: factsweep_cpu_has_avx512() != 0, avx2: factsweep_cpu_has_avx2() != 0)
    }
}
