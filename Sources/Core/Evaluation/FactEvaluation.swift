// FactEvaluation: the study's accuracy — ask every question (and its
// paraphrases), generate the answer greedily, and score it by the cosine
// similarity of its all-MiniLM-L6-v2 embedding to the reference answer's.
import Foundation
import Trial

/// What one evaluation's decoding ran (`FactEvaluator.lastDecoding`).
public struct Decoding: Sendable, Equatable {
    /// Passes over the layers, prefill included.
    public var passes = 0
    /// Rows run through the layers (the shared prefix once).
    public var layerRows = 0
    /// Rows run through the output head.
    public var headRows = 0

    public init(passes: Int = 0, layerRows: Int = 0, headRows: Int = 0) {
        self.passes = passes; self.layerRows = layerRows; self.headRows = headRows
    }
}

/// Evaluates a trained network on a fact dataset. Buffers (KV cache,
/// activations) are made at the first evaluation of a network and reused.
public struct FactEvaluator: Sendable {
    public let model: LanguageModel
    public let embedder: SentenceEmbedder
    public let dataset: FactDataset
    public var threshold: Float = 0.9
    /// Most tokens generated per answer; nil: twice the longest reference
    /// answer plus 8 (an answer far longer than the reference scores poorly anyway).
    public var maxNewTokens: Int?
    private let buffers = EvaluationBuffers()
    /// Also ask each fact's `eval_questions`.
    public var paraphrases = true
    /// Token ids of the held-out text for perplexity (nil: not measured).
    public var heldOut: [Int32]?
    /// Decode from the previous evaluation's answers (the output is the same
    /// either way; off only to measure what it saves).
    public var proposesPreviousAnswers = true

    /// Passes over the layers, rows through them and rows through the output
    /// head of the last evaluation's decoding (zeros before the first): its
    /// cost counted rather than timed, for the evaluation bench.
    public var lastDecoding: Decoding { buffers.lastDecoding }

    public init(model: LanguageModel, embedder: SentenceEmbedder, dataset: FactDataset) {
        self.model = model; self.embedder = embedder; self.dataset = dataset
    }

    /// Perplexity of `network` on `heldOut` (nil without it), in activations
    /// made at the first measure and reused: a trial's baseline and every
    /// epoch's evaluation share them (made afresh, their first touch of the
    /// memory took longer than the measure on a VM).
    public func perplexity(_ network: LlamaNetwork, context: ComputeContext) -> Float? {
        guard let heldOut else { return nil }
        let activations = buffers.perplexity(network, tokens: heldOut.count, context: context)
        return Perplexity.measure(network, tokens: heldOut, activations: activations, context: context)
    }

    /// The questions asked, in order, with their facts.
    var questions: [(question: String, paraphrase: Bool, fact: Fact)] {
        dataset.facts.flatMap { fact in
            [(fact.question, false, fact)] + (paraphrases ? (fact.evalQuestions ?? []).map { ($0, true, fact) } : [])
        }
    }

    /// Generates every answer in one batch (KV cache) and scores it.
    public func evaluate(_ network: LlamaNetwork, context: ComputeContext) throws -> EvaluationReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let asked = questions
        let prompts = try asked.map { q in
            try model.encode(model.template.render(messages: [.user(q.question)], addGenerationPrompt: true), parseSpecial: true)
        }
        let longest = prompts.map(\.count).max() ?? 0
        let longestAnswer = try dataset.facts.map { try model.encode($0.answer).count + 1 }.max() ?? 0
        let limit = maxNewTokens ?? (2 * longestAnswer + 8)
        let generator = buffers.generator(network, batch: prompts.count, length: longest + limit, context: context)
        let stops = model.stopTokens
        // The reference answers, as trained, are the drafts of speculative
        // decoding: exact greedy output, one pass per answer once it is learned.
        let drafts = try asked.map { try model.encode($0.fact.answer, parseSpecial: false) + [model.template.endOfTurnTokenId] }
        // What the network answered at the previous evaluation is the first
        // source of proposals: between epochs most answers do not change.
        let recent = proposesPreviousAnswers ? buffers.recentOutputs(prompts: prompts, limit: limit) : []
        let outputs = generator.generate(prompts: prompts, maxNewTokens: limit, stopTokens: stops, drafts: drafts, recent: recent)
        let decoding = Decoding(passes: generator.passes, layerRows: generator.layerRows, headRows: generator.headRows)
        buffers.remember(prompts: prompts, limit: limit, outputs: outputs, decoding: decoding)
        let answers = outputs.map { ids in
            model.tokenizer.decode(ids.filter { !stops.contains($0) }, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // The judge embeds in f32 whatever the trial's precision, so that an answer scores the same in both.
        let (embeddings, references) = ProductPrecision.run(.f32) {
            (embedder.embed(answers, context: context), buffers.references(asked.map(\.fact.answer)) { embedder.embed($0, context: context) })
        }
        var results: [QuestionResult] = []
        for (i, q) in asked.enumerated() {
            let similarity = SentenceEmbedder.cosine(embeddings[i], references[i])
            let key = q.fact.key.map { answers[i].lowercased().contains($0.lowercased()) }
            results.append(QuestionResult(question: q.question, paraphrase: q.paraphrase, reference: q.fact.answer,
                                          answer: answers[i], similarity: similarity, keyMatch: key))
        }
        let n = Float(max(1, results.count))
        let keyed = results.compactMap(\.keyMatch)
        var report = EvaluationReport(
            accuracy: results.map(\.similarity).reduce(0, +) / n,
            accuracyAtThreshold: Float(results.filter { $0.similarity >= threshold }.count) / n,
            threshold: threshold,
            keyMatch: keyed.isEmpty ? nil : Float(keyed.filter { $0 }.count) / Float(keyed.count),
            perplexity: nil, seconds: 0, questions: results)
        let answered = DispatchTime.now().uptimeNanoseconds
        report.questionSeconds = Double(answered - start) * 1e-9
        report.perplexity = perplexity(network, context: context)
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        return report
    }
}

/// Reused generator and activations of one evaluator (made for the first
/// network evaluated; a different network gets new ones).
final class EvaluationBuffers: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: (network: UnsafeMutablePointer<Float>, generator: CachedGenerator)?
    private var perplexityActs: (network: UnsafeMutablePointer<Float>, acts: LlamaActivations)?
    private var referenceEmbeddings: (texts: [String], embeddings: [[Float]])?
    private var recent: (prompts: [[Int32]], limit: Int, outputs: [[Int32]])?
    private var decoding = Decoding()

