// The real SmolLM2-135M-Instruct (GGUF, Q4_1) against transformers loading the
// same file (scripts/reference/make_smollm2_golden.py): last-position logits
// and 16-token greedy continuations.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite(.serialized) struct SmolLM2ReferenceTests {
    struct Prompt: Decodable {
        let kind: String
        let inputIds: [Int32]
        let top10Ids: [Int]
        let greedyIds: [Int32]
        let greedyTopMargin: [Float]
        enum CodingKeys: String, CodingKey {
            case kind, inputIds = "input_ids", top10Ids = "top10_ids", greedyIds = "greedy_ids"
            case greedyTopMargin = "greedy_top1_top2_margin"
        }
    }
    struct Reference: Decodable { let prompts: [Prompt] }

    static let model: Result<LlamaModel, Error> = Result {
        let loaded = try ModelLocation.open(try TestPaths.model("smollm2-135m-instruct"))
        return try LlamaModel(config: loaded.configuration, source: loaded.tensors)
    }

    static func reference() throws -> Reference {
        let data = try Data(contentsOf: TestPaths.golden("smollm2").appendingPathComponent("reference.json"))
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    @Test func lastPositionLogitsMatchTransformers() throws {
        let model = try Self.model.get()
        let reference = try Self.reference()
        let file = try SafetensorsFile(url: TestPaths.golden("smollm2").appendingPathComponent("last_logits.safetensors"))
        let name = try #require(file.tensorNames.first)
        let expected = try file.floats(name)
        let V = model.config.vocabularySize
        let ctx = ComputeContext(threads: 2)
        for (p, prompt) in reference.prompts.enumerated() {
            let n = prompt.inputIds.count
            let net = model.frozenNetwork()
            let acts = LlamaActivations(network: net, maxBatch: 1, maxSeq: n, maxRows: 1, threads: ctx.threads)
            let batch = TokenBatch(batchSize: 1, seqLen: n, tokens: prompt.inputIds, targets: Array(repeating: TokenBatch.ignore, count: n))
            let logits = net.logits(batch, outputRows: [n - 1], acts, context: ctx)
            let want = Array(expected[(p * V)..<((p + 1) * V)])
            var maxDiff: Float = 0
            for i in 0..<V { maxDiff = max(maxDiff, abs(logits[i] - want[i])) }
            let top5 = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5)
            #expect(Array(top5) == Array(prompt.top10Ids.prefix(5)), "prompt \(p) (\(prompt.kind)): top-5 \(Array(top5))")
            #expect(maxDiff < 2e-3, "prompt \(p): max |Δlogit| \(maxDiff)")
            print("SmolLM2 prompt \(p) (\(prompt.kind), \(n) tokens): top-5 equal, max |Δlogit| \(maxDiff)")
        }
    }

    @Test func greedySixteenTokensMatchTransformers() throws {
        let model = try Self.model.get()
        let ctx = ComputeContext(threads: 2)
        for (p, prompt) in try Self.reference().prompts.enumerated() {
            let ours = model.frozenNetwork().generateGreedy(prompt: prompt.inputIds, maxTokens: prompt.greedyIds.count, context: ctx)
            #expect(ours == prompt.greedyIds, "prompt \(p): \(ours) vs \(prompt.greedyIds)")
        }
    }

    @Test func batchedCachedGenerationMatchesTransformers() throws {
        let model = try Self.model.get()
        let prompts = try Self.reference().prompts
        let ctx = ComputeContext(threads: 2)
        let generator = CachedGenerator(network: model.frozenNetwork(), maxBatch: prompts.count,
                                        maxLength: (prompts.map(\.inputIds.count).max() ?? 0) + 16, context: ctx)
        let outputs = generator.generate(prompts: prompts.map(\.inputIds), maxNewTokens: 16, stopTokens: [])
        for (p, prompt) in prompts.enumerated() {
            #expect(outputs[p] == prompt.greedyIds, "prompt \(p): \(outputs[p]) vs \(prompt.greedyIds)")
        }
    }

    /// In f32, and in bf16 on a bf16 base as a bf16 trial evaluates (the
    /// cache's attention with bf16 inputs, as the recomputation's products).
    /// The two paths sum in different orders; in f32 that moves logits by
    /// about 1e-6 and the tokens must be equal. In bf16 an input whose last
    /// f32 bit differs can round to the neighbouring bf16 value, which moves
    /// logits by a few hundredths: there the tokens must be equal up to the
    /// first step whose two best logits (recomputed) are closer than
    /// `nearTie`, where either choice is the model's (prompt 2, a chat turn,
    /// opens with such a near-tie: 0.08 apart in transformers' f32).
    @Test(arguments: [Precision.f32, .bf16])
    func cachedGenerationWithAdaptersEqualsRecomputation(precision: Precision) throws {
        let model = try precision == .bf16 ? Self.bf16Model.get() : Self.model.get()
        let prompts = try Self.reference().prompts.map(\.inputIds)
        let ctx = ComputeContext(threads: 2)
        let nearTie: Float = 0.1
        var compared = 0
        for method in [MethodSettings(kind: .lora, rank: 4, alpha: 16, targets: ProjectionKind.allCases), MethodSettings(kind: .ia3)] {
            let ft = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: 1, maxSeq: 64, seed: 1,
                                    precision: precision, context: ctx)
            var rng = SeededGenerator(seed: 2)
            for i in 0..<ft.parameters.capacity { ft.parameters.base[i] += 0.02 * rng.nextNormal() }
            ProductPrecision.run(precision) {
                let generator = CachedGenerator(network: ft.network, maxBatch: prompts.count, maxLength: 64, context: ctx)
                let cached = generator.generate(prompts: prompts, maxNewTokens: 8, stopTokens: [2])
                for (p, prompt) in prompts.enumerated() {
                    let recomputed = ft.network.generateGreedy(prompt: prompt, maxTokens: 8, stopTokens: [2], context: ctx)
                    var steps = recomputed.count
                    if precision == .bf16 {
                        // The recomputed margin at each step, up to the first near-tie.
                        steps = recomputed.indices.first { step in
                            let ids = prompt + recomputed[..<step]
                            let batch = TokenBatch(batchSize: 1, seqLen: ids.count, tokens: Array(ids),
                                                   targets: Array(repeating: TokenBatch.ignore, count: ids.count))
                            let logits = ft.network.logits(batch, outputRows: [ids.count - 1], ft.activations, context: ctx)
                            let best = logits.max() ?? 0
                            let second = logits.enumerated().filter { $0.offset != Int(recomputed[step]) }.map(\.element).max() ?? 0
                            return best - second < nearTie
                        } ?? recomputed.count
                    }
                    compared += steps
                    #expect(Array(cached[p].prefix(steps)) == Array(recomputed.prefix(steps)),
                            "\(method.kind) \(precision) prompt \(p): \(cached[p]) cached, \(recomputed) recomputed, compared to step \(steps)")
                }
            }
        }
        // Not vacuous: most of the 2 × 4 × 8 tokens are compared.
        #expect(compared >= 40, "\(precision): \(compared) tokens compared")
        print("cached generation \(precision): \(compared) tokens compared with recomputation")
    }

    static let bf16Model: Result<LlamaModel, Error> = Result {
        let loaded = try ModelLocation.open(try TestPaths.model("smollm2-135m-instruct"))
        return try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .bf16, context: ComputeContext(threads: 2))
    }
}
