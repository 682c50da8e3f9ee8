// Evaluation: batched cached generation stops per sequence (stop token or
// token limit) at any mix of prompt lengths, and a fact evaluation reports
// consistent metrics and every answer.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite(.serialized) struct EvaluationTests {
    /// The tiny Llama 3 checkpoint's frozen network, with the directory that
    /// holds its files and the model whose arena it reads (the caller keeps
    /// both alive until done).
    static func tinyNetwork() throws -> (TemporaryDirectory, LanguageModel, LlamaNetwork) {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let lm = try LanguageModel.load(dir.url)
        return (dir, lm, lm.model.frozenNetwork())
    }

    @Test func cachedGenerationStopsEachSequenceOnItsOwn() throws {
        let (dir, lm, network) = try Self.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11], [12]]
        let generator = CachedGenerator(network: network, maxBatch: 3, maxLength: 8 + 6, context: ctx)
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
            #expect(free[b] == network.generateGreedy(prompt: prompt, maxTokens: 6, context: ctx), "sequence \(b)")
        }
    }

    /// Prompts that share a long prefix (run once, in the first pass) and prompts
    /// longer than one pass's piece (91 tokens against
    /// `CachedGenerator.pieceLength`) generate what recomputation does.
    @Test func sharedPrefixAndLongPromptsEqualRecomputation() throws {
        let (dir, lm, network) = try Self.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let common = (0..<45).map { Int32(100 + 37 * $0 % 900) }
        let sharing: [[Int32]] = [common + [7], common + [8, 9, 10], common + [11] + common, Array(common.prefix(20)) + [12, 13]]
        let unrelated: [[Int32]] = [[5] + common + common, [6, 7]]
        #expect(([5] + common + common).count > CachedGenerator.pieceLength)
        for prompts in [sharing, sharing + unrelated, [common + common]] {
            let longest = prompts.map(\.count).max() ?? 0
            let generator = CachedGenerator(network: network, maxBatch: prompts.count, maxLength: longest + 5, context: ctx)
            let outputs = generator.generate(prompts: prompts, maxNewTokens: 5, stopTokens: [])
            for (b, prompt) in prompts.enumerated() {
                #expect(outputs[b] == network.generateGreedy(prompt: prompt, maxTokens: 5, context: ctx), "prompt \(b) of \(prompts.count)")
            }
        }
        // The shared prefix rides in the first pass: with the right answers
        // proposed, prompts whose rests fit one piece take a single pass.
        let short = [sharing[0], sharing[1], sharing[3]]
        #expect(CachedGenerator.sharedPrefixLength(short) == 20)
        let generator = CachedGenerator(network: network, maxBatch: short.count, maxLength: 60, context: ctx)
        let answers = generator.generate(prompts: short, maxNewTokens: 5, stopTokens: [])
        #expect(generator.generate(prompts: short, maxNewTokens: 5, stopTokens: [], recent: answers) == answers)
        #expect(generator.passes == 1, "\(generator.passes) passes")
    }

    /// A proposed stop token is checked by the row before it and takes no row
    /// of its own: with the right answers proposed, the one pass runs the
    /// prompts and each answer but its stop token, and the output is still
    /// greedy decoding's.
    /// The evaluation bench's FLOPs: every projection of every layer per
    /// layer row (SmolLM2: q and o 576 × 576, k and v 576 × 192, gate, up
    /// and down 576 × 1536) and the head (49152 × 576) per head row, two
    /// FLOPs a multiply-add. A row the head does not read stops at the last
    /// layer's attention: no o, gate, up or down there.
    @Test func decodingFlopsCountEveryProduct() {
        let model = LlamaModel(config: AdapterTests.smolLM2)
        let attention: Double = 2 * 576 * 576 + 2 * 576 * 192, mlp: Double = 3 * 576 * 1536
        let layer: Double = 2 * (attention + mlp), head: Double = 2 * 49152 * 576
        let stopped: Double = 2 * (576 * 576 + mlp)
        #expect(model.decodingFlops(layerRows: 1, headRows: 1) == 30 * layer + head)
        #expect(model.decodingFlops(layerRows: 1, headRows: 0) == 30 * layer - stopped)
        let both: Double = 497 * 30 * layer - (497 - 289) * stopped + 289 * head
        #expect(model.decodingFlops(layerRows: 497, headRows: 289) == both)
        let every = LlamaNetwork.lastLayerRows.withoutIt { model.decodingFlops(layerRows: 497, headRows: 289) }
        #expect(every == 497 * 30 * layer + 289 * head)
    }

    @Test func aProposedStopTokenTakesNoRow() throws {
        let (dir, lm, network) = try Self.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let prompts: [[Int32]] = [[1, 2, 3, 4], [1, 2, 3, 9, 10], [1, 2, 3, 5], [1, 2, 3, 7]]
        let maxTokens = 12
        let greedy = prompts.map { network.generateGreedy(prompt: $0, maxTokens: maxTokens, context: ctx) }
        let stop = greedy[0][5]
        let answers = greedy.map { g in Array(g.prefix(g.firstIndex(of: stop).map { $0 + 1 } ?? g.count)) }
        #expect(answers[0].last == stop && answers[0].count <= 6)
        let generator = CachedGenerator(network: network, maxBatch: prompts.count, maxLength: 8 + maxTokens, context: ctx)
        #expect(generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [stop], recent: answers) == answers)
        #expect(generator.passes == 1, "\(generator.passes) passes")
        // An answer cut by the token limit gets its last token from the row
        // before it too (the proposal leaves room for it), so every answer
        // costs its length less one.
        let shared = CachedGenerator.sharedPrefixLength(prompts)
        #expect(shared == 3)
        let expected = shared + prompts.map { $0.count - shared }.reduce(0, +) + answers.map { $0.count - 1 }.reduce(0, +)
        #expect(generator.layerRows == expected, "\(generator.layerRows) rows, \(expected) expected")
        // The head runs over each answer's rows: the prompt's last and every answer token's but the last.
        #expect(generator.headRows == answers.map(\.count).reduce(0, +), "\(generator.headRows) head rows")
        // A call that decodes nothing counts nothing.
        #expect(generator.generate(prompts: prompts, maxNewTokens: 0, stopTokens: [stop]) == Array(repeating: [], count: prompts.count))
        #expect(generator.passes == 0 && generator.layerRows == 0 && generator.headRows == 0)
        // A wrong proposal with a stop token in it still gives greedy output.
        let wrong = answers.map { [stop] + $0 }
        #expect(generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [stop], drafts: wrong, recent: wrong) == answers)
    }

    /// Speculative decoding from drafts is exact: right, wrong, partly right
    /// and repeating drafts, with and without stop tokens, give greedy output.
    @Test func draftsNeverChangeTheOutput() throws {
        let (dir, lm, network) = try Self.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let prompts: [[Int32]] = [[1, 2, 3, 4], [1, 2, 3, 9, 10], [1, 2, 3, 5], [7]]
        let maxTokens = 40
        let greedy = prompts.map { network.generateGreedy(prompt: $0, maxTokens: maxTokens, context: ctx) }
        let generator = CachedGenerator(network: network, maxBatch: prompts.count, maxLength: 8 + maxTokens, context: ctx)
        let right = greedy
        let wrong = greedy.map { $0.map { ($0 + 1) % 1000 } }
        let partly = greedy.map { Array($0.prefix(5)) + [999] + Array($0.dropFirst(6)) }
        let repeating = greedy.map { Array($0.prefix(3)) + Array($0.prefix(3)) + Array($0.prefix(3)) }
        for (name, drafts) in [("right", right), ("wrong", wrong), ("partly", partly), ("repeating", repeating), ("some", [right[0]]),
                               ("none", [])] {
            #expect(generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [], drafts: drafts) == greedy, "\(name)")
            let stop = greedy[1][7]
            let stopped = generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [stop], drafts: drafts)
            for (b, output) in stopped.enumerated() {
                let cut = greedy[b].firstIndex(of: stop).map { $0 + 1 } ?? greedy[b].count
                #expect(output == Array(greedy[b].prefix(cut)), "\(name), stop, sequence \(b)")
            }
        }
        // What a sequence said last time, right or not, never changes the output either.
        for (name, recent) in [("right", right), ("wrong", wrong), ("partly", partly), ("short", greedy.map { Array($0.prefix(3)) })] {
            for (draftName, drafts) in [("no drafts", [[Int32]]()), ("wrong drafts", wrong)] {
                let outputs = generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [], drafts: drafts, recent: recent)
                #expect(outputs == greedy, "recent \(name), \(draftName)")
            }
        }
        // Right, it is verified in the pass that runs the prompts: the 40
        // tokens of each answer take that one pass. The loops of this random
        // model alone take more.
        _ = generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [], recent: right)
        #expect(generator.passes == 1, "\(generator.passes) passes with the right recent answers")
        _ = generator.generate(prompts: prompts, maxNewTokens: maxTokens, stopTokens: [])
        #expect(generator.passes > 3, "\(generator.passes) passes from loops alone")
        // The longest suffix of the output found in a text, the first text
        // that has it, its last occurrence there.
        #expect(CachedGenerator.lookup([1, 6, 7], in: [[5, 6, 7, 8, 9]], limit: 10) == [8, 9])
        #expect(CachedGenerator.lookup([1, 6, 7], in: [[7, 1], [5, 6, 7, 8, 9]], limit: 10) == [8, 9])
        #expect(CachedGenerator.lookup([1, 6, 7], in: [[7, 1], [5, 6, 7, 8, 9]], limit: 10, longest: 1) == [1])
        #expect(CachedGenerator.lookup([1, 2], in: [[9, 2, 3], [1, 2, 4]], limit: 10) == [4])
        #expect(CachedGenerator.lookup([2], in: [[2, 3, 2, 5, 6]], limit: 1) == [5])
        // An occurrence at a text's end has nothing to propose; the output's own earlier tokens do.
        #expect(CachedGenerator.lookup([4, 8], in: [[5, 6, 7, 8]], limit: 10) == [])
        #expect(CachedGenerator.lookup([8, 3, 8], in: [[5, 6, 7, 8], [8, 3, 8]], limit: 10) == [3, 8])
        #expect(CachedGenerator.lookup([], in: [[5, 6]], limit: 10) == [])
        #expect(CachedGenerator.lookup([5], in: [[5, 6]], limit: 0) == [])
        #expect(CachedGenerator.loopProposal([1, 2, 3, 1, 2, 3], limit: 5) == [1, 2, 3, 1, 2])
        #expect(CachedGenerator.loopProposal([4, 7, 7, 7, 7], limit: 3) == [7, 7, 7])
        #expect(CachedGenerator.loopProposal([4, 7, 7, 7], limit: 3) == [])
        #expect(CachedGenerator.loopProposal([9, 1, 2, 3, 5, 1, 2, 3], limit: 6) == [5, 1, 2, 3, 5, 1])
        #expect(CachedGenerator.loopProposal([1, 2, 3, 4, 5], limit: 4) == [])
        #expect(CachedGenerator.loopProposal([7, 7, 7, 7], limit: 0) == [])
    }

    /// A sequence that repeats itself is decoded in fewer passes than tokens
    /// (its loop proposes the repeats), with greedy decoding's output.
    @Test func loopsAreDecodedInFewPasses() throws {
        let (dir, lm, network) = try Self.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let maxTokens = 48
        // Greedy continuations of a random model: find one that loops.
        let candidates = (1..<60).map { [Int32($0), Int32(($0 * 7) % 50 + 1)] }
        let outputs = candidates.map { network.generateGreedy(prompt: $0, maxTokens: maxTokens, context: ctx) }
        // Periodic from token 12 on, with a period of at most 6.
        func loopsEarly(_ o: [Int32]) -> Bool { o.count == maxTokens && (1...6).contains { p in (12..<maxTokens).allSatisfy { o[$0] == o[$0 - p] } } }
        let looping = try #require(outputs.firstIndex(where: loopsEarly), "no looping continuation")
        let generator = CachedGenerator(network: network, maxBatch: 2, maxLength: 2 + maxTokens, context: ctx)
        #expect(generator.generate(prompts: [candidates[looping]], maxNewTokens: maxTokens, stopTokens: []) == [outputs[looping]])
        #expect(generator.passes < maxTokens / 2, "\(generator.passes) passes for a looping answer of \(maxTokens) tokens")
    }

    @Test func factEvaluationReportsEveryQuestion() throws {
        let lm = try LanguageModel.load(try TestPaths.model("smollm2-135m-instruct"))
        let embedder = try SentenceEmbedder.load(try TestPaths.model("all-minilm-l6-v2"))
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        var evaluator = FactEvaluator(model: lm, embedder: embedder, dataset: dataset)
        evaluator.maxNewTokens = 12
        evaluator.heldOut = try lm.encode(String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("data/heldout.txt"), encoding: .utf8))
        let ctx = ComputeContext(threads: 2)
        let network = lm.model.frozenNetwork()
        let report = try evaluator.evaluate(network, context: ctx)
        let first = evaluator.lastDecoding
        // The second evaluation decodes from the first's answers: the same
        // answers, in one pass of at most the prompts and 11 tokens an answer.
        let again = try evaluator.evaluate(network, context: ctx)
        #expect(again.questions.map(\.answer) == report.questions.map(\.answer))
        let prompts = try report.questions.map { try lm.encode(lm.template.render(messages: [.user($0.question)], addGenerationPrompt: true), parseSpecial: true) }
        #expect(evaluator.lastDecoding.passes == 1 && first.passes > 1, "\(first.passes), then \(evaluator.lastDecoding.passes) passes")
        let shared = CachedGenerator.sharedPrefixLength(prompts)
        #expect(shared > 10, "the chat template's system turn: \(shared) tokens")
        let rows = evaluator.lastDecoding.layerRows
        #expect(rows <= shared + prompts.map { $0.count - shared }.reduce(0, +) + 12 * 11 && first.layerRows > rows, "\(first.layerRows), then \(rows) rows")
        #expect(report.questions.count == 12)
        #expect(report.questions.filter(\.paraphrase).count == 6)
        let mean = report.questions.map(\.similarity).reduce(0, +) / 12
        #expect(abs(report.accuracy - mean) < 1e-6)
        #expect(report.accuracy > 0 && report.accuracy < 0.9, "an untrained model does not know Talvi Orsenko: \(report.accuracy)")
        #expect(report.keyMatch == 0)
        let perplexity = try #require(report.perplexity)
        #expect(perplexity > 1 && perplexity < 100, "perplexity of plain English \(perplexity)")
        // A trial's baseline measures it alone, in the evaluator's kept activations: the same value as in fresh ones.
        let heldOut = try #require(evaluator.heldOut)
        #expect(evaluator.perplexity(network, context: ctx) == perplexity)
        #expect(Perplexity.measure(network, tokens: heldOut, context: ctx) == perplexity)
        // The score of each answer is the embedder's cosine with the reference.
        let q = report.questions[0]
        #expect(abs(q.similarity - embedder.cosineSimilarity(q.answer, q.reference, context: ctx)) < 1e-5)
    }
}

