// CachedGeneration: batched greedy generation with a key/value cache. The
// prompts go through the ordinary forward pass once (prefill), their keys and
// values are kept, and each further step runs one token per sequence.

/// Greedy decoding of several prompts at once over one network.
public final class CachedGenerator: @unchecked Sendable {
    public let network: LlamaNetwork
    public let maxBatch: Int
    /// Longest prompt plus new tokens the cache holds.
    public let maxLength: Int
    private let context: ComputeContext
    private let arena: FloatArena
    private let keys: [FloatPointer]  // per layer (B, maxLength, K)
    private let values: [FloatPointer]  // per layer (B, maxLength, K)
    private let x, normOut, rstd, q, k, v, attnOut, tmp, gate, up, act, logits, scores: FloatPointer
    private let adapters: [[ProjectionActivations]]
    private let scratch: ProjectionScratch
    private let rope: RopeTable

    public init(network: LlamaNetwork, maxBatch: Int, maxLength: Int, context: ComputeContext) {
        self.network = network
        self.maxBatch = maxBatch
        self.maxLength = maxLength
        self.context = context
        let c = network.config, B = maxBatch, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let projections = network.layers.flatMap(\.projections)
        let maxRank = projections.map { p -> Int in if case let .lora(l)? = p.adapter { return l.rank } else { return 0 } }.max() ?? 0
        let tiles = projections.map { $0.weight.tileFloats(threads: context.threads) }.max() ?? 0
        let adapterSizes = projections.flatMap { ProjectionActivations.sizes(for: $0, rows: B) }
        let sizes = Array(repeating: B * maxLength * K, count: 2 * c.layerCount)
            + [B * C, B * C, B, B * Q, B * K, B * K, B * Q, B * C, B * F, B * F, B * F, B * c.vocabularySize, context.threads * maxLength]
            + adapterSizes + [B * max(C, Q, F), B * maxRank, tiles]
        arena = FloatArena(capacity: FloatArena.size(for: sizes))
        keys = (0..<c.layerCount).map { [arena] _ in FloatPointer(arena.take(B * maxLength * K)) }
        values = (0..<c.layerCount).map { [arena] _ in FloatPointer(arena.take(B * maxLength * K)) }
        let arena = self.arena
        func take(_ n: Int) -> FloatPointer { FloatPointer(arena.take(n)) }
        x = take(B * C); normOut = take(B * C); rstd = take(B); q = take(B * Q); k = take(B * K); v = take(B * K)
        attnOut = take(B * Q); tmp = take(B * C); gate = take(B * F); up = take(B * F); act = take(B * F)
        logits = take(B * c.vocabularySize); scores = take(context.threads * maxLength)
        adapters = network.layers.map { [arena] layer in layer.projections.map { ProjectionActivations(for: $0, rows: B, arena: arena) } }
        scratch = ProjectionScratch(wide: take(B * max(C, Q, F)), narrow: take(B * maxRank), tiles: take(tiles))
        rope = RopeTable(headDimension: c.headDimension, positions: maxLength, theta: c.ropeTheta, scaling: c.ropeScaling)
    }

    /// The greedy continuation of each prompt: up to `maxNewTokens` ids each,
    /// ending after the first id in `stopTokens` (which is included).
    public func generate(prompts: [[Int32]], maxNewTokens: Int, stopTokens: Set<Int32>) -> [[Int32]] {
        let B = prompts.count
        precondition(B <= maxBatch && prompts.allSatisfy { !$0.isEmpty && $0.count + maxNewTokens <= maxLength },
                     "prompts exceed the generator's capacity")
        guard B > 0, maxNewTokens > 0 else { return Array(repeating: [], count: B) }
        var next = prefill(prompts)
        var outputs = next.map { [$0] }
        // A sequence is done at a stop token or at maxNewTokens; finished ones
        // still ride along in the batch (their outputs no longer change).
        var done = next.map { stopTokens.contains($0) || maxNewTokens == 1 }
        var positions = prompts.map { Int32($0.count) }
        while done.contains(false) {
            next = step(tokens: next, positions: positions)
            for b in 0..<B where !done[b] {
                outputs[b].append(next[b])
                done[b] = stopTokens.contains(next[b]) || outputs[b].count == maxNewTokens
            }
            for b in 0..<B where !done[b] { positions[b] += 1 }
        }
        return outputs
    }

    /// Runs the prompts through the training forward pass, keeps their keys
    /// and values, and returns each prompt's first greedy token.
    private func prefill(_ prompts: [[Int32]]) -> [Int32] {
        let c = network.config, B = prompts.count, T = prompts.map(\.count).max() ?? 1, K = c.kvWidth
        var tokens = [Int32](repeating: 0, count: B * T)
        for (b, p) in prompts.enumerated() { for (t, id) in p.enumerated() { tokens[b * T + t] = id } }
        let batch = TokenBatch(batchSize: B, seqLen: T, tokens: tokens, targets: Array(repeating: TokenBatch.ignore, count: B * T))
        let acts = LlamaActivations(network: network, maxBatch: B, maxSeq: T, maxRows: B, threads: context.threads)
        let rows = prompts.enumerated().map { b, p in b * T + p.count - 1 }
        let result = network.logits(batch, outputRows: rows, acts, context: context)
        for l in 0..<c.layerCount {
            for (b, p) in prompts.enumerated() {
                (keys[l].base + b * maxLength * K).update(from: acts.layers[l].k.base + b * T * K, count: p.count * K)
                (values[l].base + b * maxLength * K).update(from: acts.layers[l].v.base + b * T * K, count: p.count * K)
            }
        }
        return (0..<B).map { argmax(result, row: $0, width: c.vocabularySize) }
    }

