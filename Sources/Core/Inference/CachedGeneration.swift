// CachedGeneration: batched greedy generation with a key/value cache. Every
// token goes through one routine, `extendVerifying`, which appends a chunk of
// tokens per sequence to the cache and returns the greedy token after each
// position that needs one: the first pass's chunk is the rest of a prompt,
// each later one the last token generated, each followed by a proposed
// continuation. Prompts that open alike (a chat template's system turn) run
// their common prefix once, in the first pass's first rows, and share its
// cache rows (a pass of its own would read every weight once more for ~24
// rows: 50–100 ms of a 0.7–1 s evaluation).
//
// Decoding is speculative: a sequence feeds its last token plus a proposed
// continuation in one chunk — from what it said the last time it was asked
// (the previous evaluation's answer), its draft (the reference answer, at
// evaluation), its own loop, or what follows its last few tokens in any of
// these texts or another sequence's — keeps the proposed tokens as far as
// they equal the greedy choice at each position, and adds the greedy token
// after them (a proposed stop token takes no row: nothing follows it). The output is exactly greedy decoding's; a model
// that has learned its answers needs one pass for a whole answer instead of
// one per token. A pass's rows are packed: a sequence adds only its own
// tokens, and a finished one none.
//
// The projections run in inference mode (no LoRA dropout, nothing saved for
// backward); attention over the cache is `cachedAttentionForward` in Ops/.

/// Greedy decoding of several prompts at once over one network.
public final class CachedGenerator: @unchecked Sendable {
    public let network: LlamaNetwork
    public let maxBatch: Int
    /// Longest prompt plus new tokens the cache holds.
    public let maxLength: Int
    /// Tokens per sequence that one pass takes; longer chunks run in pieces
    /// (the cache makes pieces equivalent to one pass). A prompt's rest (~17
    /// tokens at evaluation) and a whole proposed answer fit in one. The
    /// prompts' shared prefix comes on top, in the first pass.
    static let pieceLength = 64
    let context: ComputeContext
    private let arena: FloatArena
    private let tensors: Tensors
    /// Rows of logits computed at once: the last tokens of B sequences, or a
    /// block of a verified chunk's positions.
    private let logitRows: Int
    private let rowCapacity: Int
    private let rope: RopeTable
    /// Passes over the layers the last `generate` made (prefill included):
    /// what speculation saves shows here.
    public private(set) var passes = 0
    /// Rows the last `generate` ran through the layers (the shared prefix
    /// once): the FLOPs of decoding, near enough, in rows.
    public private(set) var layerRows = 0
    /// Rows the last `generate` ran through the output head: those whose
    /// next token was wanted.
    public private(set) var headRows = 0

    /// The generator's tensors, all in `arena`. R = B · pieceLength +
    /// maxLength rows: a pass's rows are packed, the shared prefix's first
    /// (first pass only), then each sequence's after the one before; a
    /// sequence with nothing to add (finished) has none.
    private struct Tensors {
        let keys: [FloatPointer]  // per layer (B, maxLength, K)
        let values: [FloatPointer]  // per layer (B, maxLength, K)
        let x, normOut: FloatPointer  // (R, C)
        let rstd: FloatPointer  // (R)
        let q: FloatPointer  // (R, Q)
        let k, v: FloatPointer  // (R, K)
        let attnOut: FloatPointer  // (R, Q)
        let tmp: FloatPointer  // (R, C)
        let gate, up, act: FloatPointer  // (R, F)
        let logits: FloatPointer  // (logitRows, V)
        let scores: FloatPointer  // (threads, maxLength)
        /// Inference keeps no adapter activations: its intermediates live here.
        let scratch: ProjectionScratch
    }

