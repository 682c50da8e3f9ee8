// BertWeights: the frozen parameters of a BERT encoder in one arena, read from
// a Hugging Face `model.safetensors` (`embeddings.*`, `encoder.layer.N.*`, with
// or without a `bert.` prefix). The pooler is not read: sentence-transformers
// pools the token states itself.
import Trial

/// One encoder layer's parameters; matrices are PyTorch's [out, in].
public struct BertLayerWeights: Sendable {
    /// (3C, C): query, key and value weights stacked, so that one sgemm makes all three.
    public let qkvWeight: FloatPointer
    /// (3C)
    public let qkvBias: FloatPointer
    /// (C, C), (C)
    public let attentionOutputWeight: FloatPointer, attentionOutputBias: FloatPointer
    /// (C), (C): LayerNorm after the attention residual.
    public let attentionNormWeight: FloatPointer, attentionNormBias: FloatPointer
    /// (I, C), (I)
    public let intermediateWeight: FloatPointer, intermediateBias: FloatPointer
    /// (C, I), (C)
    public let outputWeight: FloatPointer, outputBias: FloatPointer
    /// (C), (C): LayerNorm after the feed-forward residual.
    public let outputNormWeight: FloatPointer, outputNormBias: FloatPointer
}

/// All parameters of the encoder, in one arena.
public final class BertWeights: @unchecked Sendable {
    public let config: BertConfiguration
    /// (V, C)
    public let wordEmbeddings: FloatPointer
    /// (P, C)
    public let positionEmbeddings: FloatPointer
    /// (types, C); row 0 is added to every token.
    public let tokenTypeEmbeddings: FloatPointer
    /// (C), (C)
    public let embeddingNormWeight: FloatPointer, embeddingNormBias: FloatPointer
    public let layers: [BertLayerWeights]
    private let arena: FloatArena

    /// Where each checkpoint tensor goes: its name without prefix, shape and destination.
    private let destinations: [(name: String, shape: [Int], pointer: FloatPointer)]

    /// The checkpoint tensors the encoder reads, without prefix, in arena order.
    static func checkpointTensors(_ config: BertConfiguration) -> [(name: String, shape: [Int])] {
        embeddingTensors(config) + (0..<config.layerCount).flatMap { layerTensors(config, layer: $0) }
    }

    /// The embedding tables and their norm, without prefix.
    static func embeddingTensors(_ config: BertConfiguration) -> [(name: String, shape: [Int])] {
        let C = config.hiddenSize
        return [
            ("embeddings.word_embeddings.weight", [config.vocabularySize, C]),
            ("embeddings.position_embeddings.weight", [config.maxPositions, C]),
            ("embeddings.token_type_embeddings.weight", [config.typeVocabularySize, C]),
            ("embeddings.LayerNorm.weight", [C]), ("embeddings.LayerNorm.bias", [C]),
        ]
    }

    /// The tensors of encoder layer `l`, without prefix.
    static func layerTensors(_ config: BertConfiguration, layer l: Int) -> [(name: String, shape: [Int])] {
        let C = config.hiddenSize, I = config.intermediateSize
        let p = "encoder.layer.\(l)."
        return [
            (p + "attention.self.query.weight", [C, C]), (p + "attention.self.key.weight", [C, C]),
            (p + "attention.self.value.weight", [C, C]),
            (p + "attention.self.query.bias", [C]), (p + "attention.self.key.bias", [C]),
            (p + "attention.self.value.bias", [C]),
            (p + "attention.output.dense.weight", [C, C]), (p + "attention.output.dense.bias", [C]),
            (p + "attention.output.LayerNorm.weight", [C]), (p + "attention.output.LayerNorm.bias", [C]),
            (p + "intermediate.dense.weight", [I, C]), (p + "intermediate.dense.bias", [I]),
            (p + "output.dense.weight", [C, I]), (p + "output.dense.bias", [C]),
            (p + "output.LayerNorm.weight", [C]), (p + "output.LayerNorm.bias", [C]),
        ]
    }