    /// One token per sequence at its own position; returns the next tokens.
    private func step(tokens: [Int32], positions: [Int32]) -> [Int32] {
        let c = network.config, B = tokens.count, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let hd = c.headDimension, group = c.headCount / c.kvHeadCount, scale = 1 / Float(hd).squareRoot()
        var rng = SeededGenerator(seed: 0)
        tokens.withUnsafeBufferPointer { ids in
            guard let base = ids.baseAddress else { return }
            embeddingForward(x, tokens: base, table: network.embed, n: B, c: C)
        }
        positions.withUnsafeBufferPointer { positionBuffer in
            guard let pos = positionBuffer.baseAddress else { return }
            for (l, w) in network.layers.enumerated() {
                let saved = adapters[l]
                rmsNormForward(normOut, rstd: rstd, x, weight: w.attnNorm, n: B, c: C, eps: c.rmsNormEps, context: context)
                projectionForward(w.q, out: q, inp: normOut, n: B, saved: saved[0], scratch: scratch, rng: &rng, context: context)
                projectionForward(w.k, out: k, inp: normOut, n: B, saved: saved[1], scratch: scratch, rng: &rng, context: context)
                projectionForward(w.v, out: v, inp: normOut, n: B, saved: saved[2], scratch: scratch, rng: &rng, context: context)
                ropeForward(q, table: rope, positions: pos, rows: B, heads: c.headCount, rowStride: Q, context: context)
                ropeForward(k, table: rope, positions: pos, rows: B, heads: c.kvHeadCount, rowStride: K, context: context)
                let cacheK = keys[l], cacheV = values[l]
                for b in 0..<B {
                    (cacheK.base + (b * maxLength + Int(pos[b])) * K).update(from: k.base + b * K, count: K)
                    (cacheV.base + (b * maxLength + Int(pos[b])) * K).update(from: v.base + b * K, count: K)
                }
                let maxLength = self.maxLength, q = self.q, attnOut = self.attnOut, scores = self.scores
                context.withSingleThreadedBLAS {
                    context.parallelChunks(B * c.headCount) { chunk, units in
                        let s = scores.base + chunk * maxLength
                        for unit in units {
                            let b = unit / c.headCount, h = unit % c.headCount, kvh = h / group, length = Int(pos[b]) + 1
                            let kh = cacheK.base + b * maxLength * K + kvh * hd, vh = cacheV.base + b * maxLength * K + kvh * hd
                            // scores (1, length) = q_h · Kᵀ · scale; softmax; out = scores · V
                            gemm(transA: false, transB: true, m: 1, n: length, k: hd, alpha: scale,
                                 a: q.base + b * Q + h * hd, lda: hd, b: kh, ldb: K, beta: 0, c: s, ldc: length)
                            softmaxInPlace(s, count: length)
                            gemm(transA: false, transB: false, m: 1, n: hd, k: length,
                                 a: s, lda: length, b: vh, ldb: K, beta: 0, c: attnOut.base + b * Q + h * hd, ldc: hd)
                        }
                    }
                }
                projectionForward(w.o, out: tmp, inp: attnOut, n: B, saved: saved[3], scratch: scratch, rng: &rng, context: context)
                add(x, tmp, count: B * C, context: context)
                rmsNormForward(normOut, rstd: rstd, x, weight: w.mlpNorm, n: B, c: C, eps: c.rmsNormEps, context: context)
                projectionForward(w.gate, out: gate, inp: normOut, n: B, saved: saved[4], scratch: scratch, rng: &rng, context: context)
                projectionForward(w.up, out: up, inp: normOut, n: B, saved: saved[5], scratch: scratch, rng: &rng, context: context)
                swigluForward(act, gate: gate, up: up, count: B * F, context: context)
                projectionForward(w.down, out: tmp, inp: act, n: B, saved: saved[6], scratch: scratch, rng: &rng, context: context)
                add(x, tmp, count: B * C, context: context)
            }
        }
        rmsNormForward(normOut, rstd: rstd, x, weight: network.finalNorm, n: B, c: C, eps: c.rmsNormEps, context: context)
        linearForward(logits.base, normOut.base, network.lmHead.base, n: B, inDim: C, outDim: c.vocabularySize)
        let all = UnsafeBufferPointer(start: logits.base, count: B * c.vocabularySize)
        return (0..<B).map { argmax(all, row: $0, width: c.vocabularySize) }
    }

    private func argmax<C: Collection>(_ values: C, row: Int, width: Int) -> Int32 where C.Element == Float, C.Index == Int {
        let start = values.startIndex + row * width
        var best = start
        for i in start..<(start + width) where values[i] > values[best] { best = i }
        return Int32(best - start)
    }
}
