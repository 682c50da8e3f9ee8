// MatmulEngine: which library runs the core's matrix products — OpenBLAS's
// cblas_sgemm (the portable fallback) or oneDNN's matmul primitive — decided
// once per process. `gemm` in Linear.swift is the one seam every product
// goes through.
import Foundation
import Trial

/// The library behind `gemm`.
public enum MatmulEngine: String, Sendable, CaseIterable, CustomStringConvertible {
    /// OpenBLAS's `cblas_sgemm`.
    case openBLAS = "openblas"
    /// oneDNN's matmul primitive (brgemm kernels on AVX-512, AVX2 kernels without it), one primitive per shape.
    case oneDNN = "onednn"

    /// The environment variable that forces an engine: `openblas` or `onednn`.
    public static let environmentKey = "FACTSWEEP_MATMUL"

    public var description: String {
        switch self {
        case .openBLAS: "OpenBLAS sgemm"
        case .oneDNN: "oneDNN matmul"
        }
    }

    /// The engine f32 products run on: oneDNN when its CPU engine can be
    /// created, else OpenBLAS, unless `FACTSWEEP_MATMUL` says OpenBLAS.
    /// oneDNN is the faster of the two at the study's shapes (13–34% in five
    /// of six training rows, docs/benchmarks.md, "Issue 13, sixth stop"); the
    /// choice is fixed, not timed at start-up, so that a run's numbers never
    /// depend on a start-up measurement. The core's own loops run on the
    /// same OpenMP team as its products (`ComputeContext.parallelFor`), and
    /// `factsweep` lets that team spin briefly between regions, except on
    /// OpenBLAS, whose threads need the cores (`LibraryEnvironment` in the
    /// executable; it follows the f32 engine, as does `currentBF16`). Inside
    /// single-threaded sections (per-head and per-block products already
    /// split across threads) the products run on single-threaded OpenBLAS on
    /// either engine, except QLoRA's f32 products that each thread runs on
    /// its own rows of the base (`gemmOnOneThread`: oneDNN's one-thread
    /// primitive on oneDNN); whether a product is inside one is its calling
    /// thread's state, so on oneDNN trials side by side in one process
    /// compute exactly what each computes alone. On OpenBLAS they do not quite: its thread count is the
    /// process's, so a product outside a section runs on one thread while
    /// another thread has a section open, and its sums then differ in the
    /// last bits.
    public static var current: MatmulEngine {
        get { selection.withLock { $0 } }
        set { selection.withLock { $0 = newValue } }
    }

    /// The engine bf16 products run on: oneDNN unless `FACTSWEEP_MATMUL`
    /// forces OpenBLAS or oneDNN is missing. oneDNN multiplies bf16 inputs
    /// in its bf16 kernels where it has them (from AVX-512 on:
    /// `hasBF16Kernels`); elsewhere the bf16-rounded inputs, exact in
    /// Float32, go through the engine's f32 product — oneDNN's matmul or, as
    /// Debian's OpenBLAS 0.3.21 has no bf16 product (no `cblas_sbgemm`),
    /// sgemm: the same numbers as bf16 products, at about f32's speed
    /// (`bf16Notice`). With bf16 kernels every bf16 product goes through
    /// oneDNN, so no OpenBLAS threads compete with its OpenMP ones; without
    /// them, products inside single-threaded sections run on single-threaded
    /// sgemm, as f32 ones do.
    public static var currentBF16: MatmulEngine {
        get { bf16Selection.withLock { $0 } }
        set { bf16Selection.withLock { $0 = newValue } }
    }

    /// Whether bf16 products run on bf16 kernels (oneDNN's, on a CPU with AVX-512).
    public static var hasBF16Kernels: Bool { currentBF16 == .oneDNN && OneDNNMatmul.supportsBF16 }

    /// Parses `FACTSWEEP_MATMUL`'s value; nil names no engine.
    public init?(name: String) {
        switch name.lowercased() {
        case "openblas", "blas": self = .openBLAS
        case "onednn", "dnnl": self = .oneDNN
        default: return nil
        }
    }

