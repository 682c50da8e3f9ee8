import Foundation
import Testing
@testable import Core

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
}
