// RoundInUpdateTests: full fine-tuning in bf16 writes its per-step bf16
// rounding of the trained weights in AdamW's pass (`FineTuning.roundsInUpdate`),
// and trains bit for bit as when the next step's first products round them:
// f32 and bf16 moments, the update after the backward pass (with clipping)
// and in it; a checkpoint's parameters written from outside make the
// roundings stale again (`parametersChanged`, and `FineTuning.tensor(_:)`).
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct RoundInUpdateTests {
    static func parameters(_ trial: FineTuning) -> [Float] {
        Array(UnsafeBufferPointer(start: trial.parameters.base, count: trial.parameters.capacity))
    }

    /// How many parameters of two trials differ in their bits: a count, so
    /// that a failing check prints it rather than a difference of two arrays
    /// of every parameter, which swift-testing takes minutes to compute.
    static func differingParameters(_ a: FineTuning, _ b: FineTuning) -> Int {
        zip(parameters(a), parameters(b)).reduce(0) { $0 + ($1.0.bitPattern == $1.1.bitPattern ? 0 : 1) }
    }

    /// Whether every trained matrix's bits are current and round its weights
    /// as they now are: plain rows, or both blocked layouts, each value in
    /// its place (`NF4ProductTests.blockedOffset`).
    static func roundingsHoldTheWeights(_ trial: FineTuning) -> Bool {
        trial.network.trainedRoundings.allSatisfy { matrix in
            guard matrix.isCurrent, let span = matrix.roundedSpan(in: trial.parameters.base) else { return false }
            let weights = trial.parameters.base + span.offset
            switch span.destination {
            case let .plain(bits):
                return (0..<span.count).allSatisfy { bits[$0] == bfloat16Bits(weights[$0]) }
            case let .blocked(forward, backward, rows, columns):
                return (0..<rows).allSatisfy { r in
                    (0..<columns).allSatisfy { c in
                        let bits = bfloat16Bits(weights[r * columns + c])
                        return forward[NF4ProductTests.blockedOffset(rowsOfB: columns, c, r)] == bits
                            && backward[NF4ProductTests.blockedOffset(rowsOfB: rows, r, c)] == bits
                    }
                }
            }
        }
    }

    @Test(arguments: [Precision.f32, .bf16], [false, true])
    func sameStepsAsRoundingInTheNextStep(moments: Precision, inBackward: Bool) throws {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(.full, precision: .bf16),
                                   context: ctx)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        let settings = AdamWSettings(weightDecay: 0.01, maxGradNorm: inBackward ? nil : 1, moments: moments,
                                     updateInBackward: inBackward ? true : nil)
        func trial(rounds: Bool) throws -> FineTuning {
            let t = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: settings, maxBatch: b.batchSize,
                                   maxSeq: b.seqLen, seed: 3, precision: .bf16, context: ctx)
            t.roundsInUpdate = rounds
            return t
        }
        let fused = try trial(rounds: true), apart = try trial(rounds: false)
        // The head (tied to the embedding) and every projection of every layer.
        #expect(fused.network.trainedRoundings.count == 1 + 7 * model.config.layerCount)
        let initial = Self.parameters(fused)
        for step in 1...3 {
            let f = fused.step(b, lr: 1e-3), a = apart.step(b, lr: 1e-3)
            #expect(f == a, "step \(step): \(f) against \(a)")
            #expect(Self.differingParameters(fused, apart) == 0, "step \(step): the parameters differ")
            #expect(Self.roundingsHoldTheWeights(fused), "step \(step): the update did not write the roundings")
            #expect(apart.network.trainedRoundings.allSatisfy { !$0.isCurrent }, "step \(step): stale roundings kept")
        }
        let moved = Self.parameters(fused) != initial
        #expect(moved)
        // A checkpoint's parameters, written from outside a step: rounded again by the next step's products.
        for trial in [fused, apart] {
            trial.parameters.base.update(from: initial, count: initial.count)
            trial.parametersChanged()
        }
        #expect(fused.network.trainedRoundings.allSatisfy { !$0.isCurrent })
        let f = fused.step(b, lr: 1e-3), a = apart.step(b, lr: 1e-3)
        #expect(f == a, "after the restore: \(f) against \(a)")
        #expect(Self.differingParameters(fused, apart) == 0)
        #expect(Self.roundingsHoldTheWeights(fused))
    }

    /// A trained tensor handed out by `FineTuning.tensor(_:)` is written
    /// outside a step: the roundings are made stale by the hand-out, and
    /// the next step computes what it computes after `parametersChanged()`.
    @Test func writingThroughTensorMakesTheRoundingsStale() throws {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(.full, precision: .bf16),
                                   context: ctx)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        func trial() throws -> FineTuning {
            let t = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(), maxBatch: b.batchSize,
                                   maxSeq: b.seqLen, seed: 3, precision: .bf16, context: ctx)
            // The update writes the roundings (whatever FACTSWEEP_ROUND_IN_UPDATE says), so they are current before the write.
            t.roundsInUpdate = true
            return t
        }
        let viaTensor = try trial(), viaArena = try trial()
        _ = viaTensor.step(b, lr: 1e-3)
        _ = viaArena.step(b, lr: 1e-3)
        #expect(Self.roundingsHoldTheWeights(viaTensor))
        let name = ParameterLayout.name(layer: 0, .q)
        let entry = try #require(viaArena.trainable.first { $0.name == name })
        let written = try #require(viaTensor.tensor(name))
        #expect(viaTensor.network.trainedRoundings.allSatisfy { !$0.isCurrent }, "the hand-out left the roundings current")
        for i in stride(from: 0, to: written.count, by: 3) {
            written[i] += 0.5
            viaArena.parameters.base[entry.offset + i] += 0.5
        }
        viaArena.parametersChanged()
        let t = viaTensor.step(b, lr: 1e-3), a = viaArena.step(b, lr: 1e-3)
        #expect(t == a, "after the write: \(t) against \(a)")
        let sameParameters = Self.parameters(viaTensor) == Self.parameters(viaArena)
        #expect(sameParameters, "after the write the parameters differ")
    }
}
