// TokenizerUnitTests: the pieces on their own — pre-tokenizer splits, BPE on a
// toy vocabulary, tokenizer.json acceptance and refusals, chat-template choice,
// streaming across split characters.
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

@Suite struct TokenizerUnitTests {
    func chunks(_ text: String, _ pre: PreTokenizer) -> [String] {
        let classified = ClassifiedText(text)
        var ranges: [Range<Int>] = []
        pre.split(classified, 0..<classified.scalars.count, into: &ranges)
        return ranges.map { String(String.UnicodeScalarView(classified.scalars[$0])) }
    }

    @Test func gpt2Splits() {
        #expect(chunks("I'm  here\t\tnow 42x", .gpt2) == ["I", "'m", " ", " here", "\t", "\t", "now", " 42", "x"])
        #expect(chunks("a   ", .gpt2) == ["a", "   "])
        #expect(chunks("I'LL", .gpt2) == ["I", "'", "LL"])  // GPT-2's contractions are case-sensitive
    }

    @Test func llama3Splits() {
        #expect(chunks("I'LL pay 12345!\r\n\nok", .llama3) == ["I", "'LL", " pay", " ", "123", "45", "!\r\n\n", "ok"])
        #expect(chunks("x \n\n y", .llama3) == ["x", " \n\n", " y"])
        #expect(chunks("\tword", .llama3) == ["\tword"])
    }

    @Test func smolLMIsolatesEveryNumeral() {
        #expect(chunks("a  12½", .smollm) == ["a", "  ", "1", "2", "½"])
    }

