// TokenizerJSON: reading a Hugging Face tokenizer.json. Only the components
// the SmolLM2 and Llama 3 tokenizers use are accepted; anything else is refused
// by name, since a silently different tokenizer would corrupt training data.
import Foundation
import Trial

extension Tokenizer {
    /// Loads a byte-level BPE `tokenizer.json`; bos/eos/pad names come from a
    /// `tokenizer_config.json` beside it when there is one.
    ///
    /// Accepted: model BPE (no dropout, unknown token, prefixes, byte
    /// fallback or ignore_merges); no normalizer; pre-tokenizer ByteLevel
    /// (GPT-2 regex), Sequence[Digits(individual), ByteLevel] (SmolLM2) or
    /// Sequence[Split(Llama 3 regex, Isolated), ByteLevel(no regex)];
    /// decoder ByteLevel; post-processor none, ByteLevel or TemplateProcessing
    /// that at most puts one special token before the text.
    public convenience init(tokenizerJSON url: URL) throws {
        let file = url.lastPathComponent
        let document = try TokenizerDocument.read(url)
        guard !document.vocabulary.isEmpty else { throw LoadError.malformed(file: file, reason: "model.vocab is missing or empty") }
        let reader = TokenizerJSONReader(file: file)
        try reader.checkModel(document.modelSettings)
        try reader.require(document.normalizer?.isNull ?? true, "normalizer", document.normalizer)
        let preTokenizer = try reader.preTokenizer(document.preTokenizer)
        try reader.require(document.decoder?["type"]?.string == "ByteLevel", "decoder", document.decoder)
        let vocabulary = document.vocabulary
        let added = try reader.addedTokens(document.addedTokens, vocabularyCount: vocabulary.count)
        let size = max(vocabulary.count, (added.map { Int($0.id) }.max() ?? -1) + 1)
        var tokens = [String?](repeating: nil, count: size)
        for (spelling, id) in vocabulary {
            guard (0..<size).contains(Int(id)), tokens[Int(id)] == nil else {
                throw LoadError.malformed(file: file, reason: "model.vocab[\(spelling.debugDescription)] = \(id) is out of range or repeated")
            }
            tokens[Int(id)] = spelling
        }
        for token in added { tokens[Int(token.id)] = token.content }
        if let gap = tokens.firstIndex(where: { $0 == nil }) {
            throw LoadError.malformed(file: file, reason: "no token has id \(gap) (model.vocab and added_tokens leave a gap)")
        }
        let prepended = try reader.prependedToken(document.postProcessor)
        let config = try reader.specialTokenNames(besides: url)
        func addedId(_ names: [String?]) -> Int32? {
            names.lazy.compactMap { name in added.first { $0.content == name }?.id }.first
        }
        try self.init(
            tokens: tokens.map { $0 ?? "" }, merges: document.merges, added: added, preTokenizer: preTokenizer,
            bosTokenId: addedId([config.bos, prepended, "<|begin_of_text|>"]),
            eosTokenId: addedId([config.eos, "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"]),
            padTokenId: addedId([config.pad]),
            addsBosToken: addedId([prepended]) != nil, source: file)
    }
}

/// The parts of tokenizer.json that are read: the large vocabulary and merges
/// typed, everything else as `JSONValue` to be checked by `TokenizerJSONReader`.
struct TokenizerDocument {
    var vocabulary: [(String, Int32)] = []
    /// Merges in rank order, from "left right" strings or `[left, right]` pairs.
    var merges: [(String, String)] = []
    /// Every other field of "model" ("type", "dropout", …).
    var modelSettings: [String: JSONValue] = [:]
    var sections: [String: JSONValue] = [:]

    var normalizer: JSONValue? { sections["normalizer"] }
    var preTokenizer: JSONValue? { sections["pre_tokenizer"] }
    var postProcessor: JSONValue? { sections["post_processor"] }
    var decoder: JSONValue? { sections["decoder"] }
    var addedTokens: JSONValue? { sections["added_tokens"] }

