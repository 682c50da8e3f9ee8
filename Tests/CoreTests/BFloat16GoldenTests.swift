// Golden tests of bf16 precision against PyTorch's CPU autocast
// (scripts/reference/make_bf16_golden.py): the tiny-tied Llama trained fully
// and with the peft-lora adapter, forward and loss under
// torch.autocast("cpu", dtype=torch.bfloat16).
//
// Tolerances. bf16 keeps 8 significant bits (relative rounding 2⁻⁹ ≈ 2e-3 per
// operand), so no bf16 run agrees with another to float32's 1e-5: autocast
// also rounds each product's *output* to bf16 (its linear layers return bf16
// tensors) and computes SwiGLU on those bf16 tensors, where FactSweep keeps
// the f32 accumulator and an f32 SwiGLU, so the two runs differ by a few bf16
// roundings per layer. The yardstick is therefore PyTorch's
// own bf16 error — the distance from its autocast run to its float32 run (the
// float32 goldens): FactSweep's bf16 run must be within twice that distance
// of PyTorch's bf16 run (`slack`; the MLP weights' gradients, behind three
// of autocast's extra roundings, come closest, at 1.8×), and measurably away from the float32
// results (else the bf16 path did not run). A loss is one mean over many
// tokens, whose roundings mostly cancel (PyTorch's bf16 and f32 losses agree
// to 6e-6 on the full model, 5e-4 with LoRA), so losses get a fixed bound:
// 2⁻⁹ relative, one bf16 rounding. Losses over 10 AdamW steps must agree to
// 1% (the bf16 runs follow the same trajectory: PyTorch's bf16 and f32 step
// losses differ by up to 0.15%).
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct BFloat16GoldenTests {
    /// How much farther from PyTorch's bf16 run ours may be than PyTorch's f32 run is.
    static let slack: Float = 2

    static func golden(_ name: String) throws -> SafetensorsFile {
        try SafetensorsFile(url: TestPaths.golden(name).appendingPathComponent("golden.safetensors"))
    }

    static func batch(_ file: SafetensorsFile) throws -> TokenBatch {
        let shape = try #require(file.shape(of: "input_ids"))
        return TokenBatch(batchSize: shape[0], seqLen: shape[1], tokens: try file.ints("input_ids").map { Int32($0) },
                          targets: try file.ints("targets").map { Int32($0) })
    }

    /// Checks that `ours` (bf16) is within `slack` times PyTorch's own bf16 error of
    /// PyTorch's bf16 result, and farther than float32 noise from PyTorch's f32 result.
    static func check(_ what: String, ours: [Float], torchBF16: [Float], torchF32: [Float]) -> (Float, Float) {
        precondition(ours.count > 1, "losses are checked by checkLoss")
        let error = LlamaGoldenTests.relativeError(ours, torchBF16)
        let torchError = LlamaGoldenTests.relativeError(torchF32, torchBF16)
        #expect(error <= slack * torchError, "\(what): ours vs PyTorch bf16 \(error), PyTorch f32 vs bf16 \(torchError)")
        #expect(LlamaGoldenTests.relativeError(ours, torchF32) > 1e-4, "\(what): bf16 run equals the f32 golden")
        return (error, torchError)
    }

    /// |ours − PyTorch's bf16 loss| within one bf16 rounding (2⁻⁹) of the loss.
    static func checkLoss(_ what: String, ours: Float, torchBF16: Float) -> Float {
        let error = abs(ours - torchBF16) / torchBF16
        #expect(error <= 0x1p-9, "\(what): loss \(ours) vs PyTorch bf16 \(torchBF16)")
        return error
    }

    /// Checks `ft`'s first loss and gradients in bf16 against `prefix`'s
    /// autocast golden (gradients against PyTorch's own bf16 error: `f32`'s
    /// `grad.*`), then 10 steps' losses; returns what it measured.
    static func trainAndCheck(_ ft: FineTuning, batch b: TokenBatch, prefix: String, bf16: SafetensorsFile, f32: SafetensorsFile,
                              lr: Float) throws -> String {
        let loss = ProductPrecision.run(.bf16) { () -> Float in
            let loss = ft.network.forward(b, ft.activations, context: ft.context)
            ft.network.backward(b, ft.activations, context: ft.context)
            return loss
        }
        let lossError = checkLoss(prefix, ours: loss, torchBF16: try bf16.floats("\(prefix).loss")[0])
        var worst: (Float, Float, String) = (0, 0, "")
        for e in ft.trainable {
            let ours = Array(UnsafeBufferPointer(start: ft.gradients.base + e.offset, count: e.count))
            let (error, torchError) = check("gradient of \(e.name)", ours: ours, torchBF16: try bf16.floats("\(prefix).grad." + e.name),
                                            torchF32: try f32.floats("grad." + e.name))
            if error > worst.0 { worst = (error, torchError, e.name) }
        }
        let losses = try bf16.floats("\(prefix).step_losses")
        let steps = losses.indices.map { _ in ft.step(b, lr: lr).loss }
        for (step, (ours, theirs)) in zip(steps, losses).enumerated() {
            #expect(abs(ours - theirs) <= 0.01 * theirs, "\(prefix) step \(step): loss \(ours) vs PyTorch bf16 \(theirs)")
        }
        return "loss \(lossError), worst gradient \(worst) (ours vs torch bf16, torch f32 vs bf16), step losses \(steps) vs \(losses)"
    }

    @Test func fullFineTuningMatchesAutocast() throws {
        let bf16 = try Self.golden("bf16-autocast"), f32 = try Self.golden("tiny-tied")
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors)
        let b = try Self.batch(f32)
        let ctx = ComputeContext(threads: 2)

        let frozen = model.frozenNetwork(precision: .bf16, context: ctx)
        let acts = LlamaActivations(network: frozen, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
        let logits = ProductPrecision.run(.bf16) { frozen.logits(b, outputRows: Array(0..<(b.batchSize * b.seqLen)), acts, context: ctx) }
        let logitErrors = Self.check("logits", ours: logits, torchBF16: try bf16.floats("full.logits"), torchF32: try f32.floats("logits"))

        let ft = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(weightDecay: 0.1, maxGradNorm: 1),
                                maxBatch: b.batchSize, maxSeq: b.seqLen, seed: 1, precision: .bf16, context: ctx)
        let report = try Self.trainAndCheck(ft, batch: b, prefix: "full", bf16: bf16, f32: f32, lr: 1e-3)
        print("bf16 golden full: logits \(logitErrors) (ours vs torch bf16, torch f32 vs bf16), \(report)")
    }

    @Test func loraMatchesAutocast() throws {
        let bf16 = try Self.golden("bf16-autocast"), f32 = try Self.golden("peft-lora")
        let dir = TestPaths.golden("peft-lora")
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .bf16, context: ctx)
        // The frozen projections are held in bf16 only: half their Float32 bytes.
        let float32Model = try LlamaModel(config: loaded.configuration, source: loaded.tensors)
        let projectionValues = model.config.layerCount * ProjectionKind.allCases.reduce(0) { $0 + ParameterLayout.shape(model.config, $1).reduce(1, *) }
        #expect(float32Model.baseWeightBytes - model.baseWeightBytes == 2 * projectionValues)
        let b = try Self.batch(f32)
        let ft = try FineTuning(base: model, method: try FineTuning.adapterSettings(dir, quantizedBase: false),
                                optimizer: AdamWSettings(weightDecay: 0, maxGradNorm: 1), maxBatch: b.batchSize, maxSeq: b.seqLen,
                                seed: 0, precision: .bf16, context: ctx)
        try ft.loadAdapter(file: dir.appendingPathComponent("adapter_init.safetensors"))
        for projection in ft.network.layers.flatMap(\.projections) {
            guard case .bf16 = projection.weight else { Issue.record("\(projection.kind) base is not bf16"); continue }
        }
        #expect(ft.network.lmHeadBF16 != nil)
        let report = try Self.trainAndCheck(ft, batch: b, prefix: "lora", bf16: bf16, f32: f32, lr: 1e-2)
        print("bf16 golden lora: \(report)")
        // What a worker's model cache weighs: the base and its copies, less the plain bits those let go.
        let matrices = (model.bf16Projections ?? []).flatMap(\.values)
        let releasedBits = matrices.filter { !$0.holdsPlainBits }.reduce(0) { $0 + $1.byteCount }
        #expect(model.packedCopyBytes == 0 || releasedBits > 0 || !MatmulEngine.hasBF16Kernels, "copies made, no plain bits released")
        #expect(model.heldBytes == model.baseWeightBytes + model.packedCopyBytes - releasedBits
                    - (ft.network.lmHeadBF16.map { $0.holdsPlainBits ? 0 : $0.byteCount } ?? 0))
    }
}
