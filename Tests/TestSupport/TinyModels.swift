// TinyModels: small random Llama models for numeric tests.
import Core

/// Tiny Llama configurations that exercise GQA, tying and both RoPE variants.
public enum TinyModels {
    public static func config(tied: Bool = true, llama3Rope: Bool = false, headDimension: Int? = nil) -> LlamaConfiguration {
        LlamaConfiguration(
            vocabularySize: 37, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, kvHeadCount: 2,
            headDimension: headDimension, rmsNormEps: 1e-5, ropeTheta: llama3Rope ? 500000 : 10000,
            ropeScaling: llama3Rope ? .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 4) : .none,
            tieWordEmbeddings: tied, maxPositions: 64)
    }

    /// A model with N(0, std) matrices and norms of 1 ± 0.1·noise, so that
    /// every gradient is of a similar scale.
    public static func model(_ config: LlamaConfiguration, seed: UInt64 = 1, std: Float = 0.3) -> LlamaModel {
        let model = LlamaModel(config: config)
        model.randomize(seed: seed, std: std)
        var rng = SeededGenerator(seed: seed &+ 99)
        for e in model.layout.entries where e.shape.count == 1 {
            let t = model.tensor(e.name)
            for i in t.indices { t[i] = 1 + 0.1 * rng.nextNormal() }
        }
        return model
    }

    /// A right-padded batch of 2 rows with masked prompt and padding positions.
    public static func batch(vocab: Int, seqLen: Int = 7, seed: UInt64 = 5) -> TokenBatch {
        var rng = SeededGenerator(seed: seed)
        var tokens = (0..<(2 * seqLen)).map { _ in Int32(rng.next() % UInt64(vocab)) }
        var targets = (0..<(2 * seqLen)).map { _ in Int32(rng.next() % UInt64(vocab)) }
        for t in 0..<2 { targets[t] = TokenBatch.ignore; targets[seqLen + t] = TokenBatch.ignore }
        for t in (seqLen - 2)..<seqLen { tokens[seqLen + t] = 0; targets[seqLen + t] = TokenBatch.ignore }
        targets[seqLen - 1] = TokenBatch.ignore
        return TokenBatch(batchSize: 2, seqLen: seqLen, tokens: tokens, targets: targets)
    }
}
