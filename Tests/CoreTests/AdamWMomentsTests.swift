// AdamWMomentsTests: AdamW with bf16 moments stores each moment as the bf16
// rounding (nearest even) of its f32 update and steps the parameters with the
// stored values; with f32 moments it is the textbook update. Checked against
// the definition written out per element, in Double where nothing rounds.
import Foundation
import Testing
import Trial
@testable import Core

@Suite struct AdamWMomentsTests {
    /// 37 elements: two 16-lane blocks and a scalar tail.
    static let count = 37

    static func values(seed: UInt64, scale: Float) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextNormal() * scale }
    }

    /// Three steps of the definition, with `round` applied to each stored moment.
    static func reference(params start: [Float], grads: [[Float]], lr: Float, settings s: AdamWSettings,
                          round: (Float) -> Float) -> (params: [Float], m: [Float], v: [Float]) {
        var p = start, m = [Float](repeating: 0, count: count), v = m
        for (t, g) in grads.enumerated() {
            let step = Float(t + 1)
            let bias1 = 1 - pow(s.beta1, step), bias2Sqrt = (1 - pow(s.beta2, step)).squareRoot()
            for i in 0..<count {
                m[i] = round(s.beta1 * m[i] + (1 - s.beta1) * g[i])
                v[i] = round(s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i])
                p[i] = p[i] * (1 - lr * s.weightDecay) - (lr / bias1) * m[i] / (v[i].squareRoot() / bias2Sqrt + s.eps)
            }
        }
        return (p, m, v)
    }

    @Test(arguments: [Precision.f32, .bf16])
    func threeStepsFollowTheDefinition(moments: Precision) throws {
        let settings = AdamWSettings(weightDecay: 0.01, maxGradNorm: nil, moments: moments == .f32 ? nil : moments)
        let optimizer = AdamW(count: Self.count, settings: settings)
        let context = ComputeContext(threads: 2)
        let start = Self.values(seed: 1, scale: 1)
        let grads = (0..<3).map { Self.values(seed: 10 + UInt64($0), scale: 0.1) }
        let params = FloatArena(capacity: Self.count), gradients = FloatArena(capacity: Self.count)
        params.base.update(from: start, count: Self.count)
        for g in grads {
            gradients.base.update(from: g, count: Self.count)
            optimizer.update(params: FloatPointer(params.base), grads: FloatPointer(gradients.base), lr: 1e-2, context: context)
            #expect(Array(gradients.buffer) == g, "the update only reads the gradients (the backward overwrites them)")
        }
        let round: (Float) -> Float = moments == .bf16 ? { roundedToBFloat16($0) } : { $0 }
        let expected = Self.reference(params: start, grads: grads, lr: 1e-2, settings: settings, round: round)
        let (m, v): ([Float], [Float])
        if moments == .bf16 {
            let bits = optimizer.momentBits.map(floatFromBFloat16)
            (m, v) = (Array(bits[0..<Self.count]), Array(bits[Self.count...]))
            #expect(optimizer.moments.capacity == Self.count, "bf16 moments take half the room")
        } else {
            (m, v) = (Array(optimizer.moments.buffer[0..<Self.count]), Array(optimizer.moments.buffer[Self.count..<2 * Self.count]))
        }
        #expect(m == expected.m)
        #expect(v == expected.v)
        let got = Array(params.buffer)
        let worst = zip(got, expected.params).map { abs($0 - $1) }.max() ?? 0
        // The vector and scalar paths may fuse a multiply-add where the reference does not: one ulp of the step.
        #expect(worst <= 1e-6, "parameters differ by \(worst)")
        // bf16 moments are not f32 moments: the rounding shows in the parameters.
        if moments == .bf16 {
            let f32 = Self.reference(params: start, grads: grads, lr: 1e-2, settings: settings, round: { $0 })
            #expect(zip(got, f32.params).map { abs($0 - $1) }.max() ?? 0 > 1e-6)
        }
    }
}
