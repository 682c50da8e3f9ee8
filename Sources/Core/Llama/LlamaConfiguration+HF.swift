// The Hugging Face `config.json` of a configuration, for exported models.
import Foundation

extension LlamaConfiguration {
    /// `config.json` as transformers writes it for LlamaForCausalLM (float32 weights).
    public func huggingFaceConfigJSON() throws -> Data {
        var object: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocabularySize,
            "hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": layerCount,
            "num_attention_heads": headCount, "num_key_value_heads": kvHeadCount, "head_dim": headDimension,
            "rms_norm_eps": Double(rmsNormEps), "rope_theta": Double(ropeTheta), "tie_word_embeddings": tieWordEmbeddings,
            "max_position_embeddings": maxPositions, "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
            "pretraining_tp": 1, "torch_dtype": "float32",
        ]
        if let bos = bosTokenId { object["bos_token_id"] = bos }
        if eosTokenIds.count == 1 { object["eos_token_id"] = eosTokenIds[0] } else if !eosTokenIds.isEmpty { object["eos_token_id"] = eosTokenIds }
        if case let .llama3(factor, low, high, original) = ropeScaling {
            object["rope_scaling"] = ["rope_type": "llama3", "factor": Double(factor), "low_freq_factor": Double(low),
                                      "high_freq_factor": Double(high), "original_max_position_embeddings": original]
        }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
