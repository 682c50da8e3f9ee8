// all-MiniLM-L6-v2 against sentence-transformers
// (scripts/reference/make_minilm_golden.py): token ids exactly, embeddings and
// cosine similarities within 1e-4.
import Foundation
import Testing
@testable import Core
import TestSupport

@Suite(.serialized) struct MiniLMGoldenTests {
    struct Sentence: Decodable {
        let text: String
        let ids: [Int32]
        let embedding: [Float]?
    }
    struct Pair: Decodable {
        let a: String, b: String
        let cosine: Float
    }
    struct Reference: Decodable {
        let sentences: [Sentence]
        let tokenCases: [Sentence]
        let pairs: [Pair]
        enum CodingKeys: String, CodingKey { case sentences, tokenCases = "token_cases", pairs }
    }

    static let embedder: Result<SentenceEmbedder, Error> = Result {
        try SentenceEmbedder.load(try TestPaths.model("all-minilm-l6-v2"))
    }

    static func reference() throws -> Reference {
        let data = try Data(contentsOf: TestPaths.golden("minilm").appendingPathComponent("reference.json"))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test func tokenIdsMatchSentenceTransformers() throws {
        let embedder = try Self.embedder.get()
        let reference = try Self.reference()
        for sentence in reference.sentences + reference.tokenCases {
            #expect(embedder.tokenIds(sentence.text) == sentence.ids, "\(sentence.text.debugDescription)")
        }
        #expect(reference.sentences.contains { $0.ids.count == embedder.maxSequenceLength },
                "the golden file must exercise truncation")
    }

    @Test func embeddingsMatchSentenceTransformers() throws {
        var embedder = try Self.embedder.get()
        let reference = try Self.reference()
        let texts = reference.sentences.map(\.text)
        // Batches of 8 mix lengths, so padding and the key mask are exercised.
        embedder.batchSize = 8
        let batched = embedder.embed(texts, context: ComputeContext(threads: 2))
        var worst: Float = 0
        for (sentence, got) in zip(reference.sentences, batched) {
            let want = try #require(sentence.embedding)
            #expect(got.count == want.count)
            let diff = Self.maxDifference(got, want)
            worst = max(worst, diff)
            #expect(diff < 1e-4, "\(sentence.text.debugDescription): max |Δ| \(diff)")
            let norm = got.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(norm - 1) < 1e-5, "\(sentence.text.debugDescription): norm \(norm)")
        }
        print("MiniLM embeddings: \(texts.count) sentences, max |Δ| per component \(worst)")

        // One sentence per batch (no padding) and one thread give the same vectors.
        embedder.batchSize = 1
        let single = embedder.embed(texts, context: ComputeContext(threads: 1))
        let paddingEffect = zip(batched, single).map { Self.maxDifference($0, $1) }.max() ?? 0
        #expect(paddingEffect < 1e-5, "padded vs unpadded: max |Δ| \(paddingEffect)")
        print("MiniLM padded batches vs single sentences: max |Δ| \(paddingEffect)")
    }

    @Test func cosineSimilaritiesMatchSentenceTransformers() throws {
        let embedder = try Self.embedder.get()
        let context = ComputeContext(threads: 2)
        var worst: Float = 0
        for pair in try Self.reference().pairs {
            let got = embedder.cosineSimilarity(pair.a, pair.b, context: context)
            worst = max(worst, abs(got - pair.cosine))
            #expect(abs(got - pair.cosine) < 1e-4, "\(pair.a.debugDescription) · \(pair.b.debugDescription): \(got) vs \(pair.cosine)")
        }
        print("MiniLM cosine similarities: max |Δ| \(worst)")
        #expect(embedder.embed([], context: context).isEmpty)
    }
}
