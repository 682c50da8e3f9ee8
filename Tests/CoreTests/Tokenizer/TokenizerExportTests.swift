// TokenizerExportTests: SmolLM2 (from its GGUF) and Llama 3.2 (from its
// tokenizer.json) written as Hugging Face files and loaded back, which must
// encode, decode and template every golden case exactly as the original does.
//
// With FACTSWEEP_TOKENIZER_EXPORT_DIR set, the files are kept in
// $FACTSWEEP_TOKENIZER_EXPORT_DIR/{smollm2,llama3} for
// scripts/reference/check_tokenizer_export.py to load in transformers.
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

@Suite struct TokenizerExportTests {
    static let models = ["smollm2", "llama3"]

    /// One model's tokenizer, what was written for it, and what was read back.
    struct Export: Sendable {
        let original: Tokenizer
        let reloaded: Tokenizer
        let chatTemplate: String
        let modelMaxLength: Int
        /// tokenizer_config.json as written.
        let configData: Data
        /// Holds a temporary directory alive for as long as the export is used.
        let storage: TemporaryDirectory?
    }

    static let smolLM = Result { () throws -> Export in
        let gguf = try GGUFFile(url: try TestPaths.model(TokenizerFixtures.smolLMFile))
        let template = try #require(gguf.metadata.string("tokenizer.chat_template"))
        let contextLength = try #require(gguf.metadata.int("llama.context_length"))
        return try export("smollm2", try Tokenizer(gguf: gguf), chatTemplate: template, modelMaxLength: contextLength)
    }

    static let llama3 = Result { () throws -> Export in
        let templateURL = TestPaths.repositoryRoot.appendingPathComponent("scripts/reference/llama-3.2-instruct-chat-template.jinja")
        let template = try String(contentsOf: templateURL, encoding: .utf8)
        // Llama 3.2's max_position_embeddings.
        return try export("llama3", try TokenizerFixtures.llama3.get(), chatTemplate: template, modelMaxLength: 131_072)
    }

    static func export(_ name: String, _ tokenizer: Tokenizer, chatTemplate: String, modelMaxLength: Int) throws -> Export {
        var storage: TemporaryDirectory?
        let directory: URL
        if let kept = ProcessInfo.processInfo.environment["FACTSWEEP_TOKENIZER_EXPORT_DIR"] {
            directory = URL(fileURLWithPath: kept).appendingPathComponent(name)
        } else {
            let temporary = try TemporaryDirectory()
            storage = temporary
            directory = temporary.url
        }
        try tokenizer.writeHuggingFaceFiles(to: directory, chatTemplate: chatTemplate, modelMaxLength: modelMaxLength)
        return Export(
            original: tokenizer, reloaded: try Tokenizer(tokenizerJSON: directory.appendingPathComponent("tokenizer.json")),
            chatTemplate: chatTemplate, modelMaxLength: modelMaxLength,
            configData: try Data(contentsOf: directory.appendingPathComponent("tokenizer_config.json")), storage: storage)
    }

    static func exported(_ model: String) throws -> Export {
        try (model == "llama3" ? llama3 : smolLM).get()
    }

    @Test(arguments: models) func reloadedTokenizerHasTheSameParts(model: String) throws {
        let export = try Self.exported(model)
        let (original, reloaded) = (export.original, export.reloaded)
        #expect(reloaded.tokens == original.tokens)
        #expect(reloaded.addedTokens == original.addedTokens)
        #expect(reloaded.preTokenizer == original.preTokenizer)
        #expect(reloaded.bosTokenId == original.bosTokenId && reloaded.eosTokenId == original.eosTokenId)
        #expect(reloaded.padTokenId == original.padTokenId && original.padTokenId != nil)
        #expect(reloaded.addsBosToken == original.addsBosToken)
        let (before, after) = (original.rankedMerges, reloaded.rankedMerges)
        #expect(before.count == after.count && !before.isEmpty)
        #expect(zip(before, after).allSatisfy { $0.left == $1.left && $0.right == $1.right })
    }

