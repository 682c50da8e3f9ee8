// LanguageModel: a Llama model with its tokenizer and chat template, loaded
// from a GGUF file or a Hugging Face directory by the same path.
import Foundation
import Trial

/// Where a model's tokenizer lives.
public enum TokenizerLocation {
    /// The tokenizer of the model at `url`: GGUF metadata for a GGUF file (or a
    /// directory holding one), else `tokenizer.json` in a directory. Weights are
    /// not needed, so a directory with just config.json + tokenizer.json works.
    public static func load(_ url: URL) throws -> Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw LoadError.unreadable(file: url.path, reason: "no such file or directory")
        }
        if !isDirectory.boolValue {
            if url.pathExtension == "gguf" { return try Tokenizer(gguf: GGUFFile(url: url)) }
            if url.lastPathComponent == "tokenizer.json" { return try Tokenizer(tokenizerJSON: url) }
            throw LoadError.malformed(file: url.path, reason: "expected a .gguf file, tokenizer.json or a model directory")
        }
        let json = url.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) { return try Tokenizer(tokenizerJSON: json) }
        let ggufs = (try? FileManager.default.contentsOfDirectory(atPath: url.path))?.filter { $0.hasSuffix(".gguf") } ?? []
        if ggufs.count == 1 { return try Tokenizer(gguf: GGUFFile(url: url.appendingPathComponent(ggufs[0]))) }
        throw LoadError.malformed(file: url.path, reason: "no tokenizer: expected tokenizer.json or exactly one .gguf file in the directory")
    }
}

extension Tokenizer {
    /// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata.
    public convenience init(gguf file: GGUFFile) throws {
        let m = file.metadata
        let kind = try m.required("tokenizer.ggml.model", m.string)
        guard kind == Tokenizer.ggufModel else {
            throw LoadError.badConfiguration(file: file.path, reason: "tokenizer.ggml.model \"\(kind)\" is not supported (supported: \(Tokenizer.ggufModel))")
        }
        let tokens = try m.required("tokenizer.ggml.tokens", m.stringArray)
        // Metadata integers may be any width: narrowed only where they fit.
        func int32(_ value: Int, _ key: String) throws -> Int32 {
            guard let narrow = Int32(exactly: value) else {
                throw LoadError.badConfiguration(file: file.path, reason: "\(key) \(value) does not fit a 32-bit token id or type")
            }
            return narrow
        }
        // Present but unreadable is refused, not taken for absent (`optional`): all-normal types would
        // tokenise control tokens as text.
        let types = try m.optional("tokenizer.ggml.token_type", m.intArray) ?? Array(repeating: 1, count: tokens.count)
        try self.init(
            tokens: tokens,
            merges: try m.required("tokenizer.ggml.merges", m.stringArray),
            tokenTypes: try types.enumerated().map { try int32($1, "tokenizer.ggml.token_type[\($0)]") },
            preTokenizer: try m.optional("tokenizer.ggml.pre", m.string) ?? "gpt2",
            bosTokenId: try m.optional("tokenizer.ggml.bos_token_id", m.int).map { try int32($0, "tokenizer.ggml.bos_token_id") },
            eosTokenId: try m.optional("tokenizer.ggml.eos_token_id", m.int).map { try int32($0, "tokenizer.ggml.eos_token_id") },
            padTokenId: try m.optional("tokenizer.ggml.padding_token_id", m.int).map { try int32($0, "tokenizer.ggml.padding_token_id") },
            addBosToken: try m.optional("tokenizer.ggml.add_bos_token", m.bool) ?? false,
            source: file.path)
    }
}

/// A model ready to train and generate: weights, tokenizer, chat template.
public final class LanguageModel: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let location: ModelLocation
    /// Name, file, stored weight types and size, for summaries, reports and
    /// exported adapters; nil for a model not loaded from files.
    public let modelDescription: ModelDescription?

    public init(model: LlamaModel, tokenizer: Tokenizer, template: ChatTemplate, location: ModelLocation,
                modelDescription: ModelDescription? = nil) {
        self.model = model; self.tokenizer = tokenizer; self.template = template; self.location = location
        self.modelDescription = modelDescription
    }

    /// Loads weights, tokenizer and template from a GGUF file or HF directory;
    /// `.nf4` keeps the projections quantised for QLoRA.
    public static func load(_ url: URL, storage: LinearStorage = .float32, context: ComputeContext = ComputeContext(threads: 1)) throws -> LanguageModel {
        let loaded = try ModelLocation.open(url)
        let tokenizer = try loaded.gguf.map { try Tokenizer(gguf: $0) } ?? TokenizerLocation.load(url)
        // A tokenizer may carry added tokens past the embedding (Llama 3.2's
        // shared tokenizer has <|image|> at 128256); ordinary tokens may not.
        let vocabulary = loaded.configuration.vocabularySize
        if let beyond = (vocabulary..<max(vocabulary, tokenizer.vocabularySize)).first(where: { tokenizer.addedTokens[Int32($0)] == nil }) {
            throw LoadError.badConfiguration(
                file: url.path,
                reason: "tokenizer token \(beyond) lies outside the model's vocabulary of \(vocabulary)")
        }
        // Chosen before the weights are read, so that a model without a
        // template fails at once, its error naming the file.
        let template: ChatTemplate
        do {
            template = try ChatTemplate(for: tokenizer)
        } catch let error as ChatTemplateError {
            throw LoadError.badConfiguration(file: url.path, reason: error.description)
        }
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: storage, context: context)
        return LanguageModel(model: model, tokenizer: tokenizer, template: template, location: loaded.location,
                             modelDescription: ModelDescription(loaded, storage: storage))
    }

    /// Token ids of `text` (see `Tokenizer.encode`), refusing any id the model
    /// has no embedding for instead of reading past the table.
    public func encode(_ text: String, addSpecialTokens: Bool = false, parseSpecial: Bool = true) throws -> [Int32] {
        let ids = tokenizer.encode(text, addSpecialTokens: addSpecialTokens, parseSpecial: parseSpecial)
        if let bad = ids.first(where: { Int($0) >= model.config.vocabularySize }) {
            throw LoadError.badConfiguration(
                file: location.path,
                reason: "token \(tokenizer.tokens[Int(bad)]) (id \(bad)) has no embedding in this model's vocabulary of \(model.config.vocabularySize)")
        }
        return ids
    }

    /// Ids that end generation: end of turn, and the model's EOS ids.
    public var stopTokens: Set<Int32> {
        var stops = Set(template.stopTokenIds)
        stops.insert(template.endOfTurnTokenId)
        if let eos = tokenizer.eosTokenId { stops.insert(eos) }
        // `validate()` keeps every id inside a vocabulary of at most Int32.max.
        for id in model.config.eosTokenIds { stops.insert(Int32(id)) }
        return stops
    }
}

extension LanguageModel {
    /// Writes the tokenizer files next to an exported model: copied from a
    /// Hugging Face base, written out from a GGUF base's metadata (with its chat template).
    public func writeTokenizerFiles(to directory: URL) throws {
        switch location {
        case let .huggingFace(source):
            for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let from = source.appendingPathComponent(name), to = directory.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: from.path) else { continue }
                try? FileManager.default.removeItem(at: to)
                try FileManager.default.copyItem(at: from, to: to)
            }
        case let .gguf(url):
            let metadata = try GGUFFile(url: url).metadata
            let template = try metadata.optional("tokenizer.chat_template", metadata.string)
            try tokenizer.writeHuggingFaceFiles(to: directory, chatTemplate: template, modelMaxLength: model.config.maxPositions)
        }
    }
}
