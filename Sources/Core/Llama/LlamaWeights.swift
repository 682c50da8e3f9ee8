// LlamaWeights: the named tensors of a Llama model laid out in one arena, and
// typed pointers into it. The same layout serves parameters and gradients
// (but for full fine-tuning's gradients with the update in the backward pass,
// whose layers share one span: `LayerSharedGradients`).
import Trial

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

    /// The layout of every tensor, or with `linears: false` of all but the
    /// seven projections per layer (a model that keeps those quantised).
    public init(config c: LlamaConfiguration, linears: Bool = true) {
        var offset = 0
        var entries: [ParameterEntry] = []
        Self.forEachTensor(c, linears: linears) { name, shape in
            let e = ParameterEntry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += (e.count + 15) & ~15
        }
        self.entries = entries
        self.totalCount = offset
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// Each tensor of the layout in order, Hugging Face name and shape,
    /// handed to `body` one at a time, so that a check can stop at the first
    /// tensor a file lacks without listing every layer a configuration promises.
    static func forEachTensor(_ c: LlamaConfiguration, linears: Bool, _ body: (String, [Int]) throws -> Void) rethrows {
        try body("model.embed_tokens.weight", [c.vocabularySize, c.hiddenSize])
        for l in 0..<c.layerCount {
            let p = "model.layers.\(l)."
            try body(p + "input_layernorm.weight", [c.hiddenSize])
            if linears {
                for kind in [ProjectionKind.q, .k, .v, .o] { try body(name(layer: l, kind), shape(c, kind)) }
            }
            try body(p + "post_attention_layernorm.weight", [c.hiddenSize])
            if linears {
                for kind in [ProjectionKind.gate, .up, .down] { try body(name(layer: l, kind), shape(c, kind)) }
            }
        }
        try body("model.norm.weight", [c.hiddenSize])
        if !c.tieWordEmbeddings { try body("lm_head.weight", [c.vocabularySize, c.hiddenSize]) }
    }

    /// Checks that `source` holds every tensor of a model of `c`, projections
    /// included, with its shape: before anything is sized from `c`, so that a
    /// configuration promising more than the file holds (a hundred million
    /// layers) fails at the first tensor missing, as the file's own size bounds
    /// what it holds.
    public static func checkTensors(_ c: LlamaConfiguration, in source: TensorSource) throws {
        try forEachTensor(c, linears: true) { try source.check($0, shape: $1) }
    }

    /// The Hugging Face name of a projection's weight.
    public static func name(layer: Int, _ kind: ProjectionKind) -> String { "model.layers.\(layer).\(kind.modulePath).weight" }

    /// A projection's (out, in) shape.
    public static func shape(_ c: LlamaConfiguration, _ kind: ProjectionKind) -> [Int] {
        let (inDim, outDim) = AdapterLayout.dimensions(c, kind)
        return [outDim, inDim]
    }

    /// Parameters counted as PyTorch counts them (no alignment padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}

/// Pointers to one layer's tensors. Shapes: norms (C); q (H·hd, C); k, v (KV·hd, C);
/// o (C, H·hd); gate, up (F, C); down (C, F). Projections are absent from a
/// layout without linears.
public struct LlamaLayerWeights: Sendable {
    public let attnNorm, mlpNorm: FloatPointer
    public let projections: [ProjectionKind: FloatPointer]
}

/// Pointers to every tensor of a model inside one arena.
public struct LlamaWeights: Sendable {
    public let embed: FloatPointer  // (V, C)
    public let layers: [LlamaLayerWeights]
    public let finalNorm: FloatPointer  // (C)
    public let lmHead: FloatPointer  // (V, C); the embedding itself when tied

    public init(layout: ParameterLayout, config: LlamaConfiguration, base: UnsafeMutablePointer<Float>) {
        self.init(layout: layout, config: config) { FloatPointer(base + $0) }
    }

    /// Pointers to the tensors of `layout`, each where `place` puts its
    /// layout offset (several tensors may share a place: `LayerSharedGradients`).
    init(layout: ParameterLayout, config: LlamaConfiguration, place: (Int) -> FloatPointer) {
        func at(_ name: String) -> FloatPointer {
            guard let e = layout[name] else { preconditionFailure("layout has no \(name)") }
            return place(e.offset)
        }
        embed = at("model.embed_tokens.weight")
        layers = (0..<config.layerCount).map { l in
            let p = "model.layers.\(l)."
            var projections: [ProjectionKind: FloatPointer] = [:]
            for kind in ProjectionKind.allCases {
                if let e = layout[ParameterLayout.name(layer: l, kind)] { projections[kind] = place(e.offset) }
            }
            return LlamaLayerWeights(attnNorm: at(p + "input_layernorm.weight"), mlpNorm: at(p + "post_attention_layernorm.weight"),
                                     projections: projections)
        }
        finalNorm = at("model.norm.weight")
        lmHead = config.tieWordEmbeddings ? embed : at("lm_head.weight")
    }
}
