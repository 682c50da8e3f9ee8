// Random: a small seeded generator whose whole state can be saved and restored,
// so that runs are reproducible and resumable across processes.
import Foundation

/// xoshiro256** seeded through SplitMix64. Deterministic across platforms.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Codable, Equatable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
        state[2] ^= t
        state[3] = state[3] << 45 | state[3] >> 19
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal by Box–Muller.
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, .leastNonzeroMagnitude)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }
}
