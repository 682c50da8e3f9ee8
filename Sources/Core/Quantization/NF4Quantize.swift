// NF4Quantize: Float32 matrices to NF4, reproducing bitsandbytes'
// `quantize_4bit(W, blocksize=64, quant_type="nf4", compress_statistics=True)`
// for a contiguous Float32 CPU tensor step by step (docs/formats/nf4.md says
// which steps are bit-exact).

extension NF4Tensor {
    /// Quantises `weights` ([rows, columns], row-major, PyTorch's layout),
    /// splitting the blocks across `context`'s threads. Refuses NaN and
    /// infinite weights, for which bitsandbytes would write meaningless codes.
    public init(quantizing weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, context: ComputeContext) throws {
        try self.init(quantizing: weights, rows: rows, columns: columns, absmaxOffset: nil, context: context)
    }

    /// As above; a given `absmaxOffset` replaces the computed absmax mean, so
    /// that tests can reproduce bitsandbytes' bytes where torch's mean is not
    /// reproduced (more than 32768 blocks, summed by several threads).
    init(
        quantizing weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, absmaxOffset: Float?,
        context: ComputeContext
    ) throws {
        guard rows > 0, columns > 0 else { throw QuantizationError.emptyShape(rows: rows, columns: columns) }
        let count = rows * columns
        guard weights.count == count else {
            throw QuantizationError.shapeMismatch(what: "weights of [\(rows), \(columns)]", expected: count, found: weights.count)
        }
        let (packed, absmax) = try Self.quantizeCodes(weights, context: context)
        let offset = absmaxOffset ?? absmax.withUnsafeBufferPointer(TorchFloatSum.mean)
        let nested = DynamicMap.quantizeBlockwise(absmax.map { $0 - offset })
        try self.init(
            rows: rows, columns: columns, packed: packed, quantizedAbsmax: nested.codes, absmaxScales: nested.absmax,
            absmaxOffset: offset)
    }

    /// The first stage: NF4 codes, packed, and each block's Float absmax.
    static func quantizeCodes(
        _ weights: UnsafeBufferPointer<Float>, context: ComputeContext
    ) throws -> (packed: [UInt8], absmax: [Float]) {
        let count = weights.count
        let blocks = blockCount(for: count)
        var packed = [UInt8](repeating: 0, count: (count + 1) / 2)
        var absmax = [Float](repeating: 0, count: blocks)
        packed.withUnsafeMutableBufferPointer { packed in
            absmax.withUnsafeMutableBufferPointer { absmax in
                // Each block writes its own 32 bytes and its own absmax.
                context.parallelFor(blocks, minimumPerThread: 64) { range in
                    for block in range {
                        absmax[block] = quantizeBlock(block, of: weights, into: packed)
                    }
                }
            }
        }
        if let bad = absmax.firstIndex(where: \.isNaN) {
            let start = bad * blockSize
            let index = (start..<min(start + blockSize, count)).first { !weights[$0].isFinite } ?? start
            throw QuantizationError.nonFinite(index: index, value: weights[index])
        }
        return (packed, absmax)
    }

    /// Quantises block `block` into its bytes of `packed` and returns its
    /// absmax, or NaN if the block holds a NaN or infinite weight.
    ///
    /// bitsandbytes (its portable `quantize_4bit`, which the CPU backend uses)
    /// scales a full block by `x * (1 / max(absmax, 1e-38))` but a short last
    /// block by `x / max(absmax, 1e-38)`, and stores that short block's absmax
    /// clamped; both are kept because they round differently.
    private static func quantizeBlock(
        _ block: Int, of weights: UnsafeBufferPointer<Float>, into packed: UnsafeMutableBufferPointer<UInt8>
    ) -> Float {
        let start = block * blockSize
        let end = min(start + blockSize, weights.count)
        var largest: Float = 0
        var probe: Float = 0  // x - x is NaN exactly when x is NaN or infinite
        for i in start..<end {
            largest = max(largest, abs(weights[i]))
            probe += weights[i] - weights[i]
        }
        guard !probe.isNaN else { return .nan }

        let tiny = Float(1e-38 as Double)  // torch's clamp(min=1e-38) on a Float tensor
        let isFull = end - start == blockSize
        let divisor = max(largest, tiny)
        let inverse = 1 / divisor
        let bounds = NF4Code.midpoints
        @inline(__always) func code(_ i: Int) -> UInt8 {
            // The odd element count's padding value is 0.
            guard i < end else { return NF4Code.code(of: 0, bounds: bounds) }
            let scaled = isFull ? weights[i] * inverse : weights[i] / divisor
            return NF4Code.code(of: min(max(scaled, -1), 1), bounds: bounds)
        }
        for i in stride(from: start, to: end, by: 2) {
            packed[i / 2] = code(i) << 4 | code(i + 1)
        }
        return isFull ? largest : divisor
    }
}
