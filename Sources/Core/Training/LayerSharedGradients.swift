// LayerSharedGradients: full fine-tuning's gradients laid with every layer's
// in one layer's span, for the update in the backward pass, which consumes
// a layer's gradients before the next layer down writes its own.

/// Where full fine-tuning's gradients live when AdamW updates each layer in
/// the backward pass: the embedding's and the final tensors' as in the
/// layout, every layer's in the same span. The backward pass hands a layer's
/// gradients to the update as soon as they are complete, and the next layer
/// down then overwrites the span, as the backward overwrites every gradient
/// (`LlamaNetwork.backward`). The embedding's (and an untied head's)
/// gradients keep their own room: SmolLM2's gradients take 127 MB instead
/// of 540, Llama-3.2-1B's 1.3 GB instead of 4.9. At SmolLM2 a layer's span
/// (14 MB) can stay in the last-level cache from its products to its
/// update; at 1B (243 MB) it cannot.
struct LayerSharedGradients {
    /// The layout offset of layer 0's first tensor, and where the layers end.
    let layersStart: Int, layersEnd: Int
    /// One layer's tensors, alignment padding included (the same in every layer).
    let span: Int
    let layerCount: Int
    /// Floats the gradients take: the layout's less every layer's span but one.
    let capacity: Int

    init(layout: ParameterLayout, config c: LlamaConfiguration) {
        guard let first = layout["model.layers.0.input_layernorm.weight"],
              let after = layout["model.norm.weight"] else { preconditionFailure("a layout without layers or final norm") }
        layersStart = first.offset
        layersEnd = after.offset
        layerCount = c.layerCount
        span = (layersEnd - layersStart) / c.layerCount
        capacity = layout.totalCount - (c.layerCount - 1) * span
        precondition(span * c.layerCount == layersEnd - layersStart, "layers of different sizes")
        for l in 1..<c.layerCount {
            precondition(layout["model.layers.\(l).input_layernorm.weight"]?.offset == layersStart + l * span, "layer \(l) not at its span")
        }
    }

    /// Where the gradient of the tensor at layout offset `offset` lives in the shared arena.
    func place(_ offset: Int) -> Int {
        if offset < layersStart { return offset }
        if offset < layersEnd { return layersStart + (offset - layersStart) % span }
        return offset - (layerCount - 1) * span
    }
}
