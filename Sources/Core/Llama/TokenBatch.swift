// TokenBatch: token sequences laid end to end, with per-position targets.

/// B sequences, their rows laid end to end: sequence b holds `lengths[b]`
/// rows, after those of the sequences before it. Training packs its examples
/// this way, with no padding, so that no product spends time on rows that
/// carry nothing (HF's "padding-free" batches); a right-padded batch is the
/// case where every length equals `seqLen`. Each row has the target of its
/// output (already shifted: the token that should follow that position) or
/// `TokenBatch.ignore` where no loss is taken (prompt, padding).
public struct TokenBatch: Sendable, Equatable {
    public static let ignore: Int32 = -100

    /// Rows of each sequence, in order.
    public let lengths: [Int]
    public let tokens: [Int32]
    public let targets: [Int32]
    /// Each row's position within its sequence (for the rotary embedding).
    public let positions: [Int32]

    /// B right-padded sequences of T rows each (B·T tokens, row-major).
    public init(batchSize: Int, seqLen: Int, tokens: [Int32], targets: [Int32]) {
        self.init(lengths: Array(repeating: seqLen, count: batchSize), tokens: tokens, targets: targets)
    }

    /// Sequences of the given lengths laid end to end (Σ lengths rows).
    public init(lengths: [Int], tokens: [Int32], targets: [Int32]) {
        precondition(lengths.allSatisfy { $0 >= 0 }, "negative sequence length")
        precondition(tokens.count == lengths.reduce(0, +) && targets.count == tokens.count, "batch shape mismatch")
        self.lengths = lengths
        self.positions = lengths.flatMap { (0..<$0).map { Int32($0) } }
        self.tokens = tokens
        self.targets = targets
    }

    public var batchSize: Int { lengths.count }

    /// The longest sequence: attention's per-sequence scratch is sized by it.
    public var seqLen: Int { lengths.max() ?? 0 }

    /// Rows in the batch: Σ lengths (B·T when padded).
    public var rowCount: Int { tokens.count }

    /// Positions that carry a label: the rows at which logits are computed.
    public var labelledCount: Int { targets.reduce(0) { $0 + ($1 == TokenBatch.ignore ? 0 : 1) } }
}
