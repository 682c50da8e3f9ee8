// Golden tests against Hugging Face PEFT (and bitsandbytes for QLoRA), from
// scripts/reference/make_peft_golden.py: with the same adapter initialisation
// loaded on both sides, the loss, every adapter gradient, 10 AdamW steps and
// the final adapter tensors agree.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct PEFTGoldenTests {
    static let variants = ["peft-lora", "peft-lora-all", "peft-ia3", "peft-qlora"]

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        var diff: Float = 0, scale: Float = 1e-3
        for i in a.indices { diff = max(diff, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return diff / scale
    }

    @Test(arguments: variants)
    func adapterTrainingMatchesPEFT(variant: String) throws {
        let dir = TestPaths.golden(variant)
        let golden = try SafetensorsFile(url: dir.appendingPathComponent("golden.safetensors"))
        func floats(_ name: String) throws -> [Float] { try golden.floats(name) }
        func setting(_ key: String) throws -> Float { try #require(golden.metadata[key].flatMap { Float($0) }, "metadata \(key)") }
        let baseName = try #require(golden.metadata["base"])
        let quantized = variant == "peft-qlora"
        let loaded = try ModelLocation.open(TestPaths.golden(baseName))
        let ctx = ComputeContext(threads: 2)
        let base = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: quantized ? .nf4 : .float32, context: ctx)
        let method = try FineTuning.adapterSettings(dir, quantizedBase: quantized)
        let optimizer = AdamWSettings(beta1: try setting("beta1"), beta2: try setting("beta2"), eps: try setting("eps"),
                                      weightDecay: try setting("weight_decay"), maxGradNorm: try setting("clip"))
        let shape = try #require(golden.shape(of: "input_ids"))
        let batch = TokenBatch(batchSize: shape[0], seqLen: shape[1], tokens: try golden.ints("input_ids").map { Int32($0) },
                               targets: try golden.ints("targets").map { Int32($0) })
        let ft = try FineTuning(base: base, method: method, optimizer: optimizer, maxBatch: batch.batchSize, maxSeq: batch.seqLen, seed: 0, context: ctx)
        try ft.loadAdapter(file: dir.appendingPathComponent("adapter_init.safetensors"))

        let loss = ft.network.forward(batch, ft.activations, context: ctx)
        let expectedLoss = try floats("loss")[0]
        #expect(abs(loss - expectedLoss) < 2e-5, "\(variant): loss \(loss) vs \(expectedLoss)")
        ft.network.backward(batch, ft.activations, context: ctx)
        var worstGradient: Float = 0
        for e in ft.trainable {
            let ours = Array(UnsafeBufferPointer(start: ft.gradients.base + e.offset, count: e.count))
            let error = Self.relativeError(ours, try floats("grad." + e.name))
            worstGradient = max(worstGradient, error)
            #expect(error < 1e-4, "\(variant): gradient of \(e.name) relative error \(error)")
        }

        let losses = try floats("step_losses"), norms = try floats("grad_norm"), lr = try setting("lr")
        for step in losses.indices {
            let r = ft.step(batch, lr: lr)
            #expect(abs(r.loss - losses[step]) < 1e-4 * max(1, losses[step]), "\(variant) step \(step): \(r.loss) vs \(losses[step])")
            let norm = try #require(r.gradientNorm, "clipping needs the norm")
            #expect(abs(norm - norms[step]) < 1e-4 * max(1, norms[step]), "\(variant) step \(step): norm \(norm) vs \(norms[step])")
        }
        var worstFinal: Float = 0
        for e in ft.trainable {
            let error = Self.relativeError(Array(try #require(ft.tensor(e.name))), try floats("final." + e.name))
            worstFinal = max(worstFinal, error)
            #expect(error < 2e-4, "\(variant): \(e.name) after 10 steps, relative error \(error)")
        }
        print("PEFT golden \(variant): \(ft.trainableParameterCount) parameters, loss |Δ| \(abs(loss - expectedLoss)), "
              + "worst gradient \(worstGradient), worst final tensor \(worstFinal)")
    }

    @Test func qloraBaseEqualsBitsandbytesQuantisation() throws {
        let dir = TestPaths.golden("peft-qlora")
        let golden = try SafetensorsFile(url: dir.appendingPathComponent("golden.safetensors"))
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let base = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .nf4)
        let layers = try #require(base.quantized)
        var checked = 0
        for (l, layer) in layers.enumerated() {
            for (kind, tensor) in layer {
                let module = "model.layers.\(l).\(kind.modulePath)"
                let packed = try golden.ints("nf4.\(module).weight").map { UInt8($0) }
                let absmax = try golden.ints("nf4.\(module).weight.absmax").map { UInt8($0) }
                #expect(tensor.packed == packed, "\(module) packed NF4 codes differ from bitsandbytes'")
                #expect(tensor.quantizedAbsmax == absmax, "\(module) absmax codes differ from bitsandbytes'")
                checked += 1
            }
        }
        #expect(checked == 14)
    }
}
