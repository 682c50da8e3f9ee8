// BertEncoder: the forward pass of a post-LayerNorm BERT encoder over a batch
// of right-padded sentences, and the activation arena it runs in. Read top to
// bottom: embeddings, then per layer attention and feed-forward, each followed
// by residual + LayerNorm.

/// Activation buffers for batches of up to `rows` padded tokens and sentences
/// of up to `maxSeqLen`, in one arena allocated once for an `embed` call.
final class BertActivations {
    let rows: Int, maxSeqLen: Int
    /// (rows, C): the residual stream, finally the token states.
    let hidden: FloatPointer
    /// (rows, 3C): q | k | v per token.
    let qkv: FloatPointer
    /// (rows, C): attention output, before its dense layer.
    let attention: FloatPointer
    /// (rows, C): output of a dense layer, before residual + LayerNorm.
    let projected: FloatPointer
    /// (rows, I)
    let intermediate: FloatPointer
    /// threads × T × T attention scores.
    let scores: FloatPointer
    private let arena: FloatArena

    /// The tensors as `carved` takes them, by name.
    private struct Tensors { let hidden, qkv, attention, projected, intermediate, scores: FloatPointer }

    init(config: BertConfiguration, rows: Int, maxSeqLen: Int, threads: Int) {
        let C = config.hiddenSize
        let carved = FloatArena.carved { arena in
            let take = { (count: Int) in FloatPointer(arena.take(count)) }
            return Tensors(hidden: take(rows * C), qkv: take(rows * 3 * C), attention: take(rows * C), projected: take(rows * C),
                           intermediate: take(rows * config.intermediateSize), scores: take(threads * maxSeqLen * maxSeqLen))
        }
        arena = carved.arena
        let t = carved.tensors
        (hidden, qkv, attention, projected, intermediate, scores) = (t.hidden, t.qkv, t.attention, t.projected, t.intermediate, t.scores)
        self.rows = rows
        self.maxSeqLen = maxSeqLen
    }
}

/// A BERT encoder with its weights; stateless between calls.
public final class BertEncoder: Sendable {
    public let config: BertConfiguration
    public let weights: BertWeights

    public init(config: BertConfiguration, weights: BertWeights) {
        self.config = config
        self.weights = weights
    }

    /// The final token states of a padded batch into `act.hidden` (B·T, C).
    /// - tokens: (B·T), sentence b in row b, its ids first, then any padding id;
    /// - lengths: (B), the real tokens of each sentence, 1...T; T ≤ act.maxSeqLen,
    ///   B·T ≤ act.rows, T ≤ config.maxPositions, ids < config.vocabularySize.
    func forward(tokens: [Int32], lengths: [Int], seqLen T: Int, activations act: BertActivations, context: ComputeContext) {
        let B = lengths.count, N = B * T
        let C = config.hiddenSize, I = config.intermediateSize, eps = config.layerNormEps
        let w = weights
        precondition(tokens.count == N && N <= act.rows && T <= act.maxSeqLen && T <= config.maxPositions,
                     "batch shape (\(B), \(T)) does not fit the activations")

        // Embeddings: word + absolute position + token type 0, then LayerNorm.
        tokens.withUnsafeBufferPointer { ids in
            let ids = UncheckedSendable(ids)
            context.parallelFor(N, minimumPerThread: 16) { rows in
                for row in rows {
                    let x = act.hidden.base + row * C
                    let word = w.wordEmbeddings.base + Int(ids.value[row]) * C
                    let position = w.positionEmbeddings.base + (row % T) * C
                    for i in 0..<C { x[i] = word[i] + position[i] + w.tokenTypeEmbeddings[i] }
                }
            }
        }
        addLayerNormForward(act.hidden, act.hidden, residual: nil, weight: w.embeddingNormWeight,
                            bias: w.embeddingNormBias, n: N, c: C, eps: eps, context: context)

        let shape = EncoderAttentionShape(batch: B, seqLen: T, heads: config.headCount, headDim: config.headDimension)
        lengths.withUnsafeBufferPointer { lengths in
            guard let lengths = lengths.baseAddress else { return }
            for layer in w.layers {
                linearWithBiasForward(act.qkv, act.hidden, weight: layer.qkvWeight, bias: layer.qkvBias,
                                      n: N, inDim: C, outDim: 3 * C, context: context)
                encoderAttentionForward(act.attention, qkv: act.qkv, lengths: lengths, shape: shape,
                                        scratch: act.scores, context: context)
                linearWithBiasForward(act.projected, act.attention, weight: layer.attentionOutputWeight,
                                      bias: layer.attentionOutputBias, n: N, inDim: C, outDim: C, context: context)
                addLayerNormForward(act.hidden, act.projected, residual: act.hidden, weight: layer.attentionNormWeight,
                                    bias: layer.attentionNormBias, n: N, c: C, eps: eps, context: context)

                linearWithBiasForward(act.intermediate, act.hidden, weight: layer.intermediateWeight,
                                      bias: layer.intermediateBias, n: N, inDim: C, outDim: I, context: context)
                geluForward(act.intermediate, count: N * I, context: context)
                linearWithBiasForward(act.projected, act.intermediate, weight: layer.outputWeight,
                                      bias: layer.outputBias, n: N, inDim: I, outDim: C, context: context)
                addLayerNormForward(act.hidden, act.projected, residual: act.hidden, weight: layer.outputNormWeight,
                                    bias: layer.outputNormBias, n: N, c: C, eps: eps, context: context)
            }
        }
    }
}
