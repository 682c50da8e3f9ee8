// TokenizerGoldenTests: SmolLM2 (GGUF arrays) and Llama 3.2 (tokenizer.json)
// against Hugging Face's ids, decodes and chat renderings.
import Foundation
import Testing
@testable import Core

@Suite struct TokenizerGoldenTests {
    static let models = ["smollm2", "llama3"]

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try (name == "llama3" ? TokenizerFixtures.llama3 : TokenizerFixtures.smolLM).get()
    }

    @Test(arguments: models) func encodesLikeHuggingFace(model: String) throws {
        let tokenizer = try Self.tokenizer(model)
        let golden = try TokenizerFixtures.golden(model)
        #expect(tokenizer.bosTokenId == golden.bosTokenId && tokenizer.eosTokenId == golden.eosTokenId)
        for case_ in golden.encode {
            let ids = tokenizer.encode(case_.text)
            #expect(ids == case_.ids, "\(model) \(case_.text.debugDescription)")
            let literal = tokenizer.encode(case_.text, parseSpecial: false)
            #expect(literal == case_.idsWithoutSpecialParsing, "\(model) literal \(case_.text.debugDescription)")
        }
    }

    @Test(arguments: models) func decodesLikeHuggingFace(model: String) throws {
        let tokenizer = try Self.tokenizer(model)
        let golden = try TokenizerFixtures.golden(model)
        for case_ in golden.encode {
            #expect(tokenizer.decode(case_.ids) == case_.decoded, "\(model) \(case_.text.debugDescription)")
            // SmolLM2 has no tokens for a few control bytes; they are dropped.
            let lossy = model == "smollm2" && case_.text.unicodeScalars.contains { [4, 6, 0x1D].contains($0.value) }
            #expect(case_.decoded == case_.text || lossy, "round trip \(case_.text.debugDescription)")
            #expect(tokenizer.decode(case_.ids, skipSpecialTokens: true) == case_.decodedSkippingSpecial)
        }
        #expect(!golden.decodePrefixes.isEmpty)
        for case_ in golden.decodePrefixes {
            #expect(tokenizer.decode(case_.ids) == case_.text, "\(model) \(case_.ids)")
        }
    }

    @Test(arguments: models) func streamingEqualsWholeDecode(model: String) throws {
        let tokenizer = try Self.tokenizer(model)
        for case_ in try TokenizerFixtures.golden(model).encode {
            for skip in [false, true] {
                var stream = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skip)
                var text = ""
                for id in case_.ids {
                    let piece = stream.append(id)
                    #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "streamed a broken character")
                    text += piece
                }
                text += stream.finish()
                #expect(text == tokenizer.decode(case_.ids, skipSpecialTokens: skip))
            }
        }
    }

    @Test(arguments: models) func chatTemplateMatchesTransformers(model: String) throws {
        let tokenizer = try Self.tokenizer(model)
        let template = try ChatTemplate(for: tokenizer)
        for case_ in try TokenizerFixtures.golden(model).chat {
            let text = template.render(messages: case_.messages, addGenerationPrompt: case_.addGenerationPrompt)
            #expect(text == case_.text, "\(model) \(case_.messages)")
            #expect(tokenizer.encode(text) == case_.ids)
        }
        let end = model == "llama3" ? "<|eot_id|>" : "<|im_end|>"
        #expect(template.endOfTurnTokenId == tokenizer.id(of: end))
        #expect(template.stopTokenIds.first == template.endOfTurnTokenId)
    }

    @Test func llama3AddsBeginOfTextOnRequest() throws {
        let tokenizer = try TokenizerFixtures.llama3.get()
        #expect(tokenizer.addsBosToken)
        #expect(tokenizer.encode("Hello", addSpecialTokens: true) == [128000, 9906])
        #expect(tokenizer.vocabularySize == 128257)
    }
}
