// LlamaConfiguration+GGUF: the hyperparameters of a Llama model read from
// GGUF metadata (`llama.*` keys, as llama.cpp's converter writes them).
import Foundation
import Trial

extension LlamaConfiguration {
    /// Builds and validates the configuration stored in `file`'s metadata.
    /// Refuses any `general.architecture` other than `llama`.
    public init(gguf file: GGUFFile) throws {
        let m = file.metadata
        let architecture = try m.required("general.architecture", m.string)
        guard architecture == "llama" else {
            throw LoadError.badConfiguration(
                file: file.path,
                reason: ModelConfigurationError.unsupported(
                    field: "general.architecture", value: architecture, supported: "llama"
                ).description)
        }
        func key(_ name: String) -> String { "llama." + name }
        let heads = try m.required(key("attention.head_count"), m.int)
        let hidden = try m.required(key("embedding_length"), m.int)
        // Head width: key_length when present, else the RoPE dimension count,
        // else hidden / heads as in Hugging Face.
        // A key present with a value of another type is refused, not taken for absent (`optional`).
        let headDimension = try m.optional(key("attention.key_length"), m.int) ?? m.optional(key("rope.dimension_count"), m.int)
        guard let vocabulary = try m.optional(key("vocab_size"), m.int) ?? m.values["tokenizer.ggml.tokens"]?.arrayValue?.count else {
            throw LoadError.badConfiguration(
                file: file.path, reason: "GGUF metadata has neither llama.vocab_size nor tokenizer.ggml.tokens")
        }
        if let scaling = try m.optional(key("rope.scaling.type"), m.string), scaling != "none" {
            throw LoadError.badConfiguration(
                file: file.path,
                reason: ModelConfigurationError.unsupported(
                    field: "llama.rope.scaling.type", value: scaling, supported: "none").description)
        }
        self.init(
            vocabularySize: vocabulary,
            hiddenSize: hidden,
            intermediateSize: try m.required(key("feed_forward_length"), m.int),
            layerCount: try m.required(key("block_count"), m.int),
            headCount: heads,
            kvHeadCount: try m.optional(key("attention.head_count_kv"), m.int) ?? heads,
            headDimension: headDimension,
            rmsNormEps: try m.optional(key("attention.layer_norm_rms_epsilon"), m.float) ?? 1e-5,
            ropeTheta: try m.optional(key("rope.freq_base"), m.float) ?? 10000,
            ropeScaling: .none,
            tieWordEmbeddings: file.tensor("output.weight") == nil,
            maxPositions: try m.optional(key("context_length"), m.int) ?? 2048,
            bosTokenId: try m.optional("tokenizer.ggml.bos_token_id", m.int),
            eosTokenIds: try m.optional("tokenizer.ggml.eos_token_id", m.int).map { [$0] } ?? [])
        try validate(gguf: file)
        if let factors = file.tensor("rope_freqs.weight") {
            ropeScaling = try llama3Scaling(
                file: file, factors: factors,
                originalMaxPositions: try m.optional(key("rope.scaling.original_context_length"), m.int) ?? 8192)
            try validate(gguf: file)
        }
    }

    /// The GGUF key (or tensor) behind each config.json field `validate()` names.
    static let ggufKeys: [String: String] = [
        "vocab_size": "llama.vocab_size", "hidden_size": "llama.embedding_length",
        "intermediate_size": "llama.feed_forward_length", "num_hidden_layers": "llama.block_count",
        "num_attention_heads": "llama.attention.head_count", "num_key_value_heads": "llama.attention.head_count_kv",
        "head_dim": "llama.attention.key_length", "rms_norm_eps": "llama.attention.layer_norm_rms_epsilon",
        "rope_theta": "llama.rope.freq_base", "bos_token_id": "tokenizer.ggml.bos_token_id",
        "eos_token_id": "tokenizer.ggml.eos_token_id", "rope_scaling.factor": "rope_freqs.weight",
        "rope_scaling.original_max_position_embeddings": "llama.rope.scaling.original_context_length",
    ]

    /// `validate()`, its error naming `file` and the GGUF key at fault.
    private func validate(gguf file: GGUFFile) throws {
        do {
            try validate()
        } catch ModelConfigurationError.invalidValue(let field, let reason) {
            let error = ModelConfigurationError.invalidValue(field: Self.ggufKeys[field] ?? field, reason: reason)
            throw LoadError.badConfiguration(file: file.path, reason: error.description)
        } catch let e as ModelConfigurationError {
            throw LoadError.badConfiguration(file: file.path, reason: e.description)
        }
    }

    /// llama.cpp stores Llama 3's RoPE scaling not as parameters but as a
    /// `rope_freqs` tensor of per-frequency divisors. Its largest entry is the
    /// `factor`; the other parameters are taken as Meta's published ones
    /// (low 1, high 4) and accepted only if they reproduce every stored divisor.
    func llama3Scaling(file: GGUFFile, factors info: GGUFTensorInfo, originalMaxPositions: Int) throws -> RopeScaling {
        let (theta, dim) = (ropeTheta, headDimension)
        // Counted before reading: the tensor may be as large as the file.
        guard info.elementCount == dim / 2 else {
            throw LoadError.badConfiguration(
                file: file.path, reason: "rope_freqs.weight has \(info.elementCount) values, expected \(dim / 2)")
        }
        var stored = [Float](repeating: 0, count: info.elementCount)
        try stored.withUnsafeMutableBufferPointer { try file.read(info, into: $0) }
        guard let factor = stored.max() else {
            throw LoadError.badConfiguration(file: file.path, reason: "rope_freqs.weight has no values")
        }
        let scaling = RopeScaling.llama3(
            factor: factor, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: originalMaxPositions)
        let (low, high, original) = (Double(1), Double(4), Double(originalMaxPositions))
        for (i, value) in stored.enumerated() {
            let frequency = 1 / pow(Double(theta), Double(2 * i) / Double(dim))
            let wavelength = 2 * Double.pi / frequency
            let expected: Double
            if wavelength < original / high {
                expected = 1
            } else if wavelength > original / low {
                expected = Double(factor)
            } else {
                let smooth = (original / wavelength - low) / (high - low)
                expected = 1 / ((1 - smooth) / Double(factor) + smooth)
            }
            guard abs(Double(value) - expected) <= 1e-3 * expected else {
                throw LoadError.badConfiguration(
                    file: file.path,
                    reason: "rope_freqs.weight does not match Llama 3 RoPE scaling (entry \(i) is \(value), expected \(expected)); "
                        + "load the Hugging Face checkpoint instead")
            }
        }
        return scaling
    }
}
