// UpdateInBackwardTests: AdamW's update run layer by layer inside the
// backward pass (`update_in_backward`) gives, bit for bit, the parameters,
// losses and gradient norms of the update after it, for every method and
// both precisions, and is refused with clipping on. Without clipping the
// norm is summed only when asked for, and not summing it changes nothing else.
// The backward overwrites every gradient, so what the gradients held before a
// step (NaN here) changes nothing either.
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct UpdateInBackwardTests {
    /// Three steps of the tiny golden model's batch, the update after the
    /// backward pass and in it, from the same seed (LoRA with dropout, so
    /// the masks' draws are compared too).
    @Test(arguments: [MethodKind.full, .lora, .qlora, .ia3], [Precision.f32, .bf16])
    func sameStepsAsTheUpdateAfterTheBackward(_ kind: MethodKind, precision: Precision) throws {
        try compare(kind, precision: precision, variant: "tiny-tied")
    }

    /// Full fine-tuning of a model with its own output head (untied), whose
    /// gradient range comes after the layers' (`finalGradients`).
    @Test(arguments: [Precision.f32, .bf16])
    func anUntiedHeadIsUpdatedInTheBackwardToo(precision: Precision) throws {
        try compare(.full, precision: precision, variant: "tiny-untied-llama3")
    }

    func compare(_ kind: MethodKind, precision: Precision, variant: String) throws {
        let loaded = try ModelLocation.open(TestPaths.golden(variant))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(kind, precision: precision),
                                   context: ctx)
        #expect(model.config.tieWordEmbeddings == (variant == "tiny-tied"))
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden(variant))
        let lora = kind == .lora || kind == .qlora
        let method = MethodSettings(kind: kind, rank: 4, alpha: 8, dropout: lora ? 0.1 : 0)
        func trial(inBackward: Bool) throws -> FineTuning {
            try FineTuning(base: model, method: method,
                           optimizer: AdamWSettings(weightDecay: 0.01, maxGradNorm: nil, updateInBackward: inBackward ? true : nil),
                           maxBatch: b.batchSize, maxSeq: b.seqLen, seed: 3, precision: precision, context: ctx)
        }
        let after = try trial(inBackward: false), during = try trial(inBackward: true)
        after.measuresGradientNorm = true
        during.measuresGradientNorm = true
        // Without clipping nothing needs the norm: unasked, it is not summed, and nothing else changes.
        let unmeasured = try trial(inBackward: false)
        let count = after.parameters.capacity
        if kind == .full {
            // Full fine-tuning lays every layer's gradients in one layer's span (`LayerSharedGradients`).
            let layout = model.layout, layers = model.config.layerCount
            let span = try #require(layout["model.layers.1.input_layernorm.weight"]).offset - (try #require(layout["model.layers.0.input_layernorm.weight"])).offset
            #expect(during.gradients.capacity == layout.totalCount - (layers - 1) * span && after.gradients.capacity == layout.totalCount)
        } else {
            #expect(during.gradients.capacity == after.gradients.capacity)
        }
        let initial = Array(UnsafeBufferPointer(start: after.parameters.base, count: count))
        for step in 1...3 {
            // Nothing zeroes the gradients between steps: a gradient the backward added to, or left out, would carry NaN.
            Self.poison(during, shared: kind == .full ? LayerSharedGradients(layout: model.layout, config: model.config) : nil)
            Self.poison(unmeasured)
            let a = after.step(b, lr: 1e-3), d = during.step(b, lr: 1e-3), u = unmeasured.step(b, lr: 1e-3)
            #expect(d == a && a.gradientNorm.map { $0 > 0 } == true, "step \(step): \(d) against \(a)")
            #expect(u.gradientNorm == nil && u.loss == a.loss, "step \(step): \(u) against \(a)")
            let pa = Array(UnsafeBufferPointer(start: after.parameters.base, count: count))
            let pd = Array(UnsafeBufferPointer(start: during.parameters.base, count: count))
            #expect(pd == pa, "step \(step): the parameters differ")
            #expect(Array(UnsafeBufferPointer(start: unmeasured.parameters.base, count: count)) == pa,
                    "step \(step): the parameters differ without the norm")
            #expect(during.optimizer.step == step)
        }
        // The steps moved every trained tensor (none left out of the backward's ranges).
        let final = UnsafeBufferPointer(start: during.parameters.base, count: count)
        for entry in during.trainable {
            #expect((entry.offset..<(entry.offset + entry.count)).contains { final[$0] != initial[$0] }, "\(entry.name) did not change")
        }
    }

    /// Fills every trained tensor's gradient with NaN: where `shared` lays
    /// them (full fine-tuning with the update in the backward pass), else at
    /// the tensor's own offset. Not the arena's alignment padding between
    /// tensors, which no backward writes and which stays zero (the norm's sum
    /// and AdamW read it).
    static func poison(_ ft: FineTuning, shared: LayerSharedGradients? = nil) {
        for entry in ft.trainable {
            (ft.gradients.base + (shared?.place(entry.offset) ?? entry.offset)).update(repeating: .nan, count: entry.count)
        }
    }

    /// A batch that labels no row (a loss of 0) still overwrites every
    /// gradient, with zeros: the head's product then sums over no rows.
    @Test(arguments: ["tiny-tied", "tiny-untied-llama3"], [Precision.f32, .bf16])
    func aBatchWithoutLabelsWritesZeroGradients(variant: String, precision: Precision) throws {
        let loaded = try ModelLocation.open(TestPaths.golden(variant))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(.full, precision: precision),
                                   context: ctx)
        let labelled = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden(variant))
        let b = TokenBatch(lengths: labelled.lengths, tokens: labelled.tokens,
                           targets: Array(repeating: TokenBatch.ignore, count: labelled.targets.count), sharedPrefix: labelled.sharedPrefix)
        let ft = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(maxGradNorm: nil),
                                maxBatch: b.batchSize, maxSeq: b.seqLen, seed: 3, precision: precision, context: ctx)
        Self.poison(ft)
        let result = ft.step(b, lr: 1e-3)
        #expect(result.loss == 0 && result.labelledTokens == 0)
        let gradients = UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity)
        #expect(gradients.allSatisfy { $0 == 0 }, "\(gradients.filter { $0 != 0 }.count) gradients not zero")
        #expect(UnsafeBufferPointer(start: ft.parameters.base, count: ft.parameters.capacity).allSatisfy { $0.isFinite })
    }

    @Test func refusedWithClipping() throws {
        let settings = AdamWSettings(maxGradNorm: 1, updateInBackward: true)
        #expect(throws: SettingRefusal.self) { try settings.validate() }
        // Named as the spec and as the command line spell them.
        #expect(throws: SettingRefusal("update_in_backward needs clip 0 (got 1.0): the global gradient norm is known only after the "
                                       + "whole backward, when all but the first layer are already updated")) { try settings.validate() }
        #expect(throws: SettingRefusal("--update-in-backward needs --clip 0 (got 1.0): the global gradient norm is known only after "
                                       + "the whole backward, when all but the first layer are already updated")) {
            try settings.validate(naming: \.flag)
        }
        #expect(throws: Never.self) { try AdamWSettings(maxGradNorm: nil, updateInBackward: true).validate() }
        #expect(throws: Never.self) { try AdamWSettings(maxGradNorm: 1, updateInBackward: false).validate() }
        let model = TinyModels.model(TinyModels.config())
        do {
            _ = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: settings, maxBatch: 1, maxSeq: 4, seed: 1,
                               context: ComputeContext(threads: 1))
            Issue.record("a trial that clips and updates in the backward pass was set up")
        } catch {
            #expect("\(error)".contains("update_in_backward needs clip 0"), "\(error)")
        }
    }
}
