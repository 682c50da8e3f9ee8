import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

@Suite struct ConfigurationTests {
    @Test func llama32ConfigParses() throws {
        let json = """
        {"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128256,"hidden_size":2048,
         "intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,
         "head_dim":64,"rms_norm_eps":1e-05,"rope_theta":500000.0,"tie_word_embeddings":true,"hidden_act":"silu",
         "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
                          "original_max_position_embeddings":8192,"rope_type":"llama3"},
         "eos_token_id":128001,"bos_token_id":128000}
        """
        let c = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(json.utf8))
        #expect(c.kvHeadCount == 8 && c.headDimension == 64 && c.eosTokenIds == [128001])
        #expect(c.ropeScaling == .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192))
    }

    @Test func unsupportedValuesAreNamed() throws {
        let base = #""vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2"#
        let cases: [(String, String)] = [
            (#"{"model_type":"gpt2","# + base + "}", "model_type"),
            ("{" + base + #","hidden_act":"gelu"}"#, "hidden_act"),
            ("{" + base + #","rope_scaling":{"rope_type":"yarn","factor":2}}"#, "rope_scaling.rope_type"),
            ("{" + base + #","num_key_value_heads":3}"#, "num_key_value_heads"),
            (#"{"hidden_size":8}"#, "num_attention_heads"),
        ]
        for (json, field) in cases {
            do {
                _ = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(json.utf8))
                Issue.record("accepted \(json)")
            } catch let e as ModelConfigurationError {
                #expect(e.description.contains(field), "\(e) should name \(field)")
            }
        }
    }

    /// A small valid config.json with `changes` (raw JSON values by key).
    static func json(_ changes: [String: String] = [:]) -> String {
        let fields = ["vocab_size": "10", "hidden_size": "8", "intermediate_size": "16", "num_hidden_layers": "1",
                      "num_attention_heads": "2"].merging(changes) { $1 }
        return "{" + fields.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
    }

    /// The message decoding `json` gives, or "(accepted)".
    static func refusal(_ json: String) -> String {
        do {
            _ = try JSONDecoder().decode(LlamaConfiguration.self, from: Data(json.utf8))
            return "(accepted)"
        } catch {
            return "\(error)"
        }
    }

    @Test func nonPositiveHeadCountIsRefusedByNameNotDividedBy() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let url = dir.file("config.json")
        try Data(Self.json(["num_attention_heads": "0"]).utf8).write(to: url)
        expectLoadError(mentioning: "config.json", "invalid num_attention_heads: must be positive") {
            _ = try LlamaConfiguration.load(configJSON: url)
        }
        // Int.min / -1 traps as surely as a division by zero.
        try Data(Self.json(["num_attention_heads": "-1", "hidden_size": "-9223372036854775808"]).utf8).write(to: url)
        expectLoadError(mentioning: "config.json", "must be positive") { _ = try LlamaConfiguration.load(configJSON: url) }

        var gguf = GGUFBuilder()
        gguf.addLlama(["llama.attention.head_count": 0])
        try gguf.expectConfigurationRefused(as: "zero-heads.gguf", "invalid llama.attention.head_count: must be positive")
    }

    @Test func ggufFieldsAreNamedByTheirKeys() throws {
        var gguf = GGUFBuilder()
        gguf.addLlama()
        gguf.add("tokenizer.ggml.eos_token_id", uint64: 1 << 32)
        try gguf.expectConfigurationRefused(as: "far-eos.gguf", "invalid tokenizer.ggml.eos_token_id", "vocabulary of 8")
    }

    /// An optional llama.* key present with a value of another type, or an integer beyond Int, is refused
    /// by name rather than read as absent and replaced by its default.
    @Test func ggufOptionalKeysOfAnotherTypeOrPastIntAreRefused() throws {
        var string = GGUFBuilder()
        string.addLlama()
        string.add("llama.attention.head_count_kv", string: "1")
        try string.expectConfigurationRefused(as: "kv-as-string.gguf", "llama.attention.head_count_kv has type string")
        var wide = GGUFBuilder()
        wide.addLlama()
        wide.add("llama.context_length", uint64: UInt64.max)
        try wide.expectConfigurationRefused(as: "wide-context.gguf", "llama.context_length has type uint64 (18446744073709551615, beyond")
        var theta = GGUFBuilder()
        theta.addLlama()
        theta.add("llama.rope.freq_base", string: "10000")
        try theta.expectConfigurationRefused(as: "theta-as-string.gguf", "llama.rope.freq_base has type string")
        var required = GGUFBuilder()
        required.addLlama(["llama.block_count": UInt64.max])
        try required.expectConfigurationRefused(as: "wide-blocks.gguf", "llama.block_count has type uint64 (18446744073709551615, beyond")
    }

    @Test func overflowingSizesAreRefusedByName() {
        let cases: [([String: String], String)] = [
            (["head_dim": "4611686018427387904"], "head_dim"),
            (["head_dim": "2305843009213693952"], "hidden_size"),
            (["intermediate_size": "4611686018427387904"], "intermediate_size"),
            (["vocab_size": "2147483647", "hidden_size": "1099511627776"], "vocab_size"),
            (["num_hidden_layers": "4611686018427387904"], "num_hidden_layers"),
            (["num_hidden_layers": "9007199254740992"], "num_hidden_layers"),  // fits, but not in bytes
        ]
        for (changes, field) in cases {
            let message = Self.refusal(Self.json(changes))
            #expect(message.contains("invalid \(field)") && message.contains("overflows"), "\(changes): \(message)")
        }
        #expect(Self.refusal(Self.json(["vocab_size": "2147483648"])).contains("invalid vocab_size"))
    }

    @Test func llama3RopeScalingThatWouldGiveNaNIsRefusedByName() {
        func scaling(factor: Double = 8, low: Double = 1, high: Double = 4, original: Int = 8192) -> String {
            Self.json(["rope_scaling": #"{"rope_type":"llama3","factor":\#(factor),"low_freq_factor":\#(low),"#
                + #""high_freq_factor":\#(high),"original_max_position_embeddings":\#(original)}"#])
        }
        #expect(Self.refusal(scaling()) == "(accepted)")
        let cases: [(String, String)] = [
            (scaling(factor: 0), "rope_scaling.factor"), (scaling(factor: -2), "rope_scaling.factor"),
            (scaling(low: 0), "rope_scaling.low_freq_factor"), (scaling(high: 1), "rope_scaling.high_freq_factor"),
            (scaling(low: 4, high: 1), "rope_scaling.high_freq_factor"),
            (scaling(original: 0), "rope_scaling.original_max_position_embeddings"),
        ]
        for (json, field) in cases {
            let message = Self.refusal(json)
            #expect(message.contains("invalid \(field)"), "\(json): \(message)")
        }
    }

    @Test func tokenIdsOutsideTheVocabularyAreRefused() {
        let cases: [([String: String], String)] = [
            (["eos_token_id": "4294967296"], "eos_token_id"), (["eos_token_id": "[1,10]"], "eos_token_id"),
            (["eos_token_id": "-1"], "eos_token_id"), (["bos_token_id": "10"], "bos_token_id"),
        ]
        for (changes, field) in cases {
            let message = Self.refusal(Self.json(changes))
            #expect(message.contains("invalid \(field)") && message.contains("vocabulary of 10"), "\(changes): \(message)")
        }
    }
}
