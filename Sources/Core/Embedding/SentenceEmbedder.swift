// SentenceEmbedder: sentence embeddings as sentence-transformers computes them
// for all-MiniLM-L6-v2 (WordPiece → BERT encoder → mean pooling → L2
// normalisation), for scoring a generated answer against the reference answer
// by cosine similarity.
import Foundation
import Trial

/// all-MiniLM-L6-v2 (or another BERT sentence-transformers model with mean
/// pooling and normalisation) on the CPU core.
public struct SentenceEmbedder: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let encoder: BertEncoder
    /// Ids per sentence, [CLS] and [SEP] included; longer sentences are cut.
    public let maxSequenceLength: Int
    /// Sentences encoded together; they are sorted by length first, so padding stays small.
    public var batchSize = 32

    /// The length of every embedding (the hidden size, 384 for MiniLM-L6).
    public var dimension: Int { encoder.config.hiddenSize }

    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from
    /// `directory`, and sentence-transformers' own files when present (see
    /// `SentenceTransformersSettings`).
    public static func load(_ directory: URL) throws -> SentenceEmbedder {
        let config = try BertConfiguration.load(configJSON: directory.appendingPathComponent("config.json"))
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: directory.appendingPathComponent("tokenizer.json"))
        let settings = try SentenceTransformersSettings.read(directory)
        guard tokenizer.vocabularySize <= config.vocabularySize else {
            throw LoadError.badConfiguration(
                file: "tokenizer.json", reason: "ids up to \(tokenizer.vocabularySize - 1) exceed config.json's vocab_size \(config.vocabularySize)")
        }
        guard settings.maxSequenceLength <= config.maxPositions else {
            throw LoadError.badConfiguration(
                file: "sentence_bert_config.json",
                reason: "max_seq_length \(settings.maxSequenceLength) exceeds max_position_embeddings \(config.maxPositions)")
        }
        let weights = try BertWeights.load(config, from: try SafetensorsFile(url: directory.appendingPathComponent("model.safetensors")))
        return SentenceEmbedder(
            tokenizer: tokenizer, encoder: BertEncoder(config: config, weights: weights),
            maxSequenceLength: settings.maxSequenceLength)
    }

    public init(tokenizer: WordPieceTokenizer, encoder: BertEncoder, maxSequenceLength: Int) {
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.maxSequenceLength = maxSequenceLength
    }

    /// The token ids the encoder reads for `sentence`.
    public func tokenIds(_ sentence: String) -> [Int32] {
        tokenizer.encode(sentence, maxLength: maxSequenceLength)
    }

    /// One unit-length embedding per sentence, in the order given.
    public func embed(_ sentences: [String], context: ComputeContext) -> [[Float]] {
        guard !sentences.isEmpty else { return [] }
        let ids = sentences.map(tokenIds)
        // Longest first, ties in input order, so that each batch pads little.
        let order = ids.indices.sorted { (ids[$1].count, $0) < (ids[$0].count, $1) }
        let batches = stride(from: 0, to: order.count, by: max(1, batchSize)).map {
            Array(order[$0..<min(order.count, $0 + max(1, batchSize))])
        }
        let shapes = batches.map { batch in (batch.count, batch.map { ids[$0].count }.max() ?? 1) }
        let activations = BertActivations(
            config: encoder.config, rows: shapes.map { $0.0 * $0.1 }.max() ?? 1,
            maxSeqLen: shapes.map(\.1).max() ?? 1, threads: context.threads)

        let C = dimension
        var result = [[Float]](repeating: [], count: sentences.count)
        var pooled = [Float](repeating: 0, count: max(1, batchSize) * C)
        for (batch, (B, T)) in zip(batches, shapes) {
            var tokens = [Int32](repeating: 0, count: B * T)
            let lengths = batch.map { ids[$0].count }
            for (row, sentence) in batch.enumerated() {
                for (t, id) in ids[sentence].enumerated() { tokens[row * T + t] = id }
            }
            encoder.forward(tokens: tokens, lengths: lengths, seqLen: T, activations: activations, context: context)
            pooled.withUnsafeMutableBufferPointer { out in
                lengths.withUnsafeBufferPointer { lengths in
                    guard let out = out.baseAddress, let lengths = lengths.baseAddress else { return }
                    meanPoolNormalized(FloatPointer(out), hidden: activations.hidden, lengths: lengths, batch: B, seqLen: T, c: C)
                }
            }
            for (row, sentence) in batch.enumerated() { result[sentence] = Array(pooled[(row * C)..<((row + 1) * C)]) }
        }
        return result
    }

    /// The cosine similarity of the embeddings of `a` and `b`, in [-1, 1].
    public func cosineSimilarity(_ a: String, _ b: String, context: ComputeContext) -> Float {
        let e = embed([a, b], context: context)
        return Self.cosine(e[0], e[1])
    }

    /// The cosine of two vectors of equal length (0 when either is zero).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for (x, y) in zip(a, b) {
            dot += x * y
            na += x * x
            nb += y * y
        }
        let norms = (na * nb).squareRoot()
        return norms > 0 ? dot / norms : 0
    }
}