    @Test(arguments: models) func reloadedTokenizerEncodesTheGoldenStrings(model: String) throws {
        let tokenizer = try Self.exported(model).reloaded
        let golden = try TokenizerFixtures.golden(model)
        #expect(tokenizer.bosTokenId == golden.bosTokenId && tokenizer.eosTokenId == golden.eosTokenId)
        for case_ in golden.encode {
            #expect(tokenizer.encode(case_.text) == case_.ids, "\(model) \(case_.text.debugDescription)")
            #expect(tokenizer.encode(case_.text, parseSpecial: false) == case_.idsWithoutSpecialParsing)
            #expect(tokenizer.decode(case_.ids) == case_.decoded, "\(model) \(case_.text.debugDescription)")
            #expect(tokenizer.decode(case_.ids, skipSpecialTokens: true) == case_.decodedSkippingSpecial)
        }
        for case_ in golden.decodePrefixes {
            #expect(tokenizer.decode(case_.ids) == case_.text, "\(model) \(case_.ids)")
        }
        let withBos = tokenizer.encode("Hello", addSpecialTokens: true)
        #expect(withBos == (model == "llama3" ? [128000, 9906] : tokenizer.encode("Hello")))
    }

    @Test(arguments: models) func chatTemplateRendersAsBefore(model: String) throws {
        let export = try Self.exported(model)
        let template = try ChatTemplate(for: export.reloaded)
        #expect(template == (try ChatTemplate(for: export.original)))
        for case_ in try TokenizerFixtures.golden(model).chat {
            let text = template.render(messages: case_.messages, addGenerationPrompt: case_.addGenerationPrompt)
            #expect(text == case_.text, "\(model) \(case_.messages)")
            #expect(export.reloaded.encode(text) == case_.ids)
        }
    }

    @Test(arguments: models) func configNamesTheSpecialTokensAndTemplate(model: String) throws {
        let export = try Self.exported(model)
        let config = try #require(try JSONSerialization.jsonObject(with: export.configData) as? [String: Any])
        let expected: (bos: String, eos: String, pad: String, addsBos: Bool) =
            model == "llama3"
            ? ("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", true)
            : ("<|im_start|>", "<|im_end|>", "<|im_end|>", false)
        #expect(config["bos_token"] as? String == expected.bos)
        #expect(config["eos_token"] as? String == expected.eos)
        #expect(config["pad_token"] as? String == expected.pad)
        #expect(config["add_bos_token"] as? Bool == expected.addsBos)
        #expect(config["clean_up_tokenization_spaces"] as? Bool == false)
        #expect(config["model_max_length"] as? Int == export.modelMaxLength)
        #expect(config["tokenizer_class"] as? String == "PreTrainedTokenizerFast")
        #expect(config["chat_template"] as? String == export.chatTemplate)
    }

    @Test func repeatedSpellingIsRefusedByName() throws {
        let tokenizer = try Tokenizer(
            tokens: ["a", "b", "a"], merges: [], tokenTypes: [1, 1, 1], preTokenizer: "gpt2",
            bosTokenId: nil, eosTokenId: nil)
        let directory = try TemporaryDirectory()
        let error = #expect(throws: LoadError.self) { try tokenizer.writeHuggingFaceFiles(to: directory.url, chatTemplate: nil) }
        #expect(error?.description.contains("tokens 0 and 2 are both spelled \"a\"") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: directory.file("tokenizer.json").path))
    }

    @Test func jsonStringsEscapeOnlyWhatJSONRequires() throws {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{7} unit \u{1F} é 🤗 </>"
        let json = JSONText.array([.string(text)]).text
        #expect(json.contains("é 🤗 </>") && json.contains("\\u0007") && json.contains("\\u001f"))
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
        #expect(parsed == [text])
    }
}
