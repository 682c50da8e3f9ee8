// Tokenizer: byte-level BPE text ⇄ token ids, equal to Hugging Face `tokenizers`
// for the SmolLM2 and Llama 3 vocabularies. Built from tokenizer.json
// (TokenizerJSON.swift) or from GGUF metadata arrays (here).
import Trial

/// A byte-level BPE tokenizer: added tokens, a pre-tokenizer, ranked merges.
public final class Tokenizer: Sendable {
    /// Vocabulary spelling of each id (byte-level for ordinary tokens).
    public let tokens: [String]
    /// Tokens matched verbatim in text, by id.
    public let addedTokens: [Int32: AddedToken]
    public let preTokenizer: PreTokenizer
    public let bosTokenId: Int32?
    public let eosTokenId: Int32?
    /// The id batches are padded with, when the source names one (GGUF
    /// `tokenizer.ggml.padding_token_id`, tokenizer_config.json `pad_token`);
    /// kept so that an exported tokenizer_config.json can name it again.
    public let padTokenId: Int32?
    /// Whether `encode(_:addSpecialTokens: true)` starts with `bosTokenId`
    /// (Llama 3's post-processor; GGUF `tokenizer.ggml.add_bos_token`).
    public let addsBosToken: Bool

    private let ids: [TokenSpelling: Int32]
    private let model: BytePairModel
    private let matcher: AddedTokenMatcher
    /// The bytes each id decodes to.
    private let tokenBytes: [[UInt8]]

    public var vocabularySize: Int { tokens.count }

    /// The value of GGUF `tokenizer.ggml.model` this initialiser understands.
    public static let ggufModel = "gpt2"

    /// Builds a tokenizer from GGUF tokenizer metadata (`tokenizer.ggml.model` must be "gpt2").
    ///
    /// - Parameters:
    ///   - tokens: `tokenizer.ggml.tokens`, indexed by id.
    ///   - merges: `tokenizer.ggml.merges`, "left right" in rank order.
    ///   - tokenTypes: `tokenizer.ggml.token_type`; 3 (control) becomes a special
    ///     added token, 4 (user-defined) a non-special one.
    ///   - preTokenizer: `tokenizer.ggml.pre`: "gpt2", "llama-bpe" or "smollm".
    ///   - source: the file the metadata came from, named in errors.
    public convenience init(
        tokens: [String], merges: [String], tokenTypes: [Int32], preTokenizer: String,
        bosTokenId: Int32?, eosTokenId: Int32?, padTokenId: Int32? = nil, addBosToken: Bool = false,
        source: String = "GGUF metadata"
    ) throws {
        guard let pre = PreTokenizer(rawValue: preTokenizer) else {
            let known = PreTokenizer.allCases.map(\.rawValue).joined(separator: ", ")
            throw LoadError.badConfiguration(
                file: source, reason: "tokenizer.ggml.pre \"\(preTokenizer)\" is not supported (supported: \(known))")
        }
        guard tokenTypes.count == tokens.count else {
            throw LoadError.malformed(
                file: source,
                reason: "tokenizer.ggml.token_type has \(tokenTypes.count) entries for \(tokens.count) tokens")
        }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw LoadError.malformed(file: source, reason: "tokenizer.ggml.merges[\(rank)] \"\(merge)\" is not \"left right\"")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        var added: [AddedToken] = []
        for (id, type) in tokenTypes.enumerated() where type == 3 || type == 4 {
            added.append(AddedToken(id: Int32(id), content: tokens[id], isSpecial: type == 3))
        }
        try self.init(
            tokens: tokens, merges: pairs, added: added, preTokenizer: pre,
            bosTokenId: bosTokenId, eosTokenId: eosTokenId, padTokenId: padTokenId, addsBosToken: addBosToken,
            source: source)
    }

    /// The common initialiser: `tokens` indexed by id, merges in rank order.
    init(
        tokens: [String], merges: [(String, String)], added: [AddedToken], preTokenizer: PreTokenizer,
        bosTokenId: Int32?, eosTokenId: Int32?, padTokenId: Int32?, addsBosToken: Bool, source: String
    ) throws {
        var ids = [TokenSpelling: Int32](minimumCapacity: tokens.count)
        for (id, token) in tokens.enumerated() where ids[TokenSpelling(token)] == nil { ids[TokenSpelling(token)] = Int32(id) }
        for (name, id) in [("bos", bosTokenId), ("eos", eosTokenId), ("pad", padTokenId)] {
            if let id, !tokens.indices.contains(Int(id)) {
                throw LoadError.malformed(file: source, reason: "\(name) token id \(id) is outside the vocabulary of \(tokens.count)")
            }
        }
        self.tokens = tokens
        self.ids = ids
        self.addedTokens = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.preTokenizer = preTokenizer
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
        self.addsBosToken = addsBosToken && bosTokenId != nil
        self.model = try BytePairModel(vocabulary: ids, merges: merges, source: source)
        self.matcher = AddedTokenMatcher(added)
        self.tokenBytes = tokens.map { ByteLevel.decode($0) ?? Array($0.utf8) }
    }

    /// The merges in rank order as vocabulary spellings, for writing tokenizer.json.
    var rankedMerges: [(left: String, right: String)] {
        model.rankedMerges.map { (tokens[Int($0.left)], tokens[Int($0.right)]) }
    }

    /// The id of a vocabulary spelling or added token, e.g. "<|im_end|>".
    public func id(of token: String) -> Int32? { ids[TokenSpelling(token)] }

    /// Whether `id` is a special (control) added token.
    public func isSpecial(_ id: Int32) -> Bool { addedTokens[id]?.isSpecial ?? false }

    /// Token ids for `text`, as Hugging Face's `encode(text, add_special_tokens:)`.
    ///
    /// - Parameters:
    ///   - addSpecialTokens: prepend `bosTokenId` when the tokenizer does so (`addsBosToken`).
    ///   - parseSpecial: match special tokens typed in the text, as Hugging Face
    ///     always does and chat templating needs. Turn off for untrusted text so
    ///     that "<|im_end|>" inside it stays ordinary characters; non-special
    ///     added tokens are matched either way, as with Hugging Face's
    ///     `split_special_tokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = false, parseSpecial: Bool = true) -> [Int32] {
        var result: [Int32] = []
        if addSpecialTokens, addsBosToken, let bosTokenId { result.append(bosTokenId) }
        guard !text.isEmpty else { return result }
        let classified = ClassifiedText(text)
        result.reserveCapacity(classified.scalars.count / 3)
        var chunks: [Range<Int>] = []
        var start = 0
        func encodePlain(_ range: Range<Int>) {
            guard !range.isEmpty else { return }
            chunks.removeAll(keepingCapacity: true)
            preTokenizer.split(classified, range, into: &chunks)
            for chunk in chunks { model.encode(classified.bytes(chunk), into: &result) }
        }
        for match in matcher.matches(in: classified.scalars, includeSpecial: parseSpecial) {
            encodePlain(start..<match.range.lowerBound)
            result.append(match.token.id)
            start = match.range.upperBound
        }
        encodePlain(start..<classified.scalars.count)
        return result
    }

    /// The bytes `id` stands for (empty for an id outside the vocabulary).
    public func bytes(of id: Int32) -> [UInt8] {
        tokenBytes.indices.contains(Int(id)) ? tokenBytes[Int(id)] : []
    }

    /// Text for `ids`, as Hugging Face's `decode`: bytes that are not valid
    /// UTF-8 become U+FFFD, one per maximal invalid subsequence.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where !(skipSpecialTokens && isSpecial(id)) { bytes.append(contentsOf: self.bytes(of: id)) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
