// BertConfiguration: the hyperparameters of a BERT encoder (all-MiniLM-L6-v2),
// read strictly from a Hugging Face `config.json`. Anything the encoder in
// BertEncoder.swift does not compute is refused by field name, since a
// silently different encoder would give plausible but wrong similarities.
import Foundation

/// The hyperparameters of a BERT encoder. Property names are Swift's; the
/// `config.json` key is beside each in `CodingKeys`.
public struct BertConfiguration: Sendable, Equatable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var layerNormEps: Float
    /// Rows of the absolute position table: the longest sequence the model reads.
    public var maxPositions: Int
    /// Rows of the token type table; only type 0 is used (single sentences).
    public var typeVocabularySize: Int

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        layerNormEps: Float = 1e-12, maxPositions: Int = 512, typeVocabularySize: Int = 2
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.layerNormEps = layerNormEps
        self.maxPositions = maxPositions
        self.typeVocabularySize = typeVocabularySize
    }

    public var headDimension: Int { hiddenSize / headCount }

    /// Checks the relations the encoder relies on.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelConfigurationError { .invalidValue(field: field, reason: why) }
        for (field, value) in [("vocab_size", vocabularySize), ("hidden_size", hiddenSize),
                               ("intermediate_size", intermediateSize), ("num_hidden_layers", layerCount),
                               ("num_attention_heads", headCount), ("max_position_embeddings", maxPositions),
                               ("type_vocab_size", typeVocabularySize)] where value <= 0 {
            throw fail(field, "must be positive")
        }
        if hiddenSize % headCount != 0 { throw fail("num_attention_heads", "must divide hidden_size (\(hiddenSize))") }
        if !(layerNormEps > 0) { throw fail("layer_norm_eps", "must be positive") }
        try validateSizes()
    }

    /// Every tensor's element count and the arena's must fit in `Int`: the
    /// weights' layout and the encoder multiply these sizes unchecked.
    private func validateSizes() throws {
        let C = hiddenSize
        var tables = 0
        for (field, rows) in [("vocab_size", vocabularySize), ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabularySize)] {
            let table = try CheckedSize.product(rows, C, field: field, "\(field) × hidden_size")
            tables = try CheckedSize.sum(tables, table, field: field, "the embedding tables")
        }
        // Query, key and value are one (3C, C) matrix; the attention output is (C, C).
        let attention = try CheckedSize.product(4, C, C, field: "hidden_size", "4 × hidden_size × hidden_size")
        let mlp = try CheckedSize.product(intermediateSize, C, field: "intermediate_size", "intermediate_size × hidden_size")
        // Biases and norms: 3C + C + 2C + I + C + 2C.
        let vectors = try CheckedSize.product(9, C, field: "hidden_size", "9 × hidden_size")
        let what = "the parameters of a layer"
        let layer = try CheckedSize.sum(attention, mlp, mlp, vectors, intermediateSize, field: "hidden_size", what)
        let layers = try CheckedSize.product(layerCount, layer, field: "num_hidden_layers", "num_hidden_layers × \(what)")
        let total = try CheckedSize.sum(layers, tables, C, C, field: "num_hidden_layers", "the parameter count")
        _ = try CheckedSize.product(total, 4, field: "num_hidden_layers", "the parameters' bytes")
    }
}

extension BertConfiguration: Decodable {
    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads"
        case layerNormEps = "layer_norm_eps"
        case maxPositions = "max_position_embeddings"
        case typeVocabularySize = "type_vocab_size"
        case hiddenAct = "hidden_act"
        case positionEmbeddingType = "position_embedding_type"
        case isDecoder = "is_decoder"
        case addCrossAttention = "add_cross_attention"
        case chunkSizeFeedForward = "chunk_size_feed_forward"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.refuseUnless(.modelType, is: "bert")
        try c.refuseArchitectures(.architectures, except: "BertModel")
        // "gelu" in transformers is the exact erf form; the tanh approximations have other names.
        try c.refuseUnless(.hiddenAct, is: "gelu")
        try c.refuseUnless(.positionEmbeddingType, is: "absolute")
        try c.refuseUnless(.isDecoder, is: false)
        try c.refuseUnless(.addCrossAttention, is: false)
        try c.refuseUnless(.chunkSizeFeedForward, is: 0)
        self.init(
            vocabularySize: try c.required(.vocabularySize),
            hiddenSize: try c.required(.hiddenSize),
            intermediateSize: try c.required(.intermediateSize),
            layerCount: try c.required(.layerCount),
            headCount: try c.required(.headCount),
            layerNormEps: try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12,
            maxPositions: try c.decodeIfPresent(Int.self, forKey: .maxPositions) ?? 512,
            typeVocabularySize: try c.decodeIfPresent(Int.self, forKey: .typeVocabularySize) ?? 2)
        try validate()
    }

    /// Reads and validates a Hugging Face `config.json`.
    public static func load(configJSON url: URL) throws -> BertConfiguration {
        try ConfigurationJSON.decode(BertConfiguration.self, from: url)
    }
}
