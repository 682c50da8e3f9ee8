// BFloat16: bf16 storage (the top 16 bits of a Float32), the conversions
// PyTorch uses (round to nearest even, NaN kept NaN), and matrices held in
// bf16 for products: the frozen base of adapter methods in bf16 precision.
import CKernels
import Foundation

/// bf16 bits of `x`, rounded to nearest even as `torch.Tensor.to(torch.bfloat16)` does.
@inline(__always)
func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// The Float32 a bf16 value stands for (exact).
@inline(__always)
func floatFromBFloat16(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// x rounded to the nearest bf16 value, kept as a Float32.
@inline(__always)
public func roundedToBFloat16(_ x: Float) -> Float {
    floatFromBFloat16(bfloat16Bits(x))
}

/// dst[i] = bf16(src[i]) over a rows × columns block with leading dimension
/// `ld`, packed densely (leading dimension `columns`), rounded as
/// `bfloat16Bits` rounds one: products convert their Float32 operands on
/// every call, so this runs in C, sixteen lanes wide (`factsweep_bf16_round`).
func convertToBFloat16(
    _ dst: UnsafeMutablePointer<UInt16>, _ src: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int, portable: Bool = false
) {
    factsweep_bf16_round(dst, src, rows, columns, ld, portable ? 1 : 0)
}

/// dst[i] = Float(src[i]) over a rows × columns block with leading dimension
/// `ld`, packed densely (exact; in C, eight or sixteen lanes wide).
func convertFromBFloat16(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<UInt16>, rows: Int, columns: Int, ld: Int
) {
    factsweep_bf16_widen(dst, src, rows, columns, ld)
}

/// dst[i] = src[i] rounded to bf16 as `convertToBFloat16` rounds, kept in
/// Float32, over a rows × columns block with leading dimension `ld`, packed densely.
func roundToBFloat16Floats(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int
) {
    factsweep_bf16_round_floats(dst, src, rows, columns, ld)
}

/// A row-major matrix stored in bf16: half the bytes of its Float32 source,
/// made once and read by every product that takes it — or, for a weight that
/// trains (full fine-tuning in bf16) and for a frozen one its owner may still
/// write (a model's shared head, `rereadsSource`), made again by the first
/// product after each change (`init(rounding:)`, `invalidate`).
public final class BFloat16Matrix: @unchecked Sendable {
    public let rows: Int, columns: Int
    let base: UnsafeMutablePointer<UInt16>
    /// The Float32 weight this matrix rounds again when marked stale: a
    /// trained weight, or a frozen one its owner may still write
    /// (`rereadsSource`); nil when it never changes.
    private let source: UnsafePointer<Float>?
    /// Whether `source` is a trained weight (the optimizer writes the rounding with its update).
    private let trains: Bool
    private let lock = NSLock()
    private var stale = false

    /// The bf16 rounding of `source` (rows × columns, row-major), converted
    /// on `context`'s threads; with `packs` its products read oneDNN-packed
    /// copies (`packedIfEnabled`). With `rereadsSource` the matrix keeps
    /// `source` (which must outlive it) and `invalidate` makes the next
    /// product round it and pack it again: a frozen model's bf16 head, whose
    /// arena `LlamaModel.tensor(_:)` hands out for writing.
    public init(_ source: UnsafePointer<Float>, rows: Int, columns: Int, context: ComputeContext, packs: Bool = false,
                rereadsSource: Bool = false) {
        self.rows = rows
        self.columns = columns
        self.source = rereadsSource ? source : nil
        trains = false
        self.packs = packs
        base = Self.allocate(rows * columns)
        Self.round(source, into: base, rows: rows, columns: columns, context: context)
    }

    /// The bf16 rounding of a weight that trains, made by the first `bits`
    /// after creation and after each `invalidate`, or written by the
    /// optimizer's update with the weight itself (`roundedSpan`, `markCurrent`). Products of both
    /// directions read the same plain copy: with oneDNN's packed layout the
    /// backward's products converted the f32 weight again in every call, and
    /// packing each step ran inside the step's first product.
    public init(rounding source: UnsafePointer<Float>, rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        self.source = source
        trains = true
        packs = false
        base = Self.allocate(rows * columns)
        stale = true
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        LargeBuffer.allocate(byteCount: max(1, count) * 2).bindMemory(to: UInt16.self, capacity: max(1, count))
    }

    private static func round(_ source: UnsafePointer<Float>, into base: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int,
                              context: ComputeContext) {
        let destination = UncheckedSendable(base)
        context.parallelFor(rows, minimumPerThread: 64) { range in
            convertToBFloat16(destination.value + range.lowerBound * columns, source + range.lowerBound * columns,
                              rows: range.count, columns: columns, ld: columns)
        }
    }

    /// Marks the rounding stale (its source changed), and a frozen matrix's
    /// packed copies with it; a no-op for a matrix without a source.
    public func invalidate() {
        guard source != nil else { return }
        lock.lock()
        stale = true
        lock.unlock()
        if !trains { packed.invalidate() }
    }

    /// Where a trained matrix's rounding lies in its source's arena
    /// (`arena`: the arena's first Float) and where its bits are: for the
    /// optimizer to write them with the update (`AdamW.RoundedSpan`); nil for
    /// a fixed matrix.
    func roundedSpan(in arena: UnsafePointer<Float>) -> AdamW.RoundedSpan? {
        guard trains, let source else { return nil }
        return AdamW.RoundedSpan(offset: source - arena, count: rows * columns, bits: base)
    }

    /// Marks a trained matrix's rounding current: its bits were written from
    /// its source's values as they now are (by the update that wrote both).
    func markCurrent() {
        guard trains else { return }
        lock.lock()
        stale = false
        lock.unlock()
    }

    /// Whether a trained matrix's rounding is current (tests).
    var isCurrent: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !stale
    }

    /// The matrix's bits, rounded again from the source first when stale.
    func bits(context: ComputeContext) -> UnsafePointer<UInt16> {
        guard let source else { return UnsafePointer(base) }
        lock.lock()
        defer { lock.unlock() }
        if stale {
            Self.round(source, into: base, rows: rows, columns: columns, context: context)
            stale = false
        }
        return UnsafePointer(base)
    }

    deinit { LargeBuffer.deallocate(base, byteCount: max(1, rows * columns) * 2) }

    /// Its copies in the layouts oneDNN's primitives prefer, made by the first
    /// product of each direction (only a frozen matrix has them; `invalidate`
    /// marks them stale when its source was written).
    public let packed = PackedWeight()

    /// Whether this frozen matrix's products read its packed copies: its
    /// model decides, by the model's size alone
    /// (`LlamaModel.packsFrozenBFloat16`).
    public let packs: Bool

    /// `packed` when this matrix packs (only a frozen one can), else nil
    /// (products then read the plain bits, which oneDNN re-blocks inside
    /// every call).
    var packedIfEnabled: PackedWeight? { packs ? packed : nil }

    /// Bytes the matrix occupies (without its packed copies).
    public var byteCount: Int { 2 * rows * columns }

    /// Writes the matrix widened to Float32 into `destination` (rows × columns).
    func widen(into destination: UnsafeMutablePointer<Float>) {
        convertFromBFloat16(destination, bits(context: ComputeContext(threads: 1)), rows: rows, columns: columns, ld: columns)
    }
}
