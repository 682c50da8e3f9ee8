// CPUFeatures: the instruction sets this machine's CPU reports, read from
// /proc/cpuinfo independently of the code under test, so that tests can
// check what the core decided from them; under FACTSWEEP_MAX_CPU_ISA=avx2
// (scripts/test.sh's second pass) without AVX-512, as the core then runs.
import Foundation

public enum CPUFeatures {
    /// The first processor's `flags` line.
    public static let flags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }()

    /// `FACTSWEEP_MAX_CPU_ISA=avx2`: the core runs as on a CPU without AVX-512 (cpu.h), and the tests
    /// expect what such a CPU gives (scripts/test.sh's second pass).
    public static let heldToAVX2 = ProcessInfo.processInfo.environment["FACTSWEEP_MAX_CPU_ISA"]?.lowercased() == "avx2"

    /// AVX-512 as oneDNN's `avx512_core` and the core's kernels take it: F, BW, DQ and VL.
    public static var hasAVX512: Bool {
        !heldToAVX2 && ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// AVX-512 with the BF16 conversions and dot products (`avx512_bf16`).
    public static var hasAVX512BF16: Bool { hasAVX512 && flags.contains("avx512_bf16") }

    /// AVX2 with FMA.
    public static var hasAVX2: Bool { ["avx2", "fma"].allSatisfy(flags.contains) }

    /// The CPU's model name, for messages.
    public static let modelName: String = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown CPU" }
        let name = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return heldToAVX2 ? name + " held to AVX2" : name
    }()
}

extension CPUFeatures {
    /// The instruction the cores' ceiling (`VectorPeak`) should time here, from
    /// these flags: AVX512_BF16's dot product for bf16 where there is one,
    /// else the widest fused multiply-add; nil without AVX2.
    public static func vectorPeakInstruction(bf16: Bool) -> String? {
        if hasAVX512 { return bf16 && hasAVX512BF16 ? "vdpbf16ps zmm" : "vfmadd231ps zmm" }
        return hasAVX2 ? "vfmadd231ps ymm" : nil
    }
}
