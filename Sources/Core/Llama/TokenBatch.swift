// TokenBatch: token sequences laid end to end, with per-position targets.

/// B sequences, their rows laid end to end: sequence b holds `lengths[b]`
/// rows starting at `starts[b]`. Training packs its examples this way, with no
/// padding, so that no product spends time on rows that carry nothing
/// (HF's "padding-free" batches); a right-padded batch is the case where every
/// length equals `seqLen`. Each row has the target of its output (already
/// shifted: the token that should follow that position) or
/// `TokenBatch.ignore` where no loss is taken (prompt, padding).
public struct TokenBatch: Sendable, Equatable {
    public static let ignore: Int32 = -100

    public let batchSize: Int
    /// The longest sequence: attention's per-sequence scratch is sized by it.
    public let seqLen: Int
    /// Rows of each sequence, in order; each in 0...seqLen.
    public let lengths: [Int]
    /// The first row of each sequence.
    public let starts: [Int]
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
        self.batchSize = lengths.count
        self.seqLen = lengths.max() ?? 0
        self.lengths = lengths
        var starts: [Int] = [], positions: [Int32] = []
        starts.reserveCapacity(lengths.count)
        positions.reserveCapacity(tokens.count)
        for length in lengths {
            starts.append(positions.count)
            positions.append(contentsOf: (0..<length).map { Int32($0) })
        }
        self.starts = starts
        self.positions = positions
        self.tokens = tokens
        self.targets = targets
    }

    /// Rows in the batch: Σ lengths (B·T when padded).
    public var rowCount: Int { tokens.count }

    /// Positions that carry a label: the rows at which logits are computed.
    public var labelledCount: Int { targets.reduce(0) { $0 + ($1 == TokenBatch.ignore ? 0 : 1) } }
}
