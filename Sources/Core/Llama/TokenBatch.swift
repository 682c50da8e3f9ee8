// TokenBatch: a right-padded batch of token sequences with per-position targets.

/// B sequences of T tokens, row-major, with the target of each position's
/// output (already shifted: `targets[b·T + t]` is the token that should follow
/// position t) or `TokenBatch.ignore` where no loss is taken (prompt, padding).
public struct TokenBatch: Sendable, Equatable {
    public static let ignore: Int32 = -100

    public let batchSize: Int
    public let seqLen: Int
    public let tokens: [Int32]
    public let targets: [Int32]

    public init(batchSize: Int, seqLen: Int, tokens: [Int32], targets: [Int32]) {
        precondition(tokens.count == batchSize * seqLen && targets.count == tokens.count, "batch shape mismatch")
        self.batchSize = batchSize
        self.seqLen = seqLen
        self.tokens = tokens
        self.targets = targets
    }

    /// Positions that carry a label: the rows at which logits are computed.
    public var labelledCount: Int { targets.reduce(0) { $0 + ($1 == TokenBatch.ignore ? 0 : 1) } }
}
