// TinyCheckpoints: small random Llama models written as real Hugging Face
// directories (config.json + model.safetensors + a real tokenizer.json).
import Core
import Foundation

public enum TinyCheckpoints {
    /// A two-layer Llama-3-style model (GQA, Llama 3 RoPE scaling, tied) over the
    /// real Llama 3.2 vocabulary, with the real tokenizer beside it.
    public static func llama3(in dir: URL, seed: UInt64 = 1) throws {
        let tokenizerDir = try TestPaths.model("llama-3.2-tokenizer")
        let config: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": ["rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192],
            "tie_word_embeddings": true, "max_position_embeddings": 512, "hidden_act": "silu",
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted])
            .write(to: dir.appendingPathComponent("config.json"))
        let configuration = try LlamaConfiguration.load(configJSON: dir.appendingPathComponent("config.json"))
        let model = LlamaModel(config: configuration)
        model.randomize(seed: seed, std: 0.05)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for e in model.layout.entries {
            try writer.add(e.name, shape: e.shape, UnsafeBufferPointer(model.tensor(e.name)))
        }
        try writer.write(to: dir.appendingPathComponent("model.safetensors"))
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: tokenizerDir.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
    }
}