@Suite struct DatasetTests {
    @Test func synthesizedBiographiesAreSeededValidAndDistinct() throws {
        let a = BiographySynthesizer(seed: 3).facts(people: 20)
        #expect(a == BiographySynthesizer(seed: 3).facts(people: 20))
        #expect(a != BiographySynthesizer(seed: 4).facts(people: 20))
        #expect(a.count == 120)
        #expect(Set(a.map(\.question)).count == 120)
        for fact in a { #expect(fact.answer.contains(try #require(fact.key))) }
        // Round trip through the JSON Lines reader.
        let text = try FactDataset(facts: a).jsonLines()
        #expect(try FactDataset.parse(Data(text.utf8), origin: "synth").facts == a)
    }

    @Test func badLinesAreNamed() {
        let cases: [(String, String)] = [
            ("{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"}", "x.jsonl:2: missing field \"answer\""),
            ("{\"question\": \"q\", \"answer\": \"a\", \"extra\": 1}", "x.jsonl:1: unknown field \"extra\""),
            ("not json", "x.jsonl:1: invalid JSON"),
            ("{\"question\": \"\", \"answer\": \"a\"}", "x.jsonl:1: field \"question\" is empty"),
            ("{\"question\": \"q\", \"answer\": \"a\", \"eval_questions\": \"p\"}", "x.jsonl:1: field \"eval_questions\""),
            ("\n\n", "x.jsonl: no facts"),
        ]
        for (text, message) in cases {
            #expect { try FactDataset.parse(Data(text.utf8), origin: "x.jsonl") } throws: { "\($0)".hasPrefix(message) }
        }
        var invalid = Data("{\"question\": \"q\", \"answer\": \"".utf8)
        invalid.append(0xFF)
        invalid.append(contentsOf: Array("\"}".utf8))
        #expect { try FactDataset.parse(invalid, origin: "x.jsonl") } throws: { "\($0)" == "x.jsonl:1: invalid UTF-8" }
    }
}
