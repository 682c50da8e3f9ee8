// FloatArena: one 64-byte-aligned allocation of Floats per role (parameters,
// gradients, activations, activation gradients, optimizer moments), carved
// into named tensors at set-up so that nothing allocates inside a training step.

/// A pointer to Floats that may cross into parallel loops. The arena that owns
/// the memory outlives every use; callers partition writes between threads.
public struct FloatPointer: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public init(_ base: UnsafeMutablePointer<Float>) { self.base = base }
    @inline(__always) public subscript(i: Int) -> Float {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
    @inline(__always) public static func + (p: FloatPointer, offset: Int) -> FloatPointer {
        FloatPointer(p.base + offset)
    }
}

/// One aligned, zero-initialised block of Floats, handed out in slices.
public final class FloatArena: @unchecked Sendable {
    public let capacity: Int
    public let base: UnsafeMutablePointer<Float>
    private var used = 0
    /// Set for the arena `carved` first runs its takes on: it only counts.
    private let measuring: Bool

    /// Allocates `capacity` Floats, zeroed. Gradients rely on it only for
    /// their layout's alignment padding between tensors: the backward
    /// overwrites every tensor's gradient but never writes the padding, which
    /// the gradient norm's sum and AdamW read, so it must stay zero.
    public init(capacity: Int) {
        self.capacity = capacity
        measuring = false
        // On huge pages when large (`LargeBuffer`), advised before the zeroing below first touches it.
        let raw = LargeBuffer.allocate(byteCount: max(capacity, 16) * 4)
        base = raw.bindMemory(to: Float.self, capacity: max(capacity, 16))
        base.initialize(repeating: 0, count: max(capacity, 16))
    }

    /// An arena of no capacity whose takes only add up their sizes.
    private init(measuring: Void) {
        capacity = 0
        self.measuring = true
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 16 * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: 16)
        base.initialize(repeating: 0, count: 16)
    }

    deinit { LargeBuffer.deallocate(base, byteCount: max(capacity, 16) * 4) }

    /// The next `count` Floats, rounded up to a 16-Float boundary so that every
    /// tensor starts on a cache line.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        defer { used += (count + 15) & ~15 }
        if measuring { return base }
        precondition(used + count <= capacity, "arena overflow: \(used) + \(count) > \(capacity)")
        return base + used
    }

    /// An arena exactly as large as the slices `carve` takes from it, and what
    /// `carve` built from them: one list of takes gives both the size and the
    /// tensors, so the two cannot drift apart. `carve` runs twice, first on an
    /// arena that only adds up the sizes (every slice it hands out is the same
    /// placeholder), so it must only take slices and keep them, taking the
    /// same sizes on both runs.
    public static func carved<Tensors>(_ carve: (FloatArena) -> Tensors) -> (arena: FloatArena, tensors: Tensors) {
        let measure = FloatArena(measuring: ())
        _ = carve(measure)
        let arena = FloatArena(capacity: measure.used)
        return (arena, carve(arena))
    }

    /// All Floats as one buffer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: capacity) }

    public var byteCount: Int { capacity * 4 }
}
