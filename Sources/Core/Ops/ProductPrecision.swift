// ProductPrecision: the precision `gemm` runs in on the calling thread. A
// trial sets it around its steps and evaluations (as PyTorch's autocast is a
// region, not a property of tensors); `ComputeContext`'s parallel loops carry
// it to their worker threads. Trials side by side in one process each have
// their own threads, so each keeps its own precision.
import Foundation
import Trial

/// The calling thread's product precision: f32 unless inside `run`.
public enum ProductPrecision {
    private static let bf16 = ThreadFlag()

    /// The precision of products on this thread.
    public static var current: Precision { bf16.isSet ? .bf16 : .f32 }

    /// Runs `body` with this thread's products in `precision`, restoring the previous one after.
    public static func run<Result>(_ precision: Precision, _ body: () throws -> Result) rethrows -> Result {
        try bf16.run(precision == .bf16, body)
    }

    private static let f32Kernels = ThreadFlag()

    /// Whether this thread's bf16 products may run on bf16 kernels where the
    /// CPU has them (`OneDNNMatmul.supportsBF16`): false inside `withoutBF16Kernels`.
    static var allowsBF16Kernels: Bool { !f32Kernels.isSet }

    /// Whether this thread's bf16 products run on bf16 kernels: where the
    /// engine has them (`MatmulEngine.hasBF16Kernels`), outside `withoutBF16Kernels`.
    static var usesBF16Kernels: Bool { allowsBF16Kernels && MatmulEngine.hasBF16Kernels }

    /// Runs `body` with this thread's bf16 products multiplying in f32 over
    /// their rounded inputs, as on a CPU without bf16 kernels — the same
    /// numbers — so that tests run that path end to end on any CPU.
    static func withoutBF16Kernels<Result>(_ body: () throws -> Result) rethrows -> Result {
        try f32Kernels.run(true, body)
    }

    /// A thread's product settings, which parallel loops carry to their workers.
    struct Setting {
        let precision: Precision
        let f32Kernels: Bool
    }

    /// The calling thread's settings.
    static var setting: Setting { Setting(precision: current, f32Kernels: f32Kernels.isSet) }

    /// Runs `body` with this thread's products under `setting`.
    static func run<Result>(_ setting: Setting, _ body: () throws -> Result) rethrows -> Result {
        try f32Kernels.run(setting.f32Kernels) { try run(setting.precision, body) }
    }
}

/// Per-thread buffers for the bf16 copies of a product's operands, grown as
/// needed and kept for the thread's life, so that no product allocates.
final class ProductScratch {
    private var buffers: [UnsafeMutableRawPointer?] = [nil, nil, nil, nil]
    private var sizes = [0, 0, 0, 0]

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<ProductScratch>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// The calling thread's scratch.
    static var current: ProductScratch {
        if let pointer = pthread_getspecific(key) { return Unmanaged<ProductScratch>.fromOpaque(pointer).takeUnretainedValue() }
        let scratch = ProductScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }

    /// Buffer `slot` (0..<4) of at least `bytes` bytes, 64-byte aligned.
    func buffer(_ slot: Int, bytes: Int) -> UnsafeMutableRawPointer {
        if let buffer = buffers[slot], sizes[slot] >= bytes { return buffer }
        buffers[slot]?.deallocate()
        let size = max(bytes, 4096)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        buffers[slot] = buffer
        sizes[slot] = size
        return buffer
    }

    /// A bf16 copy of a Float32 matrix that the products inside a
    /// `sharingBFloat16Copy` scope read, made by the first of them.
    struct SharedCopy {
        let source: UnsafePointer<Float>
        let rows: Int, columns: Int, ld: Int
        let bits: UnsafeMutablePointer<UInt16>
        var filled = false
    }

    /// The open scopes' copies, innermost last.
    private(set) var sharedCopies: [SharedCopy] = []
    /// One buffer per nesting depth, grown as needed and kept like `buffers`.
    private var sharedBuffers: [(UnsafeMutableRawPointer, bytes: Int)] = []
    /// bf16 conversions of Float32 operands made on this thread (tests count them).
    var conversions = 0
    /// Products run on this thread over a B its caller wrote in oneDNN's
    /// packed layout (`gemmBFloat16IntoBlockedB`; tests count them).
    var blockedProducts = 0
    /// Products over an NF4 base this thread ran as one product per thread
    /// (`FrozenMatrix.multiplyPerThread` in f32, `multiplyPerThreadBlocked`
    /// in bf16); tests count them.
    var perThreadProducts = 0
    /// Set by `withoutSharedBFloat16Copies`: scopes opened on this thread share nothing.
    var sharingDisabled = false

    /// Opens a scope for `source`; false when an open scope already holds it.
    func openSharedCopy(_ source: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int) -> Bool {
        if sharingDisabled || sharedCopyIndex(source, rows: rows, columns: columns, ld: ld) != nil { return false }
        let depth = sharedCopies.count, bytes = max(2 * rows * columns, 4096)
        if depth == sharedBuffers.count {
            sharedBuffers.append((UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes))
        } else if sharedBuffers[depth].bytes < bytes {
            sharedBuffers[depth].0.deallocate()
            sharedBuffers[depth] = (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes)
        }
        let bits = sharedBuffers[depth].0.bindMemory(to: UInt16.self, capacity: rows * columns)
        sharedCopies.append(SharedCopy(source: source, rows: rows, columns: columns, ld: ld, bits: bits))
        return true
    }

    func closeSharedCopy() { sharedCopies.removeLast() }

    func sharedCopyIndex(_ source: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int) -> Int? {
        sharedCopies.lastIndex { $0.source == source && $0.rows == rows && $0.columns == columns && $0.ld == ld }
    }

    func markFilled(_ index: Int) { sharedCopies[index].filled = true }

    deinit {
        for buffer in buffers { buffer?.deallocate() }
        for buffer in sharedBuffers { buffer.0.deallocate() }
    }
}
