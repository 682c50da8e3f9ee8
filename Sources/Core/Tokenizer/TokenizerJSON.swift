// TokenizerJSON: reading a Hugging Face tokenizer.json. Only the components
// the SmolLM2 and Llama 3 tokenizers use are accepted; anything else is refused
// by name, since a silently different tokenizer would corrupt training data.
import Foundation

extension Tokenizer {
    /// Loads a byte-level BPE `tokenizer.json`.
    ///
    /// Accepted: model BPE (no dropout, unknown token, prefixes or byte
    /// fallback); no normalizer; pre-tokenizer ByteLevel (GPT-2 regex),
    /// Sequence[Digits(individual), ByteLevel] (SmolLM2) or
    /// Sequence[Split(Llama 3 regex, Isolated), ByteLevel(no regex)];
    /// decoder ByteLevel; post-processor none, ByteLevel or TemplateProcessing
    /// that at most puts one special token before the text.
    public convenience init(tokenizerJSON url: URL) throws {
        let file = url.lastPathComponent
        let root: [String: Any]
        do {
            let data = try Data(contentsOf: url)
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw LoadError.malformed(file: file, reason: "top level is not a JSON object")
            }
            root = object
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError.unreadable(file: file, reason: error.localizedDescription)
        }
        let reader = TokenizerJSONReader(file: file)
        guard let model = root["model"] as? [String: Any] else { throw reader.missing("model") }
        try reader.checkModel(model)
        try reader.require(root["normalizer"] == nil || root["normalizer"] is NSNull, "normalizer", root["normalizer"])
        let preTokenizer = try reader.preTokenizer(root["pre_tokenizer"])
        try reader.checkDecoder(root["decoder"])

        guard let vocabulary = model["vocab"] as? [String: Any] else { throw reader.missing("model.vocab") }
        let added = try reader.addedTokens(root["added_tokens"])
        let size = max(vocabulary.count, (added.map { Int($0.id) }.max() ?? -1) + 1)
        var tokens = [String?](repeating: nil, count: size)
        for (spelling, value) in vocabulary {
            guard let id = (value as? NSNumber)?.intValue, (0..<size).contains(id) else {
                throw LoadError.malformed(file: file, reason: "model.vocab[\"\(spelling)\"] is not an id below \(size)")
            }
            tokens[id] = spelling
        }
        for token in added { tokens[Int(token.id)] = token.content }
        if let gap = tokens.firstIndex(where: { $0 == nil }) {
            throw LoadError.malformed(file: file, reason: "no token has id \(gap) (model.vocab and added_tokens leave a gap)")
        }
        let merges = try reader.merges(model["merges"])
        let prepended = try reader.prependedToken(root["post_processor"])
        // bos/eos live in tokenizer_config.json when it sits beside; otherwise
        // the usual names are tried, in order.
        let config = reader.specialTokenNames(besides: url)
        func addedId(_ names: [String?]) -> Int32? {
            names.lazy.compactMap { name in added.first { $0.content == name }?.id }.first
        }
        let prependedId = addedId([prepended])
        try self.init(
            tokens: tokens.map { $0 ?? "" }, merges: merges, added: added, preTokenizer: preTokenizer,
            bosTokenId: addedId([config.bos, prepended, "<|begin_of_text|>"]),
            eosTokenId: addedId([config.eos, "<|end_of_text|>", "<|im_end|>", "<|endoftext|>"]),
            addsBosToken: prependedId != nil, source: file)
    }
}

/// Field-by-field checks of a tokenizer.json, each error naming the file and field.
private struct TokenizerJSONReader {
    let file: String

    func missing(_ field: String) -> LoadError {
        .malformed(file: file, reason: "\(field) is missing or has the wrong type")
    }

    func unsupported(_ field: String, _ value: Any?) -> LoadError {
        let shown = value.map { String(describing: $0).prefix(200) } ?? "nil"
        return .badConfiguration(file: file, reason: "\(field) \(shown) is not supported by FactSweep's byte-level BPE tokenizer")
    }

    func require(_ condition: Bool, _ field: String, _ value: Any?) throws {
        if !condition { throw unsupported(field, value) }
    }

    private func isNullOrEmpty(_ value: Any?) -> Bool {
        value == nil || value is NSNull || (value as? String) == ""
    }

    func checkModel(_ model: [String: Any]) throws {
        try require(model["type"] as? String == "BPE", "model.type", model["type"])
        for field in ["dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"] {
            try require(isNullOrEmpty(model[field]), "model.\(field)", model[field])
        }
        for field in ["fuse_unk", "byte_fallback", "ignore_merges"] {
            try require(model[field] == nil || (model[field] as? Bool) == false, "model.\(field)", model[field])
        }
    }

