// LlamaWeights: the named tensors of a Llama model laid out in one arena, and
// typed pointers into it. The same layout serves parameters and gradients.

/// One tensor of the layout: its Hugging Face name, PyTorch shape and offset.
public struct ParameterEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Where each tensor of a model lives in a flat arena (sizes as in llm.c's
/// `fill_in_parameter_sizes`), in Hugging Face names.
public struct ParameterLayout: Sendable {
    public let entries: [ParameterEntry]
    public let totalCount: Int
    private let index: [String: Int]

    public init(config c: LlamaConfiguration) {
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabularySize, c.hiddenSize])]
        for l in 0..<c.layerCount {
            let p = "model.layers.\(l)."
            shapes += [
                (p + "input_layernorm.weight", [c.hiddenSize]),
                (p + "self_attn.q_proj.weight", [c.queryWidth, c.hiddenSize]),
                (p + "self_attn.k_proj.weight", [c.kvWidth, c.hiddenSize]),
                (p + "self_attn.v_proj.weight", [c.kvWidth, c.hiddenSize]),
                (p + "self_attn.o_proj.weight", [c.hiddenSize, c.queryWidth]),
                (p + "post_attention_layernorm.weight", [c.hiddenSize]),
                (p + "mlp.gate_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.up_proj.weight", [c.intermediateSize, c.hiddenSize]),
                (p + "mlp.down_proj.weight", [c.hiddenSize, c.intermediateSize]),
            ]
        }
        shapes.append(("model.norm.weight", [c.hiddenSize]))
        if !c.tieWordEmbeddings { shapes.append(("lm_head.weight", [c.vocabularySize, c.hiddenSize])) }
        var offset = 0
        var entries: [ParameterEntry] = []
        for (name, shape) in shapes {
            let e = ParameterEntry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += (e.count + 15) & ~15
        }
        self.entries = entries
        self.totalCount = offset
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// Parameters counted as PyTorch counts them (no alignment padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}

/// Pointers to one layer's tensors. Shapes: norms (C); q (H·hd, C); k, v (KV·hd, C);
/// o (C, H·hd); gate, up (F, C); down (C, F).
public struct LlamaLayerWeights: Sendable {
    public let attnNorm, q, k, v, o, mlpNorm, gate, up, down: FloatPointer
}

/// Pointers to every tensor of a model inside one arena.
public struct LlamaWeights: Sendable {
    public let embed: FloatPointer  // (V, C)
    public let layers: [LlamaLayerWeights]
    public let finalNorm: FloatPointer  // (C)
    public let lmHead: FloatPointer  // (V, C); the embedding itself when tied

    public init(layout: ParameterLayout, config: LlamaConfiguration, base: UnsafeMutablePointer<Float>) {
        func at(_ name: String) -> FloatPointer {
            guard let e = layout[name] else { preconditionFailure("layout has no \(name)") }
            return FloatPointer(base + e.offset)
        }
        embed = at("model.embed_tokens.weight")
        layers = (0..<config.layerCount).map { l in
            let p = "model.layers.\(l)."
            return LlamaLayerWeights(
                attnNorm: at(p + "input_layernorm.weight"), q: at(p + "self_attn.q_proj.weight"),
                k: at(p + "self_attn.k_proj.weight"), v: at(p + "self_attn.v_proj.weight"),
                o: at(p + "self_attn.o_proj.weight"), mlpNorm: at(p + "post_attention_layernorm.weight"),
                gate: at(p + "mlp.gate_proj.weight"), up: at(p + "mlp.up_proj.weight"),
                down: at(p + "mlp.down_proj.weight"))
        }
        finalNorm = at("model.norm.weight")
        lmHead = config.tieWordEmbeddings ? embed : at("lm_head.weight")
    }
}