    private static let selection = LockedValue<MatmulEngine>(initialEngine())

    private static let bf16Selection = LockedValue<MatmulEngine>(
        forcedEngine == .openBLAS || !OneDNNMatmul.isAvailable ? .openBLAS : .oneDNN)

    /// What a user asking for bf16 should know when its products cannot run
    /// on bf16 kernels here: nil when they do.
    public static var bf16Notice: String? {
        guard !hasBF16Kernels else { return nil }
        let rounded = "over bf16-rounded inputs, the same numbers as bf16 products, at about f32's speed"
        guard let isa = OneDNNMatmul.instructionSet else {
            return "oneDNN is not available (libdnnl-dev): bf16 products run on OpenBLAS sgemm \(rounded)"
        }
        guard currentBF16 == .oneDNN else {
            return "OpenBLAS is chosen (\(environmentKey)=openblas): bf16 products run on OpenBLAS sgemm \(rounded)"
        }
        return "this CPU has no bf16 matmul in oneDNN, which needs AVX-512 (oneDNN's instruction set here: \(isa)): "
            + "bf16 products run on oneDNN's f32 matmul \(rounded)"
    }

    /// What `precision`'s products run on in this process, as checkpoints
    /// record it: the engine's name, and for bf16 without bf16 kernels
    /// `+f32-kernels` (the same numbers summed by other kernels). A run
    /// resumed where this differs sums in another order from then on.
    public static func productsName(for precision: Precision) -> String {
        current(for: precision).rawValue + (precision == .bf16 && !hasBF16Kernels ? "+f32-kernels" : "")
    }

    /// The engine `precision`'s products run on: `current`, or `currentBF16` for bf16.
    public static func current(for precision: Precision) -> MatmulEngine {
        precision == .bf16 ? currentBF16 : current
    }

    /// The instruction set oneDNN's kernels use on this CPU (`avx2`,
    /// `avx512_core_bf16`, …), for the bench's rows and train's summary; nil
    /// without oneDNN.
    public static var oneDNNInstructionSet: String? { OneDNNMatmul.instructionSet }

    /// Whether oneDNN's products of few rows whose plain B it would read in
    /// place with an L1-thrashing stride run split (`OneDNNMatmul.columnSplit`).
    public static var splitsOneDNNColumns: Bool { OneDNNMatmul.splitsColumns }

    /// oneDNN only where its engine can be created, even when forced (the
    /// executable refuses that: `environmentProblem`), so that no row is
    /// labelled oneDNN while its products fall back to sgemm.
    private static func initialEngine() -> MatmulEngine {
        forcedEngine == .openBLAS || !OneDNNMatmul.isAvailable ? .openBLAS : .oneDNN
    }

    private static var forcedEngine: MatmulEngine? {
        ProcessInfo.processInfo.environment[environmentKey].flatMap(MatmulEngine.init(name:))
    }

    /// What is wrong with `FACTSWEEP_MATMUL` (or `FACTSWEEP_MAX_CPU_ISA`: `OneDNNMatmul.capProblem`) in this process's environment,
    /// for the executable to refuse at start-up rather than run on an engine
    /// the user did not ask for: a value that names no engine, or `onednn`
    /// where oneDNN's engine cannot be created. Nil when it is unset or empty,
    /// or names an engine that runs here.
    public static var environmentProblem: String? {
        if let problem = OneDNNMatmul.capProblem { return problem }
        guard let value = ProcessInfo.processInfo.environment[environmentKey], !value.isEmpty else { return nil }
        guard let engine = MatmulEngine(name: value) else {
            return "\(environmentKey)=\(value) names no matmul engine: use openblas or onednn, or unset it for the default (oneDNN)"
        }
        if engine == .oneDNN && !OneDNNMatmul.isAvailable {
            return "\(environmentKey)=\(value), but oneDNN's CPU engine cannot be created here (libdnnl-dev, installed by scripts/setup.sh): "
                + "unset it, or use openblas"
        }
        return nil
    }
}

/// A value behind a lock, for the few process-wide settings of the core.
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
