// ReleasablePlainRows: a frozen Float32 matrix's plain rows, handed back to
// the kernel while oneDNN's packed copies of it (one per direction) hold its
// values, and written back from a copy for whatever still reads them.
import Foundation

/// The plain rows of a frozen Float32 matrix that packs: a model's
/// projection in an adapter trial, whose products read only its packed
/// copies once both directions' exist (`gemmOnPackedCopy`). Keeping the plain
/// rows beside both copies costs the model three times its projections;
/// released, twice (Llama-3.2-1B: 3.9 GB less a worker; docs/benchmarks.md,
/// "Issue 13, fortieth stop"). This is what `BFloat16Matrix` does for its
/// plain bits, for a matrix that lives inside the model's arena.
///
/// Released pages are unreadable as well as returned (`LargeBuffer.release`):
/// a reader that does not take a lease (`withRows`) faults at once instead of
/// multiplying by zeros. Whatever still reads the plain rows — a product no
/// copy serves (another layout, OpenBLAS, a single-threaded section, bf16
/// precision), full fine-tuning's copy of the base, a merged export, a write
/// through `LlamaModel.tensor` — takes that lease, which writes them back
/// from a packed copy first (the same Floats: packing only moves them).
final class ReleasablePlainRows: @unchecked Sendable {
    let rows: UnsafeMutablePointer<Float>, count: Int
    private let lock = NSLock()
    /// The pages handed back, while released.
    private var released: LargeBuffer.Pages?
    /// Readers holding a lease now: no release while any does.
    private var readers = 0
    /// Set when the rows had to be written back for a product while both
    /// copies were current (a layout no copy has): they are then kept, so
    /// that such products do not write them back at every call.
    private var keeps = false

    init(_ rows: UnsafeMutablePointer<Float>, count: Int) {
        self.rows = rows
        self.count = count
    }

    /// The environment variable that keeps the plain rows (`off`): the benchmark's before/after.
    static let environmentKey = "FACTSWEEP_RELEASE_F32_ROWS"

    /// Whether plain rows are released: `FACTSWEEP_RELEASE_F32_ROWS=off`
    /// keeps them for the process; tests keep them on one thread to compare.
    static let release = PathSwitch(environmentKey: environmentKey)

    /// Whether this process releases plain rows at all (the environment's say).
    static var releases: Bool { release.byEnvironment }

    /// Whether the rows are released now (tests).
    var isReleased: Bool { lock.withLock { released != nil } }

    /// Releases the rows when both directions of `packed` are current, no
    /// lease is held and no product needed them back beside both copies.
    /// Called with `lock` held.
    private func releaseIfPacked(_ packed: PackedWeight) {
        guard Self.release.isOn, released == nil, readers == 0, !keeps, packed.holdsBothDirections(float32: true) else { return }
        released = LargeBuffer.release(UnsafeMutableRawBufferPointer(start: rows, count: 4 * count))
    }

    /// Runs `body` with the plain rows readable and holding the matrix's
    /// values, written back from `packed` first when released; no release
    /// happens until `body` returns. The last reader to leave releases them
    /// again if both copies are then current: a product that made the
    /// second copy, a reader that only looked. After a write (`invalidate`)
    /// or a drop of the copies (`discardCopies`) none is current, so the rows
    /// stay until the next products make the copies again. A reader that
    /// needed them written back while both copies are current would need
    /// them again: they are kept from then on, unless it is a one-off
    /// (`oneOff`: an export, a copy of the base, a write).
    func withRows<Result>(restoringFrom packed: PackedWeight, oneOff: Bool = false, _ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        if let pages = released {
            keeps = !oneOff && packed.holdsBothDirections(float32: true)
            LargeBuffer.restore(pages)
            let unpacked = OneDNNMatmul.unpack(packed, into: rows)
            precondition(unpacked, "a Float32 matrix released its plain rows without a current packed copy to write them back from")
            released = nil
        }
        readers += 1
        lock.unlock()
        defer {
            lock.withLock {
                readers -= 1
                releaseIfPacked(packed)
            }
        }
        return try body()
    }
}

extension PackedWeight {
    /// Runs `body` under a lease on the plain rows these copies may release
    /// (`ReleasablePlainRows.withRows`), or directly where they release none.
    func withPlainRows<Result>(oneOff: Bool = false, _ body: () throws -> Result) rethrows -> Result {
        guard let plainRows else { return try body() }
        return try plainRows.withRows(restoringFrom: self, oneOff: oneOff, body)
    }
}
