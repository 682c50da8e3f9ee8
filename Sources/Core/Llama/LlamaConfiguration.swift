// LlamaConfiguration: the hyperparameters of a Llama-architecture model, read
// from a Hugging Face `config.json` (Codable, strict) or from GGUF metadata.
import Foundation

/// How rotary position frequencies are derived.
public enum RopeScaling: Sendable, Equatable, Codable {
    /// Plain RoPE: `theta^(-2i/d)`.
    case none
    /// Llama 3's piecewise rescaling of the low frequencies (`rope_type: "llama3"`).
    case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositions: Int)
}

/// The hyperparameters of a Llama model. Property names are Swift's; the
/// `config.json` key is beside each in `CodingKeys`.
public struct LlamaConfiguration: Sendable, Equatable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling
    public var tieWordEmbeddings: Bool
    public var maxPositions: Int
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
        headCount: Int, kvHeadCount: Int, headDimension: Int? = nil, rmsNormEps: Float = 1e-5,
        ropeTheta: Float = 10000, ropeScaling: RopeScaling = .none, tieWordEmbeddings: Bool,
        maxPositions: Int = 2048, bosTokenId: Int? = nil, eosTokenIds: [Int] = []
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        // A non-positive head count is refused by name in `validate()`;
        // dividing by it here would trap before that check could run.
        self.headDimension = headDimension ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositions = maxPositions
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
    }

    /// Width of the query projection output, `headCount * headDimension`.
    public var queryWidth: Int { headCount * headDimension }
    /// Width of each of the key and value projection outputs.
    public var kvWidth: Int { kvHeadCount * headDimension }
}

/// A configuration that FactSweep cannot run, with the field at fault.
public enum ModelConfigurationError: Error, CustomStringConvertible, Equatable {
    case unsupported(field: String, value: String, supported: String)
    case invalidValue(field: String, reason: String)
    case missing(field: String)

    public var description: String {
        switch self {
        case let .unsupported(field, value, supported):
            return "unsupported \(field) \(value) (supported: \(supported))"
        case let .invalidValue(field, reason):
            return "invalid \(field): \(reason)"
        case let .missing(field):
            return "missing required field \(field)"
        }
    }
}

extension LlamaConfiguration: Decodable {
    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads"
        case kvHeadCount = "num_key_value_heads"
        case headDimension = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case maxPositions = "max_position_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case hiddenAct = "hidden_act"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case pretrainingTp = "pretraining_tp"
    }

    struct RopeScalingJSON: Decodable {
        var ropeType: String?
        var type: String?
        var factor: Float?
        var lowFreqFactor: Float?
        var highFreqFactor: Float?
        var originalMaxPositionEmbeddings: Int?
        var ropeTheta: Float?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, factor
            case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case ropeTheta = "rope_theta"
        }
    }

    /// `eos_token_id` is an integer or a list of integers in the wild.
    enum TokenIds: Decodable {
        case one(Int), many([Int])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .many(try c.decode([Int].self)) }
        }
        var list: [Int] { switch self { case let .one(v): [v]; case let .many(v): v } }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try c.refuseUnless(.modelType, is: "llama")
        try c.refuseArchitectures(.architectures, except: "LlamaForCausalLM")
        try c.refuseUnless(.hiddenAct, is: "silu")
        try c.refuseUnless(.attentionBias, is: false)
        try c.refuseUnless(.mlpBias, is: false)
        try c.refuseUnless(.pretrainingTp, is: 1)
        let heads: Int = try c.required(.headCount)
        let hidden: Int = try c.required(.hiddenSize)
        // transformers 5 moved rope settings into `rope_parameters`; accept both.
        let scalingJSON = try c.decodeIfPresent(RopeScalingJSON.self, forKey: .ropeScaling)
            ?? c.decodeIfPresent(RopeScalingJSON.self, forKey: .ropeParameters)
        var theta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? scalingJSON?.ropeTheta ?? 10000
        if theta <= 0 { theta = 10000 }
        var scaling = RopeScaling.none
        if let s = scalingJSON {
            switch s.ropeType ?? s.type ?? "default" {
            case "default":
                scaling = .none
            case "llama3":
                guard let factor = s.factor, let low = s.lowFreqFactor, let high = s.highFreqFactor,
                      let original = s.originalMaxPositionEmbeddings else {
                    throw ModelConfigurationError.missing(
                        field: "rope_scaling (llama3 needs factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)")
                }
                scaling = .llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: original)
            case let other:
                throw ModelConfigurationError.unsupported(field: "rope_scaling.rope_type", value: other, supported: "default, llama3")
            }
        }
        self.init(
            vocabularySize: try c.required(.vocabularySize),
            hiddenSize: hidden,
            intermediateSize: try c.required(.intermediateSize),
            layerCount: try c.required(.layerCount),
            headCount: heads,
            kvHeadCount: try c.decodeIfPresent(Int.self, forKey: .kvHeadCount) ?? heads,
            headDimension: try c.decodeIfPresent(Int.self, forKey: .headDimension),
            rmsNormEps: try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6,
            ropeTheta: theta,
            ropeScaling: scaling,
            tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? true,
            maxPositions: try c.decodeIfPresent(Int.self, forKey: .maxPositions) ?? 2048,
            bosTokenId: try c.decodeIfPresent(Int.self, forKey: .bosTokenId),
            eosTokenIds: try c.decodeIfPresent(TokenIds.self, forKey: .eosTokenId)?.list ?? [])
        try validate()
    }

    /// Reads and validates a Hugging Face `config.json`.
    public static func load(configJSON url: URL) throws -> LlamaConfiguration {
        try ConfigurationJSON.decode(LlamaConfiguration.self, from: url)
    }
}
