// TokenBatch: token sequences laid end to end, with per-position targets, and
// optionally a prompt prefix that every sequence shares laid only once.

/// B sequences, their rows laid end to end: sequence b holds `lengths[b]`
/// rows, after those of the sequences before it. Training packs its examples
/// this way, with no padding, so that no product spends time on rows that
/// carry nothing (HF's "padding-free" batches); a right-padded batch is the
/// case where every length equals `seqLen`. Each row has the target of its
/// output (already shifted: the token that should follow that position) or
/// `TokenBatch.ignore` where no loss is taken (prompt, padding).
///
/// With a shared prefix of P rows, the first P rows of sequence 0 are also
/// the first P positions of every later sequence, which lays only its rows
/// after them (at positions P…) and attends to those P rows before its own.
/// A causal row never sees a later one, so the prefix's rows are the same in
/// every sequence and are computed once; their gradients gather what every
/// sequence sends back through attention. Exact only when no later sequence
/// takes a loss inside the prefix (`init(examples:)` makes sure of it) and no
/// row draws its own randomness (LoRA dropout).
public struct TokenBatch: Sendable, Equatable {
    public static let ignore: Int32 = -100

    /// Rows of each sequence as laid, in order (for a sequence after the
    /// first, the rows after the shared prefix).
    public let lengths: [Int]
    public let tokens: [Int32]
    public let targets: [Int32]
    /// Each row's position within its sequence (for the rotary embedding).
    public let positions: [Int32]
    /// Rows at the start of sequence 0 that every later sequence shares (0: none).
    public let sharedPrefix: Int

    /// B right-padded sequences of T rows each (B·T tokens, row-major).
    public init(batchSize: Int, seqLen: Int, tokens: [Int32], targets: [Int32]) {
        self.init(lengths: Array(repeating: seqLen, count: batchSize), tokens: tokens, targets: targets)
    }

    /// Sequences of the given lengths laid end to end (Σ lengths rows), the
    /// first `sharedPrefix` rows of sequence 0 shared by the later ones.
    public init(lengths: [Int], tokens: [Int32], targets: [Int32], sharedPrefix: Int = 0) {
        precondition(lengths.allSatisfy { $0 >= 0 }, "negative sequence length")
        precondition(tokens.count == lengths.reduce(0, +) && targets.count == tokens.count, "batch shape mismatch")
        precondition(sharedPrefix == 0 || (sharedPrefix > 0 && sharedPrefix <= lengths[0]), "shared prefix longer than sequence 0")
        self.lengths = lengths
        self.sharedPrefix = sharedPrefix
        self.positions = lengths.enumerated().flatMap { b, length in
            let first = b == 0 ? 0 : sharedPrefix
            return (first..<(first + length)).map { Int32($0) }
        }
        self.tokens = tokens
        self.targets = targets
    }

    public var batchSize: Int { lengths.count }

    /// The longest sequence, its shared prefix counted: attention's
    /// per-sequence scratch is sized by it.
    public var seqLen: Int { AttentionShape.mostKeys(lengths: lengths, prefix: sharedPrefix) }

    /// Rows in the batch: Σ lengths (B·T when padded).
    public var rowCount: Int { tokens.count }

    /// Positions that carry a label: the rows at which logits are computed.
    public var labelledCount: Int { targets.reduce(0) { $0 + ($1 == TokenBatch.ignore ? 0 : 1) } }
}