    /// Zeroed weights laid out for `config`; `load(from:)` fills them.
    public init(config: BertConfiguration) {
        let plan = Self.checkpointTensors(config)
        // Packed without alignment gaps so that query, key and value rows are
        // contiguous and form the (3C, C) matrix the fused projection reads.
        let arena = FloatArena(capacity: plan.reduce(0) { $0 + $1.shape.reduce(1, *) })
        var offset = 0
        var destinations: [(name: String, shape: [Int], pointer: FloatPointer)] = []
        for (name, shape) in plan {
            destinations.append((name, shape, FloatPointer(arena.base + offset)))
            offset += shape.reduce(1, *)
        }
        let at = Dictionary(uniqueKeysWithValues: destinations.map { ($0.name, $0.pointer) })
        func p(_ name: String) -> FloatPointer { at[name] ?? FloatPointer(arena.base) }
        self.config = config
        self.arena = arena
        self.destinations = destinations
        wordEmbeddings = p("embeddings.word_embeddings.weight")
        positionEmbeddings = p("embeddings.position_embeddings.weight")
        tokenTypeEmbeddings = p("embeddings.token_type_embeddings.weight")
        embeddingNormWeight = p("embeddings.LayerNorm.weight")
        embeddingNormBias = p("embeddings.LayerNorm.bias")
        layers = (0..<config.layerCount).map { l in
            let q = "encoder.layer.\(l)."
            return BertLayerWeights(
                qkvWeight: p(q + "attention.self.query.weight"), qkvBias: p(q + "attention.self.query.bias"),
                attentionOutputWeight: p(q + "attention.output.dense.weight"),
                attentionOutputBias: p(q + "attention.output.dense.bias"),
                attentionNormWeight: p(q + "attention.output.LayerNorm.weight"),
                attentionNormBias: p(q + "attention.output.LayerNorm.bias"),
                intermediateWeight: p(q + "intermediate.dense.weight"), intermediateBias: p(q + "intermediate.dense.bias"),
                outputWeight: p(q + "output.dense.weight"), outputBias: p(q + "output.dense.bias"),
                outputNormWeight: p(q + "output.LayerNorm.weight"), outputNormBias: p(q + "output.LayerNorm.bias"))
        }
    }

    /// The weights of `config` read from `source`, every tensor's name and
    /// shape checked before the arena is sized from `config`.
    public static func load(_ config: BertConfiguration, from source: TensorSource) throws -> BertWeights {
        try checkTensors(config, in: source)
        let weights = BertWeights(config: config)
        try weights.read(from: source)
        return weights
    }

    /// Checks that `source` holds every tensor of `config` with its shape,
    /// layer by layer: a configuration promising more layers than the file
    /// holds (whose size bounds them) fails at the first one missing, before
    /// a plan or an arena is made for all it promises.
    static func checkTensors(_ config: BertConfiguration, in source: TensorSource) throws {
        let prefix = Self.prefix(of: source)
        func check(_ tensor: (name: String, shape: [Int])) throws { try source.check(prefix + tensor.name, shape: tensor.shape) }
        try embeddingTensors(config).forEach(check)
        for l in 0..<config.layerCount { try layerTensors(config, layer: l).forEach(check) }
    }

    /// "bert." for BertForMaskedLM-style checkpoints, else "".
    private static func prefix(of source: TensorSource) -> String {
        source.shape(of: "bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
    }

    /// Fills every parameter from `source`, whose names may carry a `bert.` prefix
    /// (BertForMaskedLM-style checkpoints); shapes must match exactly.
    public func load(from source: TensorSource) throws {
        try Self.checkTensors(config, in: source)
        try read(from: source)
    }

    /// Reads every parameter from `source`, its tensors already checked.
    private func read(from source: TensorSource) throws {
        let prefix = Self.prefix(of: source)
        for d in destinations {
            try source.read(prefix + d.name, into: UnsafeMutableBufferPointer(start: d.pointer.base, count: d.shape.reduce(1, *)))
        }
    }

    public var parameterCount: Int { arena.capacity }
}
