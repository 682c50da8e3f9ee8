// TokenizerFixtures: the two real tokenizers and their Hugging Face goldens,
// loaded once and shared by the tokenizer suites.
import Foundation
import TestSupport
@testable import Core

enum TokenizerFixtures {
    static let smolLMFile = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
    static let llama3File = "llama-3.2-tokenizer/tokenizer.json"

    /// SmolLM2 from its GGUF metadata arrays.
    static let smolLM = Result { () throws -> Tokenizer in
        let meta = try GGUFTokenizerMetadata(url: try TestPaths.model(smolLMFile))
        func need<T>(_ value: T?, _ key: String) throws -> T {
            guard let value else { throw GGUFTokenizerMetadata.Malformed(description: "missing \(key)") }
            return value
        }
        return try Tokenizer(
            tokens: need(meta.stringArrays["tokenizer.ggml.tokens"], "tokens"),
            merges: need(meta.stringArrays["tokenizer.ggml.merges"], "merges"),
            tokenTypes: need(meta.integerArrays["tokenizer.ggml.token_type"], "token_type"),
            preTokenizer: need(meta.strings["tokenizer.ggml.pre"], "pre"),
            bosTokenId: meta.integers["tokenizer.ggml.bos_token_id"].map(Int32.init),
            eosTokenId: meta.integers["tokenizer.ggml.eos_token_id"].map(Int32.init),
            addBosToken: meta.booleans["tokenizer.ggml.add_bos_token"] ?? false,
            source: smolLMFile)
    }

    static let llama3 = Result { try Tokenizer(tokenizerJSON: try TestPaths.model(llama3File)) }

    /// What scripts/reference/make_tokenizer_golden.py wrote for one model.
    struct Golden: Decodable {
        struct Encoding: Decodable {
            let text: String
            let ids: [Int32]
            let idsWithoutSpecialParsing: [Int32]
            let decoded: String
            let decodedSkippingSpecial: String
        }
        struct Decoding: Decodable {
            let ids: [Int32]
            let text: String
        }
        struct Chat: Decodable {
            let messages: [ChatMessage]
            let addGenerationPrompt: Bool
            let text: String
            let ids: [Int32]
        }
        let bosTokenId: Int32?
        let eosTokenId: Int32?
        let encode: [Encoding]
        let decodePrefixes: [Decoding]
        let chat: [Chat]
    }

    static func golden(_ name: String) throws -> Golden {
        let url = TestPaths.repositoryRoot.appendingPathComponent("Tests/CoreTests/Golden/tokenizer/\(name).json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }
}