    /// ByteLevel as a component: no prefix space; `regex` says whether it also splits.
    private func isByteLevel(_ value: Any?, regex: Bool) -> Bool {
        guard let object = value as? [String: Any], object["type"] as? String == "ByteLevel" else { return false }
        return (object["add_prefix_space"] as? Bool) != true && ((object["use_regex"] as? Bool) ?? true) == regex
    }

    func preTokenizer(_ value: Any?) throws -> PreTokenizer {
        if isByteLevel(value, regex: true) { return .gpt2 }
        guard let object = value as? [String: Any], object["type"] as? String == "Sequence",
              let steps = object["pretokenizers"] as? [[String: Any]], steps.count == 2
        else { throw unsupported("pre_tokenizer", value) }
        let first = steps[0]
        switch first["type"] as? String {
        case "Digits":
            try require(first["individual_digits"] as? Bool == true, "pre_tokenizer.pretokenizers[0] (Digits)", first)
            try require(isByteLevel(steps[1], regex: true), "pre_tokenizer.pretokenizers[1]", steps[1])
            return .smollm
        case "Split":
            let pattern = (first["pattern"] as? [String: Any])?["Regex"] as? String
            try require(pattern == Self.llama3Pattern, "pre_tokenizer.pretokenizers[0].pattern", first["pattern"])
            try require(first["behavior"] as? String == "Isolated", "pre_tokenizer.pretokenizers[0].behavior", first["behavior"])
            try require((first["invert"] as? Bool) != true, "pre_tokenizer.pretokenizers[0].invert", first["invert"])
            try require(isByteLevel(steps[1], regex: false), "pre_tokenizer.pretokenizers[1]", steps[1])
            return .llama3
        default:
            throw unsupported("pre_tokenizer.pretokenizers[0]", first)
        }
    }

    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    func checkDecoder(_ value: Any?) throws {
        try require((value as? [String: Any])?["type"] as? String == "ByteLevel", "decoder", value)
    }

    func addedTokens(_ value: Any?) throws -> [AddedToken] {
        guard let list = value as? [[String: Any]] else {
            if value == nil || value is NSNull { return [] }
            throw missing("added_tokens")
        }
        return try list.enumerated().map { index, entry in
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, let content = entry["content"] as? String,
                  !content.isEmpty
            else { throw missing("added_tokens[\(index)].id/content") }
            for flag in ["single_word", "lstrip", "rstrip"] where (entry[flag] as? Bool) == true {
                throw unsupported("added_tokens[\(index)] (\(content)).\(flag)", true)
            }
            return AddedToken(id: Int32(id), content: content, isSpecial: (entry["special"] as? Bool) ?? false)
        }
    }

    /// `bos_token` and `eos_token` of a tokenizer_config.json next to `url`, if any.
    func specialTokenNames(besides url: URL) -> (bos: String?, eos: String?) {
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        guard let data = try? Data(contentsOf: configURL),
              let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return (nil, nil) }
        // Either a plain string or an AddedToken object with "content".
        func name(_ key: String) -> String? {
            config[key] as? String ?? (config[key] as? [String: Any])?["content"] as? String
        }
        return (name("bos_token"), name("eos_token"))
    }

    /// Merges as "left right" strings or, in newer files, `[left, right]` pairs.
    func merges(_ value: Any?) throws -> [(String, String)] {
        guard let list = value as? [Any] else { throw missing("model.merges") }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(list.count)
        for (rank, entry) in list.enumerated() {
            if let text = entry as? String {
                let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw LoadError.malformed(file: file, reason: "model.merges[\(rank)] \"\(text)\" is not \"left right\"") }
                pairs.append((String(parts[0]), String(parts[1])))
            } else if let pair = entry as? [String], pair.count == 2 {
                pairs.append((pair[0], pair[1]))
            } else {
                throw LoadError.malformed(file: file, reason: "model.merges[\(rank)] is neither \"left right\" nor [left, right]")
            }
        }
        return pairs
    }

    /// The special token the post-processor puts before a single sequence
    /// (Llama 3's "<|begin_of_text|>"), or nil when it adds nothing.
    func prependedToken(_ value: Any?) throws -> String? {
        guard let object = value as? [String: Any] else {
            if value == nil || value is NSNull { return nil }
            throw unsupported("post_processor", value)
        }
        switch object["type"] as? String {
        case "ByteLevel":
            return nil  // only adjusts offsets
        case "Sequence":
            let steps = object["processors"] as? [Any] ?? []
            let found = try steps.map(prependedToken).compactMap { $0 }
            try require(found.count <= 1, "post_processor.processors", value)
            return found.first
        case "TemplateProcessing":
            let single = object["single"] as? [[String: Any]] ?? []
            let specials = single.compactMap { ($0["SpecialToken"] as? [String: Any])?["id"] as? String }
            let sequenceLast = single.last?["Sequence"] != nil
            try require(sequenceLast && specials.count == single.count - 1 && specials.count <= 1, "post_processor.single", single)
            return specials.first
        default:
            throw unsupported("post_processor", value)
        }
    }
}
