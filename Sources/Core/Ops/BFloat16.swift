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

/// Rows `rows` of W (`height` × `width` Float32, row-major) rounded as
/// `convertToBFloat16` rounds them into both of oneDNN's blocked bf16
/// layouts (`forward`: B = Wᵀ, `backward`: B = W; `factsweep_bf16_round_vnni`).
/// Both sizes must be multiples of 64 and the rows' bounds of 16.
func roundIntoBlockedLayouts(
    _ w: UnsafePointer<Float>, height: Int, width: Int, rows: Range<Int>, forward: UnsafeMutablePointer<UInt16>,
    backward: UnsafeMutablePointer<UInt16>
) {
    let done = factsweep_bf16_round_vnni(w, height, width, rows.lowerBound, rows.upperBound, forward, backward, KernelPath.widest.code)
    precondition(done != 0, "rows \(rows) of a \(height) × \(width) matrix do not fit the blocked bf16 layout")
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
///
/// A frozen matrix that packs keeps its values in oneDNN's packed copies,
/// one per direction, once both are made, and releases its plain bits then
/// (`releasePlainBitsIfPacked`): at Llama-3.2-1B they are 2.5 GB of a bf16
/// adapter worker's memory that no product reads any more
/// (docs/benchmarks.md, "Issue 13, twenty-fourth stop"). A product that
/// needs them again (a layout no copy has, a CPU path without bf16 kernels,
/// an export) makes them again — from the source when the matrix keeps one,
/// else from a packed copy, which holds the same values — under a lease
/// (`withBits`) that no release interrupts.
public final class BFloat16Matrix: @unchecked Sendable {
    public let rows: Int, columns: Int
    /// The Float32 weight this matrix rounds again when marked stale: a
    /// trained weight, or a frozen one its owner may still write
    /// (`rereadsSource`); nil when it never changes.
    private let source: UnsafePointer<Float>?
    /// Whether `source` is a trained weight (the optimizer writes the rounding with its update).
    private let trains: Bool
    private let lock = NSLock()
    /// The plain bits (rows × columns, row-major); nil while released.
    private var plain: UnsafeMutablePointer<UInt16>?
    private var stale = false
    /// Products reading the plain bits now (`withBits`): no release while any does.
    private var readers = 0
    /// Set when the plain bits had to be made again while both packed copies
    /// were current (a product reading another layout): they are then kept
    /// for the matrix's life, so that such products do not make them again
    /// every call. No product of the study's does (`PlainBitsReleaseTests`).
    private var keepsPlainBits = false
    /// A trained matrix's rounding in the two layouts oneDNN's bf16 products
    /// read a packed B in: B = Wᵀ (the forward's) then B = W (the
    /// backward's), rows × columns bits each, written by the optimizer's
    /// update with the weights (`roundedSpan`); nil where those products
    /// read another layout, and then the update writes the plain bits.
    private let blocked: UnsafeMutablePointer<UInt16>?
    /// Whether `blocked` rounds older values than the source's.
    private var blockedStale = true

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
        blocked = nil
        let made = Self.allocate(rows * columns)
        Self.round(source, into: made, rows: rows, columns: columns, context: context)
        plain = made
    }

    /// The bf16 rounding of a weight that trains, made by the first product
    /// after creation and after each `invalidate`, or written by the
    /// optimizer's update with the weight itself (`roundedSpan`, `markCurrent`).
    ///
    /// Where oneDNN's bf16 products read a packed B in its AVX-512 layout
    /// (`writesBlocked`), the rounding is kept in that layout only, once per
    /// direction, and the update writes both a few rows at a time while the
    /// new weights are in cache (`factsweep_bf16_round_vnni`): over plain
    /// rows oneDNN re-blocks B inside every product, which at batch 1's 62
    /// rows ran those products 25% (forward) and 47% (backward) slower than
    /// over the layout it asks for (docs/benchmarks.md, "Issue 13,
    /// thirty-fourth stop"). The cost is one more copy of the weights in
    /// bf16, written each step. Plain bits are then made from the source
    /// only for a product that needs them. Elsewhere products of both
    /// directions read one plain rounding: packing it per step through
    /// oneDNN's reorder, which reads the weights again, was slower.
    /// With `blocked` (the model's rule, `LlamaModel.blocksTrainedRoundings`)
    /// a matrix whose products read the blocked layout keeps its rounding
    /// there (`writesBlocked`).
    public init(rounding source: UnsafePointer<Float>, rows: Int, columns: Int, blocked asked: Bool = false) {
        self.rows = rows
        self.columns = columns
        self.source = source
        trains = true
        packs = false
        let blocks = asked && Self.writesBlocked(rows: rows, columns: columns)
        blocked = blocks ? Self.allocate(2 * rows * columns) : nil
        plain = blocks ? nil : Self.allocate(rows * columns)
        stale = true
    }

    /// Tests turn blocked roundings off per thread around a matrix's creation
    /// (the environment's `off` is `LlamaModel.blocksTrainedRoundings`'s).
    static let trainedBlocked = PathSwitch(environmentKey: "FACTSWEEP_TRAINED_BF16_BLOCKED")

    /// Whether a trained rows × columns matrix can keep its rounding in
    /// oneDNN's blocked bf16 layouts: both sizes are multiples of 64 (the
    /// layout's blocks), and oneDNN's bf16 matmul here reads a packed B of
    /// both directions' shapes in that layout.
    static func writesBlocked(rows: Int, columns: Int) -> Bool {
        guard trainedBlocked.isOn, rows % 64 == 0, columns % 64 == 0, rows > 0, columns > 0 else { return false }
        return [true, false].allSatisfy { transB in
            let (n, k) = transB ? (rows, columns) : (columns, rows)
            return readsBlockedBFloat16B(transB: transB, m: 64, n: n, k: k)
        }
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<UInt16> {
        LargeBuffer.allocate(byteCount: max(1, count) * 2).bindMemory(to: UInt16.self, capacity: max(1, count))
    }

    private static func deallocate(_ bits: UnsafeMutablePointer<UInt16>, count: Int) {
        LargeBuffer.deallocate(bits, byteCount: max(1, count) * 2)
    }

    private static func round(_ source: UnsafePointer<Float>, into base: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int,
                              context: ComputeContext) {
        let destination = UncheckedSendable(base)
        context.parallelFor(rows, minimumPerThread: 64) { range in
            convertToBFloat16(destination.value + range.lowerBound * columns, source + range.lowerBound * columns,
                              rows: range.count, columns: columns, ld: columns)
        }
    }

    /// The plain bits of a matrix that never releases them (one that trains
    /// without blocked copies, or does not pack); one that packs is read
    /// through `withBits`, whose lease keeps them while they are read, and
    /// one that trains with blocked copies has plain bits only when a
    /// product made them (`withBits` too).
    var base: UnsafeMutablePointer<UInt16> {
        precondition(!packs || trains, "a packing bf16 matrix may release its plain bits: read them through withBits")
        precondition(blocked == nil, "a trained bf16 matrix with blocked copies has no plain bits of its own: read them through withBits")
        lock.lock()
        defer { lock.unlock() }
        guard let plain else { preconditionFailure("unreachable: a matrix that does not pack keeps its plain bits") }
        return plain
    }

    /// Marks the rounding stale (its source changed), and a frozen matrix's
    /// packed copies with it; a no-op for a matrix without a source.
    public func invalidate() {
        guard source != nil else { return }
        lock.lock()
        stale = true
        blockedStale = true
        lock.unlock()
        if !trains { packed.invalidate() }
    }

    /// Where a trained matrix's rounding lies in its source's arena
    /// (`arena`: the arena's first Float) and where its bits are: for the
    /// optimizer to write them with the update (`AdamW.RoundedSpan`); nil for
    /// a fixed matrix.
    func roundedSpan(in arena: UnsafePointer<Float>) -> AdamW.RoundedSpan? {
        guard trains, let source else { return nil }
        if let blocked {
            return AdamW.RoundedSpan(offset: source - arena, count: rows * columns,
                                     destination: .blocked(forward: blocked, backward: blocked + rows * columns, rows: rows, columns: columns))
        }
        return AdamW.RoundedSpan(offset: source - arena, count: rows * columns, destination: .plain(base))
    }

    /// Marks a trained matrix's rounding current: it was written from its
    /// source's values as they now are (by the update that wrote both) —
    /// the blocked copies when it has them, whose plain bits (if any were
    /// made) are then stale.
    func markCurrent() {
        guard trains else { return }
        lock.lock()
        if blocked != nil {
            blockedStale = false
            stale = true
        } else {
            stale = false
        }
        lock.unlock()
    }

    /// Whether a trained matrix's rounding is current (tests): its blocked
    /// copies when it has them, else its plain bits.
    var isCurrent: Bool {
        lock.lock()
        defer { lock.unlock() }
        return blocked != nil ? !blockedStale : !stale
    }

    /// Whether a trained matrix keeps its rounding in the blocked layouts (tests).
    var holdsBlockedRounding: Bool { blocked != nil }

    /// A trained matrix's blocked rounding for a product of `transB`'s
    /// direction (B = Wᵀ, else B = W); nil when it has none. Current after
    /// `makeBlockedRoundingCurrent`.
    func blockedRounding(transB: Bool) -> UnsafeMutablePointer<UInt16>? {
        blocked.map { transB ? $0 : $0 + rows * columns }
    }

    /// Makes a trained matrix's blocked rounding from its source when stale
    /// (after `invalidate`: a restored checkpoint, a write from outside a
    /// step, a step whose update did not write it), on `context`'s threads,
    /// 16 rows at a time.
    func makeBlockedRoundingCurrent(context: ComputeContext) {
        guard let blocked, let source else { return }
        lock.lock()
        defer { lock.unlock() }
        guard blockedStale else { return }
        let rows = rows, columns = columns, bits = UncheckedSendable(blocked)
        context.parallelFor(rows / 16, minimumPerThread: 4) { groups in
            roundIntoBlockedLayouts(source, height: rows, width: columns, rows: 16 * groups.lowerBound..<16 * groups.upperBound,
                                    forward: bits.value, backward: bits.value + rows * columns)
        }
        blockedStale = false
    }

    /// Whether the matrix holds its plain bits now (tests, and `LlamaModel.heldBytes`).
    var holdsPlainBits: Bool {
        lock.lock()
        defer { lock.unlock() }
        return plain != nil
    }

    /// Runs `body` with the matrix's plain bits, rounded again from the
    /// source first when stale, or made again when released; no release
    /// happens until `body` returns. A product that needs them made again
    /// while both packed copies are current reads a layout no copy has, and
    /// would again: they are kept from then on (`keepsPlainBits`); a one-off
    /// reader (`oneOff`, an export) lets them go again afterwards.
    func withBits<Result>(context: ComputeContext, oneOff: Bool = false, _ body: (UnsafePointer<UInt16>) -> Result) -> Result {
        lock.lock()
        if plain == nil {
            keepsPlainBits = !oneOff && packed.holdsBothDirections
            let made = Self.allocate(rows * columns)
            if source != nil {
                stale = true
            } else {
                let unpacked = OneDNNMatmul.unpack(packed, into: made)
                precondition(unpacked, "a bf16 matrix released its plain bits without a current packed copy to make them again from")
            }
            plain = made
        }
        guard let bits = plain else { preconditionFailure("unreachable: the plain bits were just made") }
        if let source, stale {
            Self.round(source, into: bits, rows: rows, columns: columns, context: context)
            stale = false
        }
        readers += 1
        lock.unlock()
        defer {
            lock.lock()
            readers -= 1
            lock.unlock()
        }
        return body(UnsafePointer(bits))
    }

    /// The environment variable that keeps packed frozen matrices' plain bits
    /// (`off`): the benchmark's before/after.
    static let releaseEnvironmentKey = "FACTSWEEP_RELEASE_BF16_ROWS"

    /// Whether packed frozen matrices release their plain bits (the environment's say).
    static let releasesPlainBits = ProcessInfo.processInfo.environment[releaseEnvironmentKey]?.lowercased() != "off"

    /// Releases the plain bits of a frozen matrix that packs once both
    /// directions' packed copies are current and no product reads them
    /// (nor made them again for a layout no copy has: `keepsPlainBits`).
    func releasePlainBitsIfPacked() {
        guard packs, !trains, Self.releasesPlainBits else { return }
        lock.lock()
        defer { lock.unlock() }
        guard let bits = plain, readers == 0, !keepsPlainBits, !stale, packed.holdsBothDirections else { return }
        Self.deallocate(bits, count: rows * columns)
        plain = nil
    }

    deinit {
        if let plain { Self.deallocate(plain, count: rows * columns) }
        if let blocked { Self.deallocate(blocked, count: 2 * rows * columns) }
    }

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

    /// Bytes of the matrix's values in bf16, whether held in plain rows or
    /// only in its packed copies (whose bytes are not counted here).
    public var byteCount: Int { 2 * rows * columns }

    /// Bytes a trained matrix's rounding occupies now: its blocked copies
    /// (two) and its plain bits, if it holds them. Plain bits that a
    /// product made again beside blocked copies (a layout no copy has, the
    /// path without bf16 kernels, a one-off export) are kept for the
    /// matrix's life, as a frozen matrix's are once made again
    /// (`keepsPlainBits`); no product of the study's makes them.
    var roundingBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return (blocked != nil ? 4 * rows * columns : 0) + (plain != nil ? 2 * rows * columns : 0)
    }

    /// Writes the matrix widened to Float32 into `destination` (rows × columns).
    func widen(into destination: UnsafeMutablePointer<Float>) {
        withBits(context: ComputeContext(threads: 1), oneOff: true) { bits in
            convertFromBFloat16(destination, bits, rows: rows, columns: columns, ld: columns)
        }
        releasePlainBitsIfPacked()
    }
}
