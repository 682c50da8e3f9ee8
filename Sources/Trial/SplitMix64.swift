// SplitMix64: the one seeded generator for what must be the same on every
// run and platform — sampled sweep axes (frozen into trial keys) and the chaos
// benchmark's fault schedule. Not for numerics (Core has its own xoshiro).

/// Sebastiano Vigna's SplitMix64: tiny, fast, well mixed, and the same
/// sequence on every platform and Swift version — which the system generator
/// does not promise and which frozen trial keys need.
public struct SplitMix64: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double in [0, 1) from the top 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// An integer in [0, bound) without modulo bias (Lemire's multiply-shift, with rejection).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        while true {
            let (high, low) = next().multipliedFullWidth(by: bound)
            if low >= (0 &- bound) % bound { return high }
        }
    }
}