    /// Reads and parses `url`; errors name the file.
    static func read(_ url: URL) throws -> TokenizerDocument {
        let file = url.lastPathComponent
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: url))
        } catch {
            throw LoadError.unreadable(file: file, reason: error.localizedDescription)
        }
        do {
            return try JSONScanner.parse(bytes) { try TokenizerDocument(&$0) }
        } catch let error as JSONScanner.SyntaxError {
            throw LoadError.malformed(file: file, reason: error.description)
        } catch let error as MalformedMerge {
            throw LoadError.malformed(file: file, reason: "model.merges[\(error.rank)] \(error.text.debugDescription) is not \"left right\"")
        }
    }

    init(_ scanner: inout JSONScanner) throws {
        try scanner.beginObject()
        while let key = try scanner.nextKey() {
            if key == "model" { try readModel(&scanner) } else { sections[key] = try scanner.value() }
        }
    }

    private mutating func readModel(_ scanner: inout JSONScanner) throws {
        try scanner.beginObject()
        while let key = try scanner.nextKey() {
            switch key {
            case "vocab":
                try scanner.beginObject()
                while let spelling = try scanner.nextKey() { vocabulary.append((spelling, try scanner.int32())) }
            case "merges":
                try scanner.beginArray()
                while try scanner.nextElement() {
                    if scanner.atString() {
                        let text = try scanner.string()
                        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                        guard parts.count == 2 else { throw MalformedMerge(rank: merges.count, text: text) }
                        merges.append((String(parts[0]), String(parts[1])))
                    } else {
                        try scanner.beginArray()
                        var pair: [String] = []
                        while try scanner.nextElement() { pair.append(try scanner.string()) }
                        guard pair.count == 2 else { throw MalformedMerge(rank: merges.count, text: "\(pair)") }
                        merges.append((pair[0], pair[1]))
                    }
                }
            default:
                modelSettings[key] = try scanner.value()
            }
        }
    }
}

/// A merge that is neither "left right" nor `[left, right]`.
private struct MalformedMerge: Error {
    let rank: Int
    let text: String
}

/// Field-by-field checks of a tokenizer.json, each error naming the file and field.
struct TokenizerJSONReader {
    let file: String
    /// Which of FactSweep's tokenizers refuses a field, for the message.
    var kind = "byte-level BPE tokenizer"

    func unsupported(_ field: String, _ value: CustomStringConvertible?) -> LoadError {
        let shown = value.map { String($0.description.prefix(200)) } ?? "(absent)"
        return .badConfiguration(file: file, reason: "\(field) \(shown) is not supported by FactSweep's \(kind)")
    }

    func require(_ condition: Bool, _ field: String, _ value: CustomStringConvertible?) throws {
        if !condition { throw unsupported(field, value) }
    }

    func checkModel(_ settings: [String: JSONValue]) throws {
        try require(settings["type"]?.string == "BPE", "model.type", settings["type"])
        for field in ["dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"] {
            let value = settings[field]
            try require(value == nil || value?.isNull == true || value?.string == "", "model.\(field)", value)
        }
        for field in ["fuse_unk", "byte_fallback", "ignore_merges"] {
            try require((settings[field]?.bool ?? false) == false, "model.\(field)", settings[field])
        }
    }

    /// ByteLevel as a component: no prefix space; `regex` says whether it also splits.
    private func isByteLevel(_ value: JSONValue?, regex: Bool) -> Bool {
        guard let value, value["type"]?.string == "ByteLevel" else { return false }
        return value["add_prefix_space"]?.bool != true && (value["use_regex"]?.bool ?? true) == regex
    }

