// OpenBLASCoreTests: a fallback kernel set is replaced by the widest the CPU
// runs; a set OpenBLAS chose for the CPU is kept.
import Testing
@testable import Core

@Suite struct OpenBLASCoreTests {
    @Test func fallbacksAreReplacedByWhatTheCPURuns() {
        #expect(OpenBLASCore.replacement(for: "Prescott", avx512: true, avx2: true) == "SkylakeX")
        #expect(OpenBLASCore.replacement(for: "Sandybridge", avx512: false, avx2: true) == "Haswell")
        #expect(OpenBLASCore.replacement(for: "Core2", avx512: false, avx2: false) == nil)
        #expect(OpenBLASCore.replacement(for: "SkylakeX", avx512: true, avx2: true) == nil)
        #expect(OpenBLASCore.replacement(for: "Zen", avx512: true, avx2: true) == nil)
        #expect(OpenBLASCore.replacement(for: "Haswell", avx512: true, avx2: true) == nil)
        // Held to AVX2 (FACTSWEEP_MAX_CPU_ISA=avx2), OpenBLAS's AVX-512 kernels give way to Haswell's.
        #expect(OpenBLASCore.replacement(for: "SkylakeX", avx512: false, avx2: true) == "Haswell")
        #expect(OpenBLASCore.replacement(for: "Cooperlake", avx512: false, avx2: false) == "Prescott")
        #expect(OpenBLASCore.replacement(for: "Zen", avx512: false, avx2: true) == nil)
    }
}
