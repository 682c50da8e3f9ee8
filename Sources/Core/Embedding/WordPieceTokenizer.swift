// WordPieceTokenizer: BERT's tokenizer from a Hugging Face tokenizer.json:
// added tokens matched in the raw text, BertNormalizer, BertPreTokenizer,
// WordPiece with a continuation prefix, and `[CLS] … [SEP]` around the result.
// Components it does not implement are refused by field, naming the file.
import Foundation
import Trial

/// Text → BERT token ids, equal to Hugging Face `tokenizers` for all-MiniLM-L6-v2.
public final class WordPieceTokenizer: Sendable {
    public let vocabularySize: Int
    public let unknownId: Int32
    /// The ids the post-processor puts before and after a single sentence.
    public let classifierId: Int32, separatorId: Int32
    let normalizer: BertNormalizer
    /// "##": the spelling prefix of a piece that continues a word.
    let continuationPrefix: String
    /// Longer words (in scalars) become `unknownId` whole.
    let maxInputCharsPerWord: Int
    private let vocabulary: [TokenSpelling: Int32]
    private let matcher: AddedTokenMatcher

    /// Loads a WordPiece `tokenizer.json`.
    ///
    /// Accepted: model WordPiece; normalizer BertNormalizer (any flags); pre-tokenizer
    /// BertPreTokenizer; post-processor TemplateProcessing that puts one special
    /// token before and one after a single sequence; added tokens that are not
    /// normalized, stripped or single-word. The decoder is not read (nothing is
    /// decoded), nor are the file's truncation and padding: the caller chooses
    /// the length (`encode(_:maxLength:)`) and batches pad with a mask.
    public init(tokenizerJSON url: URL) throws {
        let document = try TokenizerDocument.read(url)
        let reader = TokenizerJSONReader(file: url.lastPathComponent, kind: "WordPiece tokenizer")
        let file = url.lastPathComponent
        let model = document.modelSettings
        try reader.require(model["type"]?.string == "WordPiece", "model.type", model["type"])
        guard !document.vocabulary.isEmpty else { throw LoadError.malformed(file: file, reason: "model.vocab is missing or empty") }
        var vocabulary = [TokenSpelling: Int32](minimumCapacity: document.vocabulary.count)
        for (spelling, id) in document.vocabulary {
            guard id >= 0, vocabulary.updateValue(id, forKey: TokenSpelling(spelling)) == nil else {
                throw LoadError.malformed(file: file, reason: "model.vocab[\(spelling.debugDescription)] = \(id) is negative or repeated")
            }
        }
        let added = try reader.addedTokens(document.addedTokens, vocabularyCount: document.vocabulary.count)
        for (index, entry) in (document.addedTokens?.array ?? []).enumerated() where entry["normalized"]?.bool == true {
            throw reader.unsupported("added_tokens[\(index)].normalized", true)
        }
        func id(_ name: String?, _ field: String) throws -> Int32 {
            guard let name, let id = vocabulary[TokenSpelling(name)] ?? added.first(where: { $0.content == name })?.id else {
                throw LoadError.malformed(file: file, reason: "\(field) \(name.map(\.debugDescription) ?? "(absent)") is not in model.vocab")
            }
            return id
        }
        unknownId = try id(model["unk_token"]?.string, "model.unk_token")
        continuationPrefix = model["continuing_subword_prefix"]?.string ?? "##"
        let maxChars = model["max_input_chars_per_word"]
        maxInputCharsPerWord = maxChars == nil ? 100 : maxChars?.int ?? 0
        try reader.require(maxInputCharsPerWord > 0, "model.max_input_chars_per_word", maxChars)
        for key in model.keys where !["type", "unk_token", "continuing_subword_prefix", "max_input_chars_per_word"].contains(key) {
            throw reader.unsupported("model.\(key)", model[key])
        }

        let normalizerJSON = document.normalizer
        try reader.require(normalizerJSON?["type"]?.string == "BertNormalizer", "normalizer", normalizerJSON)
        func flag(_ key: String, default value: Bool) throws -> Bool {
            let field = normalizerJSON?[key]
            if field == nil || field?.isNull == true { return value }
            guard let bool = field?.bool else { throw reader.unsupported("normalizer.\(key)", field) }
            return bool
        }
        let lowercase = try flag("lowercase", default: true)
        normalizer = BertNormalizer(
            cleanText: try flag("clean_text", default: true),
            handleChineseChars: try flag("handle_chinese_chars", default: true),
            // null means "as lowercase", in `tokenizers` and in the original BERT.
            stripAccents: try flag("strip_accents", default: lowercase),
            lowercase: lowercase)
        try reader.require(document.preTokenizer?["type"]?.string == "BertPreTokenizer", "pre_tokenizer", document.preTokenizer)

        let post = document.postProcessor
        try reader.require(post?["type"]?.string == "TemplateProcessing", "post_processor", post)
        let single = post?["single"]?.array ?? []
        let names = single.map { $0["SpecialToken"]?["id"]?.string }
        guard single.count == 3, let first = names[0], let last = names[2], single[1]["Sequence"]?["id"]?.string == "A"
        else { throw reader.unsupported("post_processor.single", post?["single"]) }
        func specialId(_ name: String) throws -> Int32 {
            guard let ids = post?["special_tokens"]?[name]?["ids"]?.array, ids.count == 1,
                  let id = ids[0].int.flatMap(Int32.init(exactly:)), id >= 0 else {
                throw reader.unsupported("post_processor.special_tokens.\(name)", post?["special_tokens"]?[name])
            }
            return id
        }
        classifierId = try specialId(first)
        separatorId = try specialId(last)

        self.vocabulary = vocabulary
        self.matcher = AddedTokenMatcher(added)
        vocabularySize = Int(max(vocabulary.values.max() ?? 0, added.map(\.id).max() ?? 0, classifierId, separatorId)) + 1
    }