    /// A toy tokenizer.json: every byte, three merges, one special token.
    func toyJSON(merges: String = #"["a b", "ab c", "Ġ a"]"#, preTokenizer: String? = nil, extra: String = "")
        -> String {
        var vocab = (0..<256).map { "\"\(String(ByteLevel.scalarForByte[$0]).jsonEscaped)\": \($0)" }
        vocab += [#""ab": 256"#, #""abc": 257"#, #""Ġa": 258"#]
        let pre = preTokenizer ?? #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#
        return """
        {"added_tokens": [{"id": 259, "content": "<|im_end|>", "special": true}], "normalizer": null,
         "pre_tokenizer": \(pre), "post_processor": null, "decoder": {"type": "ByteLevel"}\(extra),
         "model": {"type": "BPE", "vocab": {\(vocab.joined(separator: ","))}, "merges": \(merges)}}
        """
    }

    func load(_ json: String) throws -> Tokenizer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tokenizer.json")
        try Data(json.utf8).write(to: url)
        return try Tokenizer(tokenizerJSON: url)
    }

    @Test func mergesInStringAndArrayFormsAgree() throws {
        let strings = try load(toyJSON())
        let arrays = try load(toyJSON(merges: #"[["a", "b"], ["ab", "c"], ["Ġ", "a"]]"#))
        for tokenizer in [strings, arrays] {
            #expect(tokenizer.encode("abc abd<|im_end|>") == [257, 32, 256, 100, 259])  // "a b" outranks "Ġ a"
            #expect(tokenizer.encode("<|im_end|>", parseSpecial: false).count == 10)
            #expect(tokenizer.decode([257, 259, 258], skipSpecialTokens: true) == "abc a")
        }
    }

    @Test func unsupportedComponentsAreRefusedByName() throws {
        let cases: [(String, String)] = [
            (toyJSON(preTokenizer: #"{"type": "Whitespace"}"#), "pre_tokenizer"),
            (toyJSON(preTokenizer: #"{"type": "ByteLevel", "add_prefix_space": true}"#), "pre_tokenizer"),
            (toyJSON(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"}, {"type": "ByteLevel", "use_regex": false}]}"#),
             "pre_tokenizer.pretokenizers[0].pattern"),
            (toyJSON(extra: #", "normalizer_x": 1"#).replacingOccurrences(of: #""normalizer": null"#, with: #""normalizer": {"type": "NFC"}"#), "normalizer"),
            (toyJSON().replacingOccurrences(of: #""type": "BPE""#, with: #""type": "WordPiece""#), "model.type"),
            (toyJSON().replacingOccurrences(of: #""special": true"#, with: #""special": true, "lstrip": true"#), "lstrip"),
            (toyJSON(merges: #"["a q"]"#), "merge 0"),
        ]
        for (json, field) in cases {
            do {
                _ = try load(json)
                Issue.record("accepted a tokenizer.json with an unsupported \(field)")
            } catch let error as LoadError {
                #expect(error.description.contains("tokenizer.json") && error.description.contains(field), "\(error)")
            }
        }
    }

    @Test func jsonScannerReadsEscapesAndLiterals() throws {
        let json = #"{"a": "x\u00e9\ud83d\ude00\n\"\\/", "b": [1, -2.5e1, true, false, null], "c": {}}"#
        let value = try JSONScanner.parse(Array(json.utf8)) { try $0.value() }
        #expect(value["a"]?.string == "xé😀\n\"\\/")
        #expect(value["b"]?.description == "[1, -25.0, true, false, null]")
        #expect(throws: JSONScanner.SyntaxError.self) { try JSONScanner.parse(Array(#"{"a": tru}"#.utf8)) { try $0.value() } }
    }

    @Test func ggufArraysRefuseUnknownPreTokenizer() {
        #expect {
            _ = try Tokenizer(tokens: ["a"], merges: [], tokenTypes: [1], preTokenizer: "qwen2",
                              bosTokenId: nil, eosTokenId: nil, source: "m.gguf")
        } throws: { error in
            "\(error)".contains("m.gguf") && "\(error)".contains("tokenizer.ggml.pre \"qwen2\"")
        }
    }

    @Test func chatTemplateNeedsKnownMarkers() throws {
        #expect(throws: ChatTemplateError.unknownFormat) { try ChatTemplate(for: try load(toyJSON())) }
        #expect(ChatTemplate.jinjaTrim("\u{1F}\u{3000} x y\n\t") == "x y")
    }

    @Test func addedTokenIdsPastThirtyTwoBitsAreRefused() throws {
        let json = toyJSON().replacingOccurrences(of: #""id": 259"#, with: #""id": 2147483648"#)
        expectLoadError(mentioning: "tokenizer.json", "added_tokens[0]") { _ = try load(json) }
    }

    @Test func addedTokenIdsLeavingAGapAreRefusedBeforeAllocating() throws {
        // 259 vocabulary entries and one added token fill ids 0..<260 at most;
        // 2147483647 would first size a 32 GiB table of spellings.
        for id in [260, 2_147_483_647] {
            let json = toyJSON().replacingOccurrences(of: #""id": 259"#, with: #""id": \#(id)"#)
            expectLoadError(mentioning: "tokenizer.json", "added_tokens[0]", "\(id)") { _ = try load(json) }
        }
    }

    @Test func deepNestingIsRefusedNotOverflowingTheStack() throws {
        let deep = #"{"x": "# + String(repeating: "[", count: 1_000_000)
        expectLoadError(mentioning: "tokenizer.json", "nested") { _ = try load(deep) }
        let nested = String(repeating: "[", count: JSONScanner.maximumDepth) + String(repeating: "]", count: JSONScanner.maximumDepth)
        #expect(throws: Never.self) { _ = try JSONScanner.parse(Array(nested.utf8)) { try $0.value() } }

        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        try Data(toyJSON().utf8).write(to: dir.file("tokenizer.json"))
        try Data((#"{"bos_token": "# + String(repeating: "{\"a\": ", count: 1_000_000)).utf8).write(to: dir.file("tokenizer_config.json"))
        expectLoadError(mentioning: "tokenizer_config.json", "nested") { _ = try Tokenizer(tokenizerJSON: dir.file("tokenizer.json")) }
    }

    @Test func modelWithoutAKnownChatTemplateIsRefusedNamingIt() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        try TinyCheckpoints.llama3(in: dir.url)
        try FileManager.default.removeItem(at: dir.file("tokenizer_config.json"))
        try Data(toyJSON().utf8).write(to: dir.file("tokenizer.json"))
        expectLoadError(mentioning: dir.url.lastPathComponent, "no built-in chat template") { _ = try LanguageModel.load(dir.url) }
    }

    @Test func streamingHoldsBackSplitCharacters() throws {
        let tokenizer = try load(toyJSON())
        // "é" is C3 A9: byte tokens 0xC3 then 0xA9; a lone lead byte at the end is flushed as U+FFFD.
        var stream = StreamingDecoder(tokenizer: tokenizer)
        #expect(stream.append(0xC3) == "")
        #expect(stream.append(0xA9) == "é")
        #expect(stream.append(0xF0) == "")
        #expect(stream.append(0x41) == "\u{FFFD}A")
        #expect(stream.append(0xE2) == "")
        #expect(stream.finish() == "\u{FFFD}")
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xF0, 0x9F, 0x98]) == 1)
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xF0, 0x9F, 0x98, 0x80]) == 5)
    }
}

private extension String {
    var jsonEscaped: String {
        unicodeScalars.map { $0 == "\"" || $0 == "\\" ? "\\\($0)" : String($0) }.joined()
    }
}