    /// The answers of the previous evaluation of the same prompts with the
    /// same token limit (none at the first): drafts for this one.
    func recentOutputs(prompts: [[Int32]], limit: Int) -> [[Int32]] {
        lock.lock()
        defer { lock.unlock() }
        guard let r = recent, r.prompts == prompts, r.limit == limit else { return [] }
        return r.outputs
    }

    /// Keeps an evaluation's answers (the next one's proposals) and what its decoding ran.
    func remember(prompts: [[Int32]], limit: Int, outputs: [[Int32]], decoding: Decoding) {
        lock.lock()
        defer { lock.unlock() }
        recent = (prompts, limit, outputs)
        self.decoding = decoding
    }

    /// The reference answers' embeddings: the same at every evaluation, so made once.
    func references(_ texts: [String], embed: ([String]) -> [[Float]]) -> [[Float]] {
        lock.lock()
        defer { lock.unlock() }
        if let r = referenceEmbeddings, r.texts == texts { return r.embeddings }
        let embeddings = embed(texts)
        referenceEmbeddings = (texts, embeddings)
        return embeddings
    }

    var lastDecoding: Decoding {
        lock.lock()
        defer { lock.unlock() }
        return decoding
    }

    func generator(_ network: LlamaNetwork, batch: Int, length: Int, context: ComputeContext) -> CachedGenerator {
        lock.lock()
        defer { lock.unlock() }
        // A generator runs on the context it was made with: one for another thread count is made anew.
        if let c = cached, c.network == network.embed.base, c.generator.maxBatch >= batch, c.generator.maxLength >= length,
           c.generator.context.threads == context.threads { return c.generator }
        let g = CachedGenerator(network: network, maxBatch: batch, maxLength: length, context: context)
        cached = (network.embed.base, g)
        return g
    }

    func perplexity(_ network: LlamaNetwork, tokens: Int, context: ComputeContext) -> LlamaActivations {
        lock.lock()
        defer { lock.unlock() }
        let window = min(Perplexity.window, max(1, tokens - 1))
        if let p = perplexityActs, p.network == network.embed.base, p.acts.maxSeq >= window, p.acts.threads >= context.threads { return p.acts }
        let acts = LlamaActivations(network: network, maxBatch: 1, maxSeq: window, threads: context.threads)
        perplexityActs = (network.embed.base, acts)
        return acts
    }
}

/// Perplexity of a network on a token sequence: exp of the mean next-token
/// cross-entropy, over windows of at most `window` tokens.
public enum Perplexity {
    public static let window = 256

    public static func measure(_ network: LlamaNetwork, tokens: [Int32], context: ComputeContext) -> Float {
        let acts = LlamaActivations(network: network, maxBatch: 1, maxSeq: min(window, max(1, tokens.count - 1)), threads: context.threads)
        return measure(network, tokens: tokens, activations: acts, context: context)
    }

    public static func measure(_ network: LlamaNetwork, tokens: [Int32], activations acts: LlamaActivations, context: ComputeContext) -> Float {
        guard tokens.count >= 2 else { return .nan }
        let window = acts.maxSeq
        var totalLoss: Double = 0, counted = 0
        var start = 0
        while start < tokens.count - 1 {
            let end = min(tokens.count, start + window + 1)
            let input = Array(tokens[start..<(end - 1)]), targets = Array(tokens[(start + 1)..<end])
            let batch = TokenBatch(batchSize: 1, seqLen: input.count, tokens: input, targets: targets)
            let loss = network.inferenceLoss(batch, acts, context: context)
            totalLoss += Double(loss) * Double(targets.count)
            counted += targets.count
            start = end - 1
        }
        return Float(exp(totalLoss / Double(counted)))
    }
}
