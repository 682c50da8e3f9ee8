// InferenceModeTests: evaluation and generation run the network without LoRA
// dropout, so a trained adapter answers the same whatever dropout it trained
// with — compared against the same adapter with dropout 0.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite(.serialized) struct InferenceModeTests {
    /// Two trials of one LoRA adapter, with dropout `p` and 0, holding the
    /// same nonzero tensors (B ≠ 0, so the adapter changes every output).
    static func twins(_ base: LlamaModel, p: Float, rank: Int, maxSeq: Int, context: ComputeContext) throws -> (FineTuning, FineTuning) {
        func trial(_ dropout: Float) throws -> FineTuning {
            let method = MethodSettings(kind: .lora, rank: rank, alpha: Float(2 * rank), dropout: dropout, targets: ProjectionKind.allCases)
            return try FineTuning(base: base, method: method, optimizer: AdamWSettings(), maxBatch: 1, maxSeq: maxSeq, seed: 4, context: context)
        }
        let dropped = try trial(p), plain = try trial(0)
        var rng = SeededGenerator(seed: 8)
        for i in 0..<dropped.parameters.capacity { dropped.parameters.base[i] += 0.05 * rng.nextNormal() }
        plain.parameters.base.update(from: dropped.parameters.base, count: plain.parameters.capacity)
        return (dropped, plain)
    }

    @Test func logitsAndGenerationIgnoreDropout() throws {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        let ctx = ComputeContext(threads: 2)
        let prompt: [Int32] = [3, 14, 15, 9, 26, 5, 35]
        let (dropped, plain) = try Self.twins(model, p: 0.1, rank: 4, maxSeq: prompt.count + 8, context: ctx)
        let batch = TokenBatch(batchSize: 1, seqLen: prompt.count, tokens: prompt,
                               targets: Array(repeating: TokenBatch.ignore, count: prompt.count))
        let rows = Array(0..<prompt.count)
        let expected = plain.network.logits(batch, outputRows: rows, plain.activations, context: ctx)
        #expect(dropped.network.logits(batch, outputRows: rows, dropped.activations, context: ctx) == expected)
        // The adapter matters: without it the logits differ.
        let frozen = model.frozenNetwork()
        let frozenActs = LlamaActivations(network: frozen, maxBatch: 1, maxSeq: prompt.count, threads: ctx.threads)
        #expect(frozen.logits(batch, outputRows: rows, frozenActs, context: ctx) != expected)

        let prompts: [[Int32]] = [prompt, [7, 1, 2], [30]]
        let greedy = prompts.map { plain.network.generateGreedy(prompt: $0, maxTokens: 8, context: ctx) }
        let generator = CachedGenerator(network: dropped.network, maxBatch: prompts.count, maxLength: prompt.count + 8, context: ctx)
        #expect(generator.generate(prompts: prompts, maxNewTokens: 8, stopTokens: []) == greedy)
        // Training still draws masks: the loss with dropout differs from the plain one.
        let trainingBatch = TinyModels.batch(vocab: config.vocabularySize, seqLen: 6)
        let training = try Self.twins(model, p: 0.1, rank: 4, maxSeq: 6, context: ctx)
        var rng = SeededGenerator(seed: 1)
        let maskedLoss = training.0.network.forward(trainingBatch, LlamaActivations(network: training.0.network, maxBatch: 2, maxSeq: 6, threads: 2),
                                                    rng: &rng, context: ctx)
        let plainLoss = training.1.network.forward(trainingBatch, LlamaActivations(network: training.1.network, maxBatch: 2, maxSeq: 6, threads: 2),
                                                   rng: &rng, context: ctx)
        #expect(maskedLoss != plainLoss)
    }

    /// The study's evaluation (answers, scores, perplexity) of SmolLM2 with a
    /// LoRA adapter is the same with dropout 0.1 as with 0.
    @Test func evaluationGivesTheSameAnswersWithDropout() throws {
        let lm = try LanguageModel.load(try TestPaths.model("smollm2-135m-instruct"))
        let embedder = try SentenceEmbedder.load(try TestPaths.model("all-minilm-l6-v2"))
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        let heldOut = try lm.encode(String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("data/heldout.txt"), encoding: .utf8))
        let ctx = ComputeContext(threads: 2)
        let (dropped, plain) = try Self.twins(lm.model, p: 0.1, rank: 8, maxSeq: 16, context: ctx)
        // One evaluator each: an evaluator keeps its buffers for the network it saw first.
        func evaluate(_ trial: FineTuning) throws -> EvaluationReport {
            var evaluator = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
            evaluator.maxNewTokens = 10
            evaluator.heldOut = Array(heldOut.prefix(48))
            return try evaluator.evaluate(trial.network, context: ctx)
        }
        let expected = try evaluate(plain), report = try evaluate(dropped)
        #expect(report.questions.map(\.answer) == expected.questions.map(\.answer))
        #expect(report.questions.map(\.similarity) == expected.questions.map(\.similarity))
        #expect(report.perplexity == expected.perplexity)
    }
}