    func preTokenizer(_ value: JSONValue?) throws -> PreTokenizer {
        if isByteLevel(value, regex: true) { return .gpt2 }
        guard let value, value["type"]?.string == "Sequence", let steps = value["pretokenizers"]?.array, steps.count == 2
        else { throw unsupported("pre_tokenizer", value) }
        let first = steps[0]
        switch first["type"]?.string {
        case "Digits":
            try require(first["individual_digits"]?.bool == true, "pre_tokenizer.pretokenizers[0] (Digits)", first)
            try require(isByteLevel(steps[1], regex: true), "pre_tokenizer.pretokenizers[1]", steps[1])
            return .smollm
        case "Split":
            let pattern = first["pattern"]?["Regex"]?.string
            try require(pattern == PreTokenizer.llama3Pattern, "pre_tokenizer.pretokenizers[0].pattern", first["pattern"])
            try require(first["behavior"]?.string == "Isolated", "pre_tokenizer.pretokenizers[0].behavior", first["behavior"])
            try require(first["invert"]?.bool != true, "pre_tokenizer.pretokenizers[0].invert", first["invert"])
            try require(isByteLevel(steps[1], regex: false), "pre_tokenizer.pretokenizers[1]", steps[1])
            return .llama3
        default:
            throw unsupported("pre_tokenizer.pretokenizers[0]", first)
        }
    }

    /// The added tokens, each id checked before anything is sized from it:
    /// `vocabularyCount` entries of model.vocab and the added tokens can fill
    /// ids without a gap only below their sum, and ids are Int32.
    func addedTokens(_ value: JSONValue?, vocabularyCount: Int) throws -> [AddedToken] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.array else { throw unsupported("added_tokens", value) }
        let idLimit = min(vocabularyCount + list.count, Int(Int32.max) + 1)
        return try list.enumerated().map { index, entry in
            guard let id = entry["id"]?.int, id >= 0, let content = entry["content"]?.string, !content.isEmpty else {
                throw LoadError.malformed(file: file, reason: "added_tokens[\(index)] needs an id and a non-empty content")
            }
            guard id < idLimit else {
                throw LoadError.malformed(
                    file: file,
                    reason: "added_tokens[\(index)] has id \(id), beyond the \(idLimit) ids model.vocab and added_tokens can fill without a gap")
            }
            for flag in ["single_word", "lstrip", "rstrip"] where entry[flag]?.bool == true {
                throw unsupported("added_tokens[\(index)] (\(content)).\(flag)", true)
            }
            return AddedToken(id: Int32(id), content: content, isSpecial: entry["special"]?.bool ?? false)
        }
    }

    /// The special token the post-processor puts before a single sequence
    /// (Llama 3's "<|begin_of_text|>"), or nil when it adds nothing.
    func prependedToken(_ value: JSONValue?) throws -> String? {
        guard let value, !value.isNull else { return nil }
        switch value["type"]?.string {
        case "ByteLevel":
            return nil  // only adjusts offsets
        case "Sequence":
            let found = try (value["processors"]?.array ?? []).compactMap(prependedToken)
            try require(found.count <= 1, "post_processor.processors", value)
            return found.first
        case "TemplateProcessing":
            let single = value["single"]?.array ?? []
            let specials = single.compactMap { $0["SpecialToken"]?["id"]?.string }
            let sequenceLast = single.last?["Sequence"] != nil
            try require(sequenceLast && specials.count == single.count - 1 && specials.count <= 1, "post_processor.single", value["single"])
            return specials.first
        default:
            throw unsupported("post_processor", value)
        }
    }

    /// `bos_token`, `eos_token` and `pad_token` of a tokenizer_config.json next
    /// to `url`, if there is one; one that is there but not JSON is refused by name.
    func specialTokenNames(besides url: URL) throws -> (bos: String?, eos: String?, pad: String?) {
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        guard let data = try? Data(contentsOf: configURL) else { return (nil, nil, nil) }
        let config: JSONValue
        do {
            config = try JSONScanner.parse([UInt8](data)) { try $0.value() }
        } catch let error as JSONScanner.SyntaxError {
            throw LoadError.malformed(file: configURL.lastPathComponent, reason: error.description)
        }
        // Either a plain string or an AddedToken object with "content".
        func name(_ key: String) -> String? { config[key]?.string ?? config[key]?["content"]?.string }
        return (name("bos_token"), name("eos_token"), name("pad_token"))
    }
}