    public init(network: LlamaNetwork, maxBatch: Int, maxLength: Int, context: ComputeContext) {
        self.network = network
        self.maxBatch = maxBatch
        self.maxLength = maxLength
        self.context = context
        let c = network.config, B = maxBatch, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let R = B * Self.pieceLength + maxLength
        rowCapacity = R
        let logitRows = max(B, 64)
        self.logitRows = logitRows
        let projections = network.layers.flatMap(\.projections)
        let maxRank = projections.map { p -> Int in if case let .lora(l)? = p.adapter { return l.rank } else { return 0 } }.max() ?? 0
        let tiles = projections.map { $0.weight.tileFloats(threads: context.threads) }.max() ?? 0
        let carved = FloatArena.carved { arena in
            let take = { (count: Int) in FloatPointer(arena.take(count)) }
            let keys = (0..<c.layerCount).map { _ in take(B * maxLength * K) }
            let values = (0..<c.layerCount).map { _ in take(B * maxLength * K) }
            return Tensors(
                keys: keys, values: values, x: take(R * C), normOut: take(R * C), rstd: take(R), q: take(R * Q), k: take(R * K),
                v: take(R * K), attnOut: take(R * Q), tmp: take(R * C), gate: take(R * F), up: take(R * F), act: take(R * F),
                logits: take(logitRows * c.vocabularySize),
                scores: take(context.threads * maxLength),
                scratch: ProjectionScratch(wide: take(R * max(C, Q, F)), narrow: take(R * maxRank), tiles: take(tiles)))
        }
        arena = carved.arena
        tensors = carved.tensors
        rope = RopeTable(headDimension: c.headDimension, positions: maxLength, theta: c.ropeTheta, scaling: c.ropeScaling)
    }

    /// The greedy continuation of each prompt: up to `maxNewTokens` ids each,
    /// ending after the first id in `stopTokens` (which is included).
    /// `drafts[b]`, when given, is what sequence b is expected to say (its
    /// reference answer), and `recent[b]` what it said the last time it was
    /// generated (the previous evaluation's answer, with its stop token): both
    /// only make decoding faster when right.
    public func generate(prompts: [[Int32]], maxNewTokens: Int, stopTokens: Set<Int32>, drafts: [[Int32]] = [],
                         recent: [[Int32]] = []) -> [[Int32]] {
        let B = prompts.count
        precondition(B <= maxBatch && prompts.allSatisfy { !$0.isEmpty && $0.count + maxNewTokens <= maxLength },
                     "prompts exceed the generator's capacity")
        passes = 0
        layerRows = 0
        headRows = 0
        guard B > 0, maxNewTokens > 0 else { return Array(repeating: [], count: B) }
        // The prefix runs in the first pass, ahead of the prompts' rests.
        var prefix = Array(prompts[0].prefix(Self.sharedPrefixLength(prompts)))
        let shared = prefix.count
        // Each sequence's tokens not yet in the cache: the rest of its prompt,
        // then the last token it generated; and where they go in the cache.
        var pending = prompts.map { Array($0.dropFirst(shared)) }
        var positions = [Int](repeating: shared, count: B)
        var outputs = [[Int32]](repeating: [], count: B)
        // A sequence is done at a stop token or at maxNewTokens; a finished one
        // takes no further part (its chunk is empty: no rows, no logits).
        var done = [Bool](repeating: false, count: B)
        // Tokens a sequence may propose next, per source (`ProposalSource`):
        // doubled while its proposals are taken whole, halved (to no fewer
        // than one) when one is refused outright. A pass's rows are packed, so
        // a refused proposal of k tokens costs k rows of a pass that runs
        // anyway — a few percent of a decoding step each — while an accepted
        // one saves a whole step per token. What a sequence said last time
        // starts at a whole piece: once the facts are learned it is the
        // answer, verified in the pass that runs the prompt.
        var budgets = [[ProposalSource: Int]](repeating: [.recent: Self.pieceLength, .draft: 8, .loop: 4, .lookup: 8], count: B)
        // Where a sequence that left its previous answer and its draft looks
        // for what comes next, in order of preference: its own texts, then
        // the other sequences' (an answer to a paraphrase often borrows a
        // phrase from another fact's answer, or from the answer to the
        // question it paraphrases).
        func texts(for b: Int) -> [[Int32]] {
            func of(_ o: Int) -> [[Int32]] {
                var texts: [[Int32]] = o == b ? [] : [outputs[o]]
                if o < recent.count { texts.append(recent[o]) }
                if o < drafts.count { texts.append(drafts[o]) }
                return o == b ? texts + [outputs[b]] : texts
            }
            return of(b) + (0..<B).filter { $0 != b }.flatMap(of)
        }
        while done.contains(false) {
            var sources = [ProposalSource](repeating: .loop, count: B)
            let proposals = (0..<B).map { b -> [Int32] in
                guard !done[b] else { return [] }
                // A proposal keeps the chunk within one piece, and leaves room for the greedy token after it.
                let room = min(maxNewTokens - outputs[b].count - 1, Self.pieceLength - pending[b].count)
                guard room > 0 else { return [] }
                func budget(_ source: ProposalSource) -> Int { min(budgets[b][source, default: 1], room) }
                if b < recent.count, outputs[b].count < recent[b].count, recent[b].starts(with: outputs[b]) {
                    sources[b] = .recent
                    return Array(recent[b][outputs[b].count...].prefix(budget(.recent)))
                }
                if b < drafts.count, outputs[b].count < drafts[b].count, drafts[b].starts(with: outputs[b]) {
                    sources[b] = .draft
                    return Array(drafts[b][outputs[b].count...].prefix(budget(.draft)))
                }
                let loop = Self.loopProposal(outputs[b], limit: budget(.loop))
                if !loop.isEmpty { return loop }
                sources[b] = .lookup
                return Self.lookup(outputs[b], in: texts(for: b), limit: budget(.lookup))
            }
            // A proposal's stop token is checked by the row before it and
            // needs no row of its own: once it stands, nothing follows. At an
            // evaluation whose answers are all proposed right, that is one row
            // per answer through every layer and the head (~2.5% of the pass).
            let rows = proposals.map { p -> ArraySlice<Int32> in
                guard let stop = p.firstIndex(where: stopTokens.contains) else { return p[...] }
                return p[..<stop]
            }
            let predicted = extendVerifying((0..<B).map { done[$0] ? [] : pending[$0] + rows[$0] }, at: positions,
                                            predictFrom: pending.map { $0.count - 1 }, prefix: prefix)
            prefix = []
            for b in 0..<B where !done[b] {
                // Proposed tokens stand while each is the greedy choice after
                // the one before, up to and including a stop token.
                let proposal = proposals[b].prefix(rows[b].count + 1)
                var accepted = 0
                while accepted < proposal.count, predicted[b][accepted] == proposal[proposal.startIndex + accepted] { accepted += 1 }
                // The greedy token after the accepted ones; none after a stop token.
                let next = accepted < predicted[b].count ? [predicted[b][accepted]] : []
                for token in proposal.prefix(accepted) + next where !done[b] {
                    outputs[b].append(token)
                    done[b] = stopTokens.contains(token) || outputs[b].count == maxNewTokens
                }
                positions[b] += pending[b].count + accepted
                pending[b] = Array(outputs[b].suffix(1))
                guard !proposal.isEmpty else { continue }
                let whole = accepted == proposal.count
                let n = budgets[b][sources[b], default: 1]
                budgets[b][sources[b]] = whole ? min(2 * n, Self.pieceLength) : accepted == 0 ? max(1, n / 2) : n
            }
        }
        return outputs
    }

