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

    /// Allocates `capacity` Floats. Memory is zeroed so that gradients start at 0.
    public init(capacity: Int) {
        self.capacity = capacity
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 16) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(capacity, 16))
        base.initialize(repeating: 0, count: max(capacity, 16))
    }

    deinit { base.deallocate() }

    /// The next `count` Floats, rounded up to a 16-Float boundary so that every
    /// tensor starts on a cache line.
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        precondition(used + count <= capacity, "arena overflow: \(used) + \(count) > \(capacity)")
        let p = base + used
        used += (count + 15) & ~15
        return p
    }

    /// Floats needed to `take` tensors of these sizes, alignment included.
    public static func size(for counts: [Int]) -> Int {
        counts.reduce(0) { $0 + (($1 + 15) & ~15) }
    }

    /// Sets every Float to zero.
    public func zero() { base.update(repeating: 0, count: capacity) }

    /// All Floats as one buffer.
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: capacity) }

    public var byteCount: Int { capacity * 4 }
}
