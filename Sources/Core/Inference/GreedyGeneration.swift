// GreedyGeneration: the argmax continuation of a prompt.
//
// Each new token reruns the forward pass over the whole sequence: simple and
// exactly the training forward, so it is the reference `CachedGenerator` (the
// one the commands use) is tested against.

extension LlamaNetwork {
    /// Greedy continuation of `prompt`: up to `maxTokens` new ids, stopping
    /// after any id in `stopTokens` (which is included in the result).
    public func generateGreedy(
        prompt: [Int32], maxTokens: Int, stopTokens: Set<Int32> = [], context: ComputeContext
    ) -> [Int32] {
        guard !prompt.isEmpty, maxTokens > 0 else { return [] }
        let capacity = prompt.count + maxTokens
        let acts = LlamaActivations(network: self, maxBatch: 1, maxSeq: capacity, maxRows: 1, threads: context.threads)
        var sequence = prompt
        var generated: [Int32] = []
        while generated.count < maxTokens {
            let batch = TokenBatch(batchSize: 1, seqLen: sequence.count, tokens: sequence,
                                   targets: [Int32](repeating: TokenBatch.ignore, count: sequence.count))
            let logits = self.logits(batch, outputRows: [sequence.count - 1], acts, context: context)
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            let next = Int32(best)
            generated.append(next)
            sequence.append(next)
            if stopTokens.contains(next) { break }
        }
        return generated
    }
}