    /// Where a sequence's proposal came from, each with its own budget.
    enum ProposalSource: Hashable { case recent, draft, loop, lookup }

    /// What follows the longest suffix of `output` (at most `longest`
    /// tokens) that occurs in one of `texts` with something after it: the
    /// tokens after its last occurrence in the first text that has one (at
    /// most `limit`), else nothing. Answers that change between evaluations
    /// mostly swap a word or two and go on as before, or go on as another
    /// answer does; the longer the match, the likelier the continuation.
    static func lookup(_ output: [Int32], in texts: [[Int32]], limit: Int, longest: Int = 8) -> [Int32] {
        guard limit > 0 else { return [] }
        for length in stride(from: min(longest, output.count), through: 1, by: -1) {
            let suffix = output[(output.count - length)...]
            for text in texts where text.count > length {
                for i in stride(from: text.count - length - 1, through: 0, by: -1) where text[i..<(i + length)] == suffix {
                    return Array(text[(i + length)...].prefix(limit))
                }
            }
        }
        return []
    }

    /// What a sequence caught in a loop says next if the loop goes on: when
    /// its last three tokens occurred earlier in `output`, the tokens that
    /// followed them there, repeated with the loop's period (at most `limit`).
    /// Small models decoding greedily often repeat a word or phrase until the
    /// token limit; this turns that tail into a few passes.
    static func loopProposal(_ output: [Int32], limit: Int) -> [Int32] {
        let n = output.count
        guard limit > 0, n >= 4 else { return [] }
        let tail = output[(n - 3)...]
        for i in stride(from: n - 4, through: 0, by: -1) where output[i..<(i + 3)] == tail {
            let period = n - 3 - i
            return (0..<limit).map { output[n - period + $0 % period] }
        }
        return []
    }

    /// The length of the prompts' common prefix, all but each prompt's last
    /// token at most: 0 for one prompt or when none is worth sharing.
    static func sharedPrefixLength(_ prompts: [[Int32]]) -> Int {
        var shared = (prompts.map(\.count).min() ?? 1) - 1
        for p in prompts.dropFirst() {
            shared = zip(p.prefix(shared), prompts[0].prefix(shared)).prefix { $0 == $1 }.count
        }
        return prompts.count > 1 && shared > 1 ? shared : 0
    }

