// DynamicMap: bitsandbytes' signed 8-bit dynamic code and its CPU blockwise
// quantiser, which QLoRA's double quantisation applies to the NF4 absmax values.

/// `create_dynamic_map(signed=True)` of bitsandbytes (Dettmers, "8-Bit
/// Approximations for Parallelism in Deep Learning") and the exact code choice
/// of its CPU library's `quantize_blockwise` for Float32 input.
enum DynamicMap {
    /// Block size of the nested (absmax) quantisation in `quantize_4bit`.
    static let blockSize = 256

    /// The 127 positive values below 1: for each decimal exponent e = -6...0, the
    /// means of consecutive points of `linspace(0.1, 1, 2^(e+6) + 1)` times 10^e,
    /// as Float32. They are listed rather than computed because torch's Float
    /// `linspace` does not round like a plain loop; the golden test compares the
    /// whole map with bitsandbytes'.
    private static let positive: [Float] = [
        5.5000004e-07, 3.2500002e-06, 7.75e-06, 2.1249998e-05, 4.375e-05, 6.625e-05, 8.875e-05, 0.00015625001,
        0.00026875004, 0.00038125002, 0.00049375003, 0.0006062501, 0.00071875006, 0.00083125, 0.0009437501, 0.0012812499,
        0.00184375, 0.00240625, 0.00296875, 0.0035312497, 0.00409375, 0.0046562497, 0.0052187503, 0.00578125,
        0.00634375, 0.00690625, 0.00746875, 0.00803125, 0.00859375, 0.009156249, 0.00971875, 0.01140625,
        0.01421875, 0.01703125, 0.019843752, 0.02265625, 0.02546875, 0.028281251, 0.03109375, 0.03390625,
        0.036718752, 0.03953125, 0.042343747, 0.04515625, 0.04796875, 0.05078125, 0.05359375, 0.05640625,
        0.059218753, 0.06203125, 0.06484375, 0.067656256, 0.070468746, 0.07328125, 0.07609375, 0.07890625,
        0.08171876, 0.08453125, 0.08734375, 0.09015625, 0.092968754, 0.09578126, 0.09859375, 0.107031256,
        0.12109375, 0.13515624, 0.14921875, 0.16328125, 0.17734376, 0.19140625, 0.20546874, 0.21953125,
        0.23359375, 0.24765624, 0.26171875, 0.27578127, 0.28984374, 0.30390626, 0.31796873, 0.33203125,
        0.34609374, 0.36015624, 0.37421876, 0.38828123, 0.40234375, 0.41640624, 0.43046874, 0.44453126,
        0.45859373, 0.47265625, 0.4867187, 0.50078124, 0.5148437, 0.5289062, 0.54296875, 0.5570313,
        0.5710938, 0.58515626, 0.5992187, 0.61328125, 0.6273438, 0.6414063, 0.65546876, 0.6695312,
        0.68359375, 0.6976563, 0.7117188, 0.72578126, 0.7398437, 0.75390625, 0.7679688, 0.78203124,
        0.79609376, 0.8101562, 0.82421875, 0.8382813, 0.85234374, 0.86640626, 0.8804687, 0.89453125,
        0.9085938, 0.92265624, 0.93671876, 0.9507812, 0.96484375, 0.9789063, 0.99296874,
    ]

    /// The 256 code values in ascending order: the negated positives, 0, the
    /// positives, then 1 (there is no -1).
    static let values: [Float] = positive.reversed().map { -$0 } + [0] + positive + [1]

    /// `0.5 * (values[i] + values[i + 1])`, as the CPU library computes them.
    private static let midpoints: [Float] = (0..<255).map { 0.5 * (values[$0] + values[$0 + 1]) }

    /// Bins of the library's lookup table over [-1, 1].
    private static let tableBins = 65536

    /// The code bitsandbytes' CPU library gives `scaled` (a value divided by its
    /// block's absmax). It does not search for the nearest value: it rounds
    /// `scaled` to one of 65536 evenly spaced bins and takes the code of the
    /// bin's centre (the number of midpoints strictly below it). Near a midpoint
    /// that can differ from the nearest code, so it is reproduced step by step.
    static func code(of scaled: Float) -> UInt8 {
        let clamped = min(max(scaled, -1), 1)
        let last = Float(tableBins - 1)
        let bin = UInt16((clamped + 1) * 0.5 * last + 0.5)
        let centre = -1 + (2 * Float(bin)) / last
        var lo = 0, hi = midpoints.count  // first midpoint >= centre
        while lo < hi {
            let mid = (lo + hi) / 2
            if midpoints[mid] < centre { lo = mid + 1 } else { hi = mid }
        }
        return UInt8(lo)
    }

    /// Quantises `input` in blocks of `blockSize` values, as `quantize_blockwise`
    /// does on the CPU: each block's absmax (kept as Float) and each value's code
    /// for `value * (1 / absmax)`. A block of zeros gets absmax 0 and code 0
    /// everywhere (code 0 is the most negative value; times 0 it is still 0).
    static func quantizeBlockwise(_ input: [Float]) -> (codes: [UInt8], absmax: [Float]) {
        var codes = [UInt8](repeating: 0, count: input.count)
        var absmax: [Float] = []
        absmax.reserveCapacity((input.count + blockSize - 1) / blockSize)
        for start in stride(from: 0, to: input.count, by: blockSize) {
            let block = start..<min(start + blockSize, input.count)
            let largest = input[block].reduce(Float(0)) { max($0, abs($1)) }
            absmax.append(largest)
            guard largest != 0 else { continue }
            let inverse = 1 / largest
            for i in block { codes[i] = code(of: input[i] * inverse) }
        }
        return (codes, absmax)
    }
}
