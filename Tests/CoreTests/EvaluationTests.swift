// Evaluation: batched cached generation stops per sequence (stop token or
// token limit) at any mix of prompt lengths, and a fact evaluation reports
// consistent metrics and every answer.
import Foundation
import Testing
@testable import Core
import TestSupport

@Suite(.serialized) struct EvaluationTests {
    @Test func cachedGenerationStopsEachSequenceOnItsOwn() throws {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let lm = try LanguageModel.load(dir.url)
        let ctx = ComputeContext(threads: 2)
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11], [12]]
        let generator = CachedGenerator(network: lm.model.frozenNetwork(), maxBatch: 3, maxLength: 8 + 6, context: ctx)
        let free = generator.generate(prompts: prompts, maxNewTokens: 6, stopTokens: [])
        #expect(free.map(\.count) == [6, 6, 6])
        // Stop sequence 0 at its second token: the others run on to the limit unchanged.
        let stop = free[0][1]
        let stopped = generator.generate(prompts: prompts, maxNewTokens: 6, stopTokens: [stop])
        for (b, output) in stopped.enumerated() {
            let cut = free[b].firstIndex(of: stop).map { $0 + 1 } ?? free[b].count
            #expect(output == Array(free[b].prefix(cut)), "sequence \(b)")
        }
        for (b, prompt) in prompts.enumerated() {
            #expect(free[b] == lm.model.frozenNetwork().generateGreedy(prompt: prompt, maxTokens: 6, context: ctx), "sequence \(b)")
        }
    }

    @Test func factEvaluationReportsEveryQuestion() throws {
        let lm = try LanguageModel.load(try TestPaths.model("smollm2-135m-instruct"))
        let embedder = try SentenceEmbedder.load(try TestPaths.model("all-minilm-l6-v2"))
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        var evaluator = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        evaluator.maxNewTokens = 12
        evaluator.heldOut = try lm.encode(String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("data/heldout.txt"), encoding: .utf8))
        let ctx = ComputeContext(threads: 2)
        let report = try evaluator.evaluate(lm.model.frozenNetwork(), context: ctx)
        #expect(report.questions.count == 12)
        #expect(report.questions.filter(\.paraphrase).count == 6)
        let mean = report.questions.map(\.similarity).reduce(0, +) / 12
        #expect(abs(report.accuracy - mean) < 1e-6)
        #expect(report.accuracy > 0 && report.accuracy < 0.9, "an untrained model does not know Talvi Orsenko: \(report.accuracy)")
        #expect(report.keyMatch == 0)
        let perplexity = try #require(report.perplexity)
        #expect(perplexity > 1 && perplexity < 100, "perplexity of plain English \(perplexity)")
        // The score of each answer is the embedder's cosine with the reference.
        let q = report.questions[0]
        #expect(abs(q.similarity - embedder.cosineSimilarity(q.answer, q.reference, context: ctx)) < 1e-5)
    }
}