    /// Appends `chunks[b]` to sequence b's cache at positions `start[b]…`, a
    /// piece of at most `pieceLength` tokens per sequence per pass, and
    /// returns the greedy next token after each of chunk b's tokens from
    /// index `predictFrom[b]` on (none for an empty chunk: that sequence sits
    /// the pass out). Sequences 0..<chunks.count take part; chunks may differ
    /// in length. `prefix`, when not empty, is every sequence's positions
    /// 0..<prefix.count, run in the first piece's pass (chunks then start
    /// after it).
    private func extendVerifying(_ chunks: [[Int32]], at start: [Int], predictFrom: [Int], prefix: [Int32] = []) -> [[Int32]] {
        let c = network.config, C = c.hiddenSize, V = c.vocabularySize, t = tensors, T = Self.pieceLength
        var predicted = chunks.indices.map { [Int32](repeating: 0, count: max(0, chunks[$0].count - predictFrom[$0])) }
        for offset in stride(from: 0, to: chunks.map(\.count).max() ?? 0, by: T) {
            let pieces = chunks.map { Array($0.dropFirst(offset).prefix(T)) }
            let firstRow = Self.firstRows(pieces, after: offset == 0 ? prefix.count : 0)
            // (sequence, index in its chunk, packed row) of this piece's rows whose next token is wanted:
            // increasing, as the rows are packed.
            let rows = chunks.indices.flatMap { b -> [(Int, Int, Int)] in
                let lo = max(offset, predictFrom[b]), hi = min(chunks[b].count, offset + T)
                return lo < hi ? (lo..<hi).map { (b, $0, firstRow[b] + $0 - offset) } : []
            }
            // The last layer runs these rows alone past its attention, and leaves them first in `x`.
            let compacted = extendPiece(pieces, at: start.map { $0 + offset }, prefix: offset == 0 ? prefix : [],
                                        headRows: rows.map { Int32($0.2) })
            // Final norm and output head over those rows, a block of rows at a time.
            headRows += rows.count
            for blockStart in stride(from: 0, to: rows.count, by: logitRows) {
                let block = rows[blockStart..<min(rows.count, blockStart + logitRows)]
                for (i, row) in block.enumerated() {
                    (t.tmp.base + i * C).update(from: t.x.base + (compacted ? blockStart + i : row.2) * C, count: C)
                }
                rmsNormForward(t.normOut, rstd: t.rstd, t.tmp, weight: network.finalNorm, n: block.count, c: C, eps: c.rmsNormEps, context: context)
                network.head.multiply(out: t.logits, inp: t.normOut, n: block.count, context: context, fewRows: decodingFewRowsLimit)
                let all = UnsafeBufferPointer(start: t.logits.base, count: block.count * V)
                for (i, row) in block.enumerated() { predicted[row.0][row.1 - predictFrom[row.0]] = argmax(all, row: i, width: V) }
            }
        }
        return predicted
    }

    /// Where each piece's rows start in a pass: after the prefix's `prefixRows`,
    /// each sequence's after the one before (an empty piece has none).
    static func firstRows(_ pieces: [[Int32]], after prefixRows: Int) -> [Int] {
        var next = prefixRows
        return pieces.map { piece in
            defer { next += piece.count }
            return next
        }
    }