    /// `[CLS] pieces [SEP]` for `text`, the pieces cut so that at most `maxLength`
    /// ids result (sentence-transformers' truncation: [SEP] stays last).
    public func encode(_ text: String, maxLength: Int = .max) -> [Int32] {
        let pieces = tokenize(text)
        return [classifierId] + pieces.prefix(max(0, maxLength - 2)) + [separatorId]
    }

    /// The ids of `text` without special tokens around it. Added tokens typed in
    /// the text ("[SEP]") are matched first, as `tokenizers` does.
    public func tokenize(_ text: String) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int32] = []
        var start = 0
        for match in matcher.matches(in: scalars, includeSpecial: true) {
            appendPieces(of: scalars[start..<match.range.lowerBound], to: &ids)
            ids.append(match.token.id)
            start = match.range.upperBound
        }
        appendPieces(of: scalars[start...], to: &ids)
        return ids
    }

    private func appendPieces(of text: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
        guard !text.isEmpty else { return }
        let normalized = normalizer.normalize(text)
        for word in BertNormalizer.words(normalized) {
            appendWordPieces(normalized[word], to: &ids)
        }
    }

    /// Greedy longest-match-first WordPiece; a word with an unmatched rest is
    /// `unknownId` whole, as in `tokenizers`.
    private func appendWordPieces(_ word: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
        guard word.count <= maxInputCharsPerWord else {
            ids.append(unknownId)
            return
        }
        var pieces: [Int32] = []
        var start = word.startIndex
        while start < word.endIndex {
            var end = word.endIndex
            var found: Int32?
            while start < end {
                var candidate = start == word.startIndex ? "" : continuationPrefix
                candidate.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = vocabulary[TokenSpelling(candidate)] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else {
                ids.append(unknownId)
                return
            }
            pieces.append(found)
            start = end
        }
        ids += pieces
    }
}
