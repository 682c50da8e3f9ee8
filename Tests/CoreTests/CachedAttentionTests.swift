// CachedAttentionTests: cached attention over packed rows (sequences of
// different lengths, one with none) equals attention written out per element.
import Foundation
import Testing
@testable import Core
import Trial

@Suite struct CachedAttentionTests {
    /// In bf16 (inside `ProductPrecision.run(.bf16)`, as a bf16 trial's
    /// evaluation decodes) both products take bf16 inputs, as training's
    /// attention does: the definition with q, k, the probabilities and v
    /// rounded, which differs from the f32 one by far more than the tolerance.
    @Test(arguments: [1, 2], [Precision.f32, .bf16])
    func packedRowsEqualTheDefinition(threads: Int, precision: Precision) {
        let shape = CachedAttentionShape(batch: 4, cacheLength: 20, heads: 4, kvHeads: 2, headDim: 8)
        let start = [0, 7, 3, 12], lengths = [5, 0, 1, 8]
        let Q = shape.qWidth, K = shape.kvWidth, L = shape.cacheLength, hd = shape.headDim, rows = lengths.reduce(0, +)
        let arena = FloatArena(capacity: 2 * rows * Q + 2 * shape.batch * L * K + threads * L)
        let q = FloatPointer(arena.take(rows * Q)), out = FloatPointer(arena.take(rows * Q))
        let keys = FloatPointer(arena.take(shape.batch * L * K)), values = FloatPointer(arena.take(shape.batch * L * K))
        var rng = SeededGenerator(seed: 9)
        for i in 0..<(rows * Q) { q.base[i] = rng.nextNormal() }
        for i in 0..<(shape.batch * L * K) { keys.base[i] = rng.nextNormal(); values.base[i] = rng.nextNormal() }
        out.base.update(repeating: .nan, count: rows * Q)
        let scratch = FloatPointer(arena.take(threads * L))
        ProductPrecision.run(precision) {
            cachedAttentionForward(out, q: q, keys: keys, values: values, start: start, lengths: lengths, shape: shape,
                                   scores: scratch, context: ComputeContext(threads: threads))
        }
        func rounding(_ p: Precision) -> (Float) -> Float {
            p == .bf16 ? { roundedToBFloat16($0) } : { $0 }
        }
        var row = 0, worst: Float = 0, otherPrecision: Float = 0
        for b in 0..<shape.batch {
            for t in 0..<lengths[b] {
                for h in 0..<shape.heads {
                    let kv = h / (shape.heads / shape.kvHeads), visible = start[b] + t + 1
                    func cache(_ p: FloatPointer, _ j: Int, _ d: Int) -> Float { p.base[(b * L + j) * K + kv * hd + d] }
                    /// The output row and, per element, how far a correct kernel may be from it: 1e-5, and in
                    /// bf16 one bf16 step of each probability (the kernel sums scores in another order, so a
                    /// probability a few f32 ulps from a bf16 boundary may round to its neighbour).
                    func attention(_ r: (Float) -> Float, rounds: Bool) -> (out: [Float], slack: [Float]) {
                        let query = (0..<hd).map { r(q.base[row * Q + h * hd + $0]) }
                        let scores = (0..<visible).map { j in (0..<hd).reduce(Float(0)) { $0 + query[$1] * r(cache(keys, j, $1)) } / Float(hd).squareRoot() }
                        let top = scores.max() ?? 0, weights = scores.map { expf($0 - top) }, inverse = 1 / weights.reduce(0, +)
                        let p = weights.map { $0 * inverse }
                        let out = (0..<hd).map { d in (0..<visible).reduce(Float(0)) { $0 + r(p[$1]) * r(cache(values, $1, d)) } }
                        let slack = (0..<hd).map { d in
                            1e-5 + (rounds ? (0..<visible).reduce(Float(0)) { $0 + 0x1p-7 * p[$1] * abs(cache(values, $1, d)) } : 0)
                        }
                        return (out, slack)
                    }
                    let expected = attention(rounding(precision), rounds: precision == .bf16)
                    let other = attention(rounding(precision == .bf16 ? .f32 : .bf16), rounds: false).out
                    for d in 0..<hd {
                        let got = out.base[row * Q + h * hd + d]
                        worst = max(worst, abs(got - expected.out[d]) / expected.slack[d])
                        otherPrecision = max(otherPrecision, abs(got - other[d]))
                    }
                }
                row += 1
            }
        }
        #expect(row == rows)
        #expect(worst <= 1, "\(precision): largest difference \(worst) of what is allowed")
        #expect(otherPrecision > 1e-3, "\(precision): \(otherPrecision) from the other precision's definition")
    }
}