    /// One pass of the layers over `pieces[b]` at positions `start[b]…`, its
    /// rows packed (sequence b's after sequence b − 1's; an empty piece has
    /// none); leaves the final residual stream in `x`. `prefix` takes the
    /// first rows, at positions 0…: its keys and values go to every
    /// sequence's cache, and its rows attend over sequence 0's.
    ///
    /// `headRows` (packed rows, increasing) are those the output head will
    /// read. When the last layer may run them alone past its attention
    /// (`LlamaNetwork.compactsLastLayer`), it does, leaving them in `x`'s
    /// first rows in that order, and returns true; every other row needs only
    /// its keys and values there.
    private func extendPiece(_ pieces: [[Int32]], at start: [Int], prefix: [Int32] = [], headRows wanted: [Int32]) -> Bool {
        let c = network.config, B = pieces.count, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth
        let t = tensors, P = prefix.count
        let firstRow = Self.firstRows(pieces, after: P)
        var tokens = prefix, positions = (0..<P).map(Int32.init)
        for (b, piece) in pieces.enumerated() {
            tokens += piece
            positions += (0..<piece.count).map { Int32(start[b] + $0) }
        }
        let N = tokens.count
        precondition(N <= rowCapacity && zip(start, pieces).allSatisfy { $0 + $1.count <= maxLength && (P == 0 || $0 >= P) },
                     "pieces exceed the generator's capacity")
        guard N > 0 else { return false }
        passes += 1
        layerRows += N
        // No head rows at all: the last layer adds only its keys and values (when the switch allows).
        let compact = wanted.isEmpty ? LlamaNetwork.lastLayerRows.isOn
            : wanted.withUnsafeBufferPointer { LlamaNetwork.compactsLastLayer(rows: $0.count, of: N, $0.baseAddress!) }
        let lengths = pieces.map(\.count)
        let shape = CachedAttentionShape(batch: B, cacheLength: maxLength, heads: c.headCount, kvHeads: c.kvHeadCount,
                                         headDim: c.headDimension)
        var prefixShape = shape
        prefixShape.batch = 1
        func project(_ p: Projection, out: FloatPointer, inp: FloatPointer, rows: Int) {
            projectionInference(p, out: out, inp: inp, n: rows, scratch: t.scratch, context: context)
        }
        tokens.withUnsafeBufferPointer { ids in
            guard let base = ids.baseAddress else { return }
            embeddingForward(t.x, tokens: base, table: network.embed, n: N, c: C)
        }
        positions.withUnsafeBufferPointer { positionBuffer in
            guard let pos = positionBuffer.baseAddress else { return }
            for (l, w) in network.layers.enumerated() {
                // Rows past attention: N, or the head's in a compacted last layer (none: its keys and values are all it adds).
                let n = compact && l + 1 == c.layerCount ? wanted.count : N
                rmsNormForward(t.normOut, rstd: t.rstd, t.x, weight: w.attnNorm, n: N, c: C, eps: c.rmsNormEps, context: context)
                // q, k and v read the same input, as gate and up do: one bf16 copy each (as in training).
                sharingBFloat16Copy(of: t.normOut, rows: N, columns: C) {
                    project(w.q, out: t.q, inp: t.normOut, rows: N)
                    project(w.k, out: t.k, inp: t.normOut, rows: N)
                    project(w.v, out: t.v, inp: t.normOut, rows: N)
                }
                ropeForward(t.q, table: rope, positions: pos, rows: N, heads: c.headCount, rowStride: Q, context: context)
                ropeForward(t.k, table: rope, positions: pos, rows: N, heads: c.kvHeadCount, rowStride: K, context: context)
                let cacheK = t.keys[l], cacheV = t.values[l]
                for b in 0..<B {
                    (cacheK.base + b * maxLength * K).update(from: t.k.base, count: P * K)
                    (cacheV.base + b * maxLength * K).update(from: t.v.base, count: P * K)
                    (cacheK.base + (b * maxLength + start[b]) * K).update(from: t.k.base + firstRow[b] * K, count: lengths[b] * K)
                    (cacheV.base + (b * maxLength + start[b]) * K).update(from: t.v.base + firstRow[b] * K, count: lengths[b] * K)
                }
                if P > 0 {
                    cachedAttentionForward(t.attnOut, q: t.q, keys: cacheK, values: cacheV, start: [0], lengths: [P], shape: prefixShape,
                                           scores: t.scores, context: context)
                }
                cachedAttentionForward(t.attnOut + P * Q, q: t.q + P * Q, keys: cacheK, values: cacheV, start: start, lengths: lengths,
                                       shape: shape, scores: t.scores, context: context)
                guard n > 0 else { continue }
                if n < N {
                    wanted.withUnsafeBufferPointer { rows in
                        gatherRows(t.attnOut, width: Q, rows.baseAddress!, count: n)
                        gatherRows(t.x, width: C, rows.baseAddress!, count: n)
                    }
                }
                project(w.o, out: t.tmp, inp: t.attnOut, rows: n)
                add(t.x, t.tmp, count: n * C, context: context)
                w.mlpForward(out: t.tmp, inp: t.x, normOut: t.normOut, rstd: t.rstd, gate: t.gate, up: t.up, act: t.act,
                             rows: n, config: c, context: context) { project($0, out: $1, inp: $2, rows: $3) }
                add(t.x, t.tmp, count: n * C, context: context)
            }
        }
        return compact
    }

    private func argmax<C: Collection>(_ values: C, row: Int, width: Int) -> Int32 where C.Element == Float, C.Index == Int {
        let start = values.startIndex + row * width
        var best = start
        for i in start..<(start + width) where values[i] > values[best] { best = i }
        return Int32(best - start)
    }
}
