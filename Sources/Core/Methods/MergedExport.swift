// MergedExport: a trained model as one plain Hugging Face checkpoint — the base
// weights with the adapter folded in (W + s·B·A for LoRA, W scaled by l for IA³)
// or the fully fine-tuned weights — that transformers loads without PEFT.
import Foundation

extension FineTuning {
    /// The model's tensors with this trial's training applied, in the base layout.
    public func mergedParameters() -> FloatArena {
        let layout = ParameterLayout(config: base.config)
        let merged = FloatArena(capacity: layout.totalCount)
        if method.kind == .full {
            merged.base.update(from: parameters.base, count: layout.totalCount)
            return merged
        }
        // The projections are written below, from their frozen matrices: copying a Float32 base's here
        // too would write each released one back from its packed copies twice.
        let projections = Set(network.layers.enumerated().flatMap { l, layer in layer.projections.map { ParameterLayout.name(layer: l, $0.kind) } })
        for e in layout.entries where !projections.contains(e.name) {
            guard let source = base.layout[e.name] else { continue }
            base.withPlainRows(of: source) { (merged.base + e.offset).update(from: $0, count: e.count) }
        }
        let weights = LlamaWeights(layout: layout, config: base.config, base: merged.base)
        for (l, layer) in network.layers.enumerated() {
            for p in layer.projections {
                guard let dst = weights.layers[l].projections[p.kind] else { continue }
                p.weight.materialize(into: dst)
                switch p.adapter {
                case nil:
                    break
                case let .lora(lora):
                    // W (out, in) += s · B (out, r) · A (r, in)
                    gemm(transA: false, transB: false, m: p.outDim, n: p.inDim, k: lora.rank, alpha: lora.scale,
                         a: lora.b.base, lda: lora.rank, b: lora.a.base, ldb: p.inDim, beta: 1, c: dst.base, ldc: p.inDim)
                case let .ia3(scale):
                    for o in 0..<p.outDim {
                        let row = dst.base + o * p.inDim
                        for i in 0..<p.inDim { row[i] *= scale.position == .output ? scale.vector[o] : scale.vector[i] }
                    }
                }
            }
        }
        return merged
    }

    /// Writes config.json and model.safetensors of the merged model to `directory`.
    public func exportMerged(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let merged = mergedParameters()
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for e in ParameterLayout(config: base.config).entries {
            try writer.add(e.name, shape: e.shape, UnsafeBufferPointer(start: merged.base + e.offset, count: e.count))
        }
        try writer.write(to: directory.appendingPathComponent("model.safetensors"))
        try base.config.huggingFaceConfigJSON().write(to: directory.appendingPathComponent("config.json"), options: .atomic)
    }
}
