// TokenizerJSONWriter: the tokenizer written back as Hugging Face's
// tokenizer.json and tokenizer_config.json, so that an exported model loads in
// plain transformers — also when its base came from a GGUF file, which has no
// tokenizer.json. Every component written is one TokenizerJSON.swift accepts,
// chosen so that Hugging Face encodes exactly as FactSweep does.
import Foundation
import Trial

extension Tokenizer {
    /// Writes `tokenizer.json` and `tokenizer_config.json` into `directory`
    /// (created if needed), each atomically.
    ///
    /// - Parameters:
    ///   - chatTemplate: the Jinja template transformers' `apply_chat_template`
    ///     should use: a GGUF base's `tokenizer.chat_template`, or the base
    ///     model's own; nil leaves the model without one.
    ///   - modelMaxLength: the context length (`max_position_embeddings`);
    ///     without it transformers assumes no limit.
    public func writeHuggingFaceFiles(to directory: URL, chatTemplate: String?, modelMaxLength: Int? = nil) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw LoadError.unwritable(file: directory.path, reason: error.localizedDescription)
        }
        try Self.writeAtomically(try tokenizerJSON(), to: directory.appendingPathComponent("tokenizer.json"))
        let config = tokenizerConfigJSON(chatTemplate: chatTemplate, modelMaxLength: modelMaxLength)
        try Self.writeAtomically(config, to: directory.appendingPathComponent("tokenizer_config.json"))
    }

    /// tokenizer.json: the keys in the order `tokenizers` itself writes them.
    func tokenizerJSON() throws -> JSONText {
        .object(
            [
                ("version", "1.0"),
                ("truncation", nil),
                ("padding", nil),
                ("added_tokens", addedTokensJSON),
                ("normalizer", nil),
                ("pre_tokenizer", preTokenizer.huggingFaceJSON),
                ("post_processor", postProcessorJSON),
                ("decoder", Self.byteLevel(addPrefixSpace: true, trimOffsets: true, useRegex: true)),
                ("model", try modelJSON()),
            ], oneFieldPerLine: true)
    }

    /// tokenizer_config.json: what transformers needs beyond tokenizer.json.
    /// `clean_up_tokenization_spaces` is off because FactSweep's decode does
    /// not remove spaces before punctuation; Llama 3's own config turns it on,
    /// which would make transformers decode differently from the trainer.
    func tokenizerConfigJSON(chatTemplate: String?, modelMaxLength: Int?) -> JSONText {
        func name(_ id: Int32?) -> JSONText? { id.map { .string(tokens[Int($0)]) } }
        var fields: [(String, JSONText)] = [("add_bos_token", .bool(addsBosToken))]
        if let bos = name(bosTokenId) { fields.append(("bos_token", bos)) }
        if let eos = name(eosTokenId) { fields.append(("eos_token", eos)) }
        if let pad = name(padTokenId) { fields.append(("pad_token", pad)) }
        fields.append(("clean_up_tokenization_spaces", false))
        if let modelMaxLength { fields.append(("model_max_length", .int(modelMaxLength))) }
        fields.append(("tokenizer_class", "PreTrainedTokenizerFast"))
        if let chatTemplate { fields.append(("chat_template", .string(chatTemplate))) }
        return .object(fields, oneFieldPerLine: true)
    }

    private var addedTokensJSON: JSONText {
        .array(
            addedTokens.values.sorted { $0.id < $1.id }.map { token -> JSONText in
                [
                    "id": .int(token.id), "content": .string(token.content), "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": .bool(!token.isSpecial), "special": .bool(token.isSpecial),
                ]
            })
    }

    /// ByteLevel post-processing only adjusts offsets; a BOS-adding tokenizer
    /// also gets Llama 3's TemplateProcessing, the form the reader recognises.
    private var postProcessorJSON: JSONText {
        let byteLevel = Self.byteLevel(addPrefixSpace: true, trimOffsets: false, useRegex: true)
        guard addsBosToken, let bosTokenId else { return byteLevel }
        let bosName = tokens[Int(bosTokenId)]
        let bos = JSONText.string(bosName)
        func special(_ typeId: Int) -> JSONText { ["SpecialToken": ["id": bos, "type_id": .int(typeId)]] }
        func sequence(_ name: JSONText, _ typeId: Int) -> JSONText { ["Sequence": ["id": name, "type_id": .int(typeId)]] }
        let bosEntry: JSONText = ["id": bos, "ids": [.int(bosTokenId)], "tokens": [bos]]
        let template: JSONText = [
            "type": "TemplateProcessing",
            "single": [special(0), sequence("A", 0)],
            "pair": [special(0), sequence("A", 0), special(1), sequence("B", 1)],
            "special_tokens": .object([(bosName, bosEntry)]),
        ]
        return ["type": "Sequence", "processors": [byteLevel, template]]
    }

    /// model: BPE over the whole vocabulary (added tokens included, as
    /// Hugging Face's own files have them) and the merges in rank order.
    private func modelJSON() throws -> JSONText {
        var vocabulary: [(String, JSONText)] = []
        vocabulary.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() {
            // `id(of:)` compares bytes, as Rust does; Swift's == would also
            // equate canonically equivalent spellings.
            if let first = self.id(of: token), Int(first) != id {
                throw LoadError.unwritable(
                    file: "tokenizer.json",
                    reason: "tokens \(first) and \(id) are both spelled \(token.debugDescription); model.vocab can hold only one")
            }
            vocabulary.append((token, .int(id)))
        }
        let merges = rankedMerges
        // "left right" is what every tokenizers version reads; a token with a
        // space in it needs the [left, right] form (tokenizers 0.20 and later).
        let needsPairs = merges.contains { $0.left.contains(" ") || $0.right.contains(" ") }
        let mergeList = merges.lazy.map { merge -> JSONText in
            needsPairs ? [.string(merge.left), .string(merge.right)] : .string(merge.left + " " + merge.right)
        }
        return [
            "type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
            "end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": .object(vocabulary), "merges": .array(mergeList),
        ]
    }

    static func byteLevel(addPrefixSpace: Bool, trimOffsets: Bool, useRegex: Bool) -> JSONText {
        [
            "type": "ByteLevel", "add_prefix_space": .bool(addPrefixSpace), "trim_offsets": .bool(trimOffsets),
            "use_regex": .bool(useRegex),
        ]
    }

    /// Writes to a temporary file beside `url`, then renames it into place,
    /// so that a reader never sees half a file.
    private static func writeAtomically(_ json: JSONText, to url: URL) throws {
        do {
            try Data(json.text.utf8).write(to: url, options: .atomic)
        } catch {
            throw LoadError.unwritable(file: url.path, reason: error.localizedDescription)
        }
    }
}

extension PreTokenizer {
    /// The pre_tokenizer section that splits as this one does: the forms
    /// SmolLM2's and Llama 3's own tokenizer.json files use.
    var huggingFaceJSON: JSONText {
        let byteLevelSplitting = Tokenizer.byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: true)
        switch self {
        case .gpt2:
            return byteLevelSplitting
        case .smollm:
            return ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevelSplitting]]
        case .llama3:
            let split: JSONText = [
                "type": "Split", "pattern": ["Regex": .string(Self.llama3Pattern)], "behavior": "Isolated", "invert": false,
            ]
            let byteLevel = Tokenizer.byteLevel(addPrefixSpace: false, trimOffsets: true, useRegex: false)
            return ["type": "Sequence", "pretokenizers": [split, byteLevel]]
        }
    }
}
