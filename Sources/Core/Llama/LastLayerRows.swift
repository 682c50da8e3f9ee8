// LastLayerRows: the last layer's o projection and MLP run over the rows the
// output head reads, not over every row of the batch.

/// Why: a row's output from the last layer reaches the loss only through the
/// head, and the head reads the labelled rows alone (training, perplexity) or
/// the rows whose logits are asked for. Every other row still needs the last
/// layer's keys and values, which the labelled rows attend to, but not its
/// attention output, o projection or MLP, nor their backward (its gradient
/// there is zero). At batch 1 that is about 3/4 of the last layer's rows:
/// ~2% of a step's products at SmolLM2's 30 layers.
///
/// The forward gathers the labelled rows of the attention output to the
/// front of its buffer (in place) and runs everything after attention over
/// those m rows; the last layer's `attnOut`, `residMid`, `mlpNormOut`,
/// `mlpRstd`, `gate`, `up`, `act`, the adapter activations of o, gate, up
/// and down, and the head's `residOut` then hold m rows, in the order of
/// `rowIndex`, and `LlamaActivations.compactedLastLayer` says so. Backward
/// runs the MLP and o over the same m rows and spreads ∂L/∂attnOut and
/// ∂L/∂residMid back to all N rows (zero elsewhere) before attention's backward.
///
/// LoRA dropout on o, gate, up or down draws its masks for the m rows only:
/// with dropout, a run draws other masks than with every row (and than
/// before this path), as valid, not the same.
extension LlamaNetwork {
    /// `FACTSWEEP_LAST_LAYER_ROWS=off` runs every row through the last layer,
    /// as before (benchmarks' before/after); tests turn it off per thread.
    static let lastLayerRows = PathSwitch(environmentKey: "FACTSWEEP_LAST_LAYER_ROWS")

    /// Whether a pass over `n` rows whose head reads `rowIndex[0..<m]` runs
    /// its last layer after attention over those m rows: when they are fewer
    /// than n, none, and strictly increasing (so the gather can run in place,
    /// and no row is read twice). Training's labelled rows always are;
    /// `logits(outputRows:)` may be asked otherwise, and then runs every row.
    static func compactsLastLayer(rows m: Int, of n: Int, _ rowIndex: UnsafePointer<Int32>) -> Bool {
        guard compactsLastLayer(rows: m, of: n) else { return false }
        for r in 0..<m where rowIndex[r] < 0 || Int(rowIndex[r]) >= n || (r > 0 && rowIndex[r] <= rowIndex[r - 1]) { return false }
        return true
    }

    /// The rule on counts alone, for rows known to increase (a batch's
    /// labelled rows: `LlamaModel.trainingFlops`): on, and fewer than n but some.
    static func compactsLastLayer(rows m: Int, of n: Int) -> Bool { lastLayerRows.isOn && m > 0 && m < n }
}

/// Moves rows `rowIndex[0..<m]` of `x` (rows of `width` Floats) to rows
/// 0..<m, in place. `rowIndex` strictly increasing, so row r's source is at or
/// after r and not yet overwritten.
func gatherRows(_ x: FloatPointer, width: Int, _ rowIndex: UnsafePointer<Int32>, count m: Int) {
    for r in 0..<m where Int(rowIndex[r]) != r {
        (x.base + r * width).update(from: x.base + Int(rowIndex[r]) * width, count: width)
    }
}

/// The inverse of `gatherRows` over `n` rows: rows 0..<m go back to rows
/// `rowIndex[0..<m]`, and every other row of the n becomes zero. From the last
/// row down, so no row is overwritten before it is moved.
func scatterRows(_ x: FloatPointer, width: Int, _ rowIndex: UnsafePointer<Int32>, count m: Int, rows n: Int) {
    var next = n  // rows next..<n are final
    for r in stride(from: m - 1, through: 0, by: -1) {
        let target = Int(rowIndex[r])
        if target + 1 < next { (x.base + (target + 1) * width).update(repeating: 0, count: (next - target - 1) * width) }
        if target != r { (x.base + target * width).update(from: x.base + r * width, count: width) }
        next = target
    }
    if next > 0 { x.base.update(repeating: 0, count: next * width) }
}

/// out[r] += x[rowIndex[r]] for r in 0..<m (rows of `width` Floats): the
/// residual the last layer's gathered rows carry.
func addGatheredRows(_ out: FloatPointer, _ x: FloatPointer, width: Int, _ rowIndex: UnsafePointer<Int32>, count m: Int) {
    for r in 0..<m {
        let dst = out.base + r * width, src = x.base + Int(rowIndex[r]) * width
        for i in 0..<width { dst[i] += src[i] }
    }
}
