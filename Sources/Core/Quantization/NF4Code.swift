// NF4Code: bitsandbytes' 16 NormalFloat4 values and the rule that picks one for
// a value already divided by its block's absmax.

/// The NF4 code book of QLoRA (Dettmers et al., 2023) as bitsandbytes stores it.
enum NF4Code {
    /// Code `i`'s value: quantiles of N(0, 1) scaled to [-1, 1], with an exact
    /// zero at code 7 so that zero weights (and padding) stay zero. These are the
    /// Float32 roundings of bitsandbytes' constants (`get_4bit_type("nf4")`),
    /// written as the shortest decimals that read back to the same Floats.
    static let values: [Float] = [
        -1.0, -0.6961928, -0.52507305, -0.3949175, -0.28444138, -0.18477343, -0.091050036, 0.0,
        0.0795803, 0.1609302, 0.2461123, 0.33791524, 0.44070983, 0.562617, 0.72295684, 1.0,
    ]

    /// `values` as one vector, for scaling the whole code book by a block's absmax.
    static let vector = SIMD16<Float>(values)

    /// The 15 bucket bounds, `(values[i] + values[i + 1]) / 2` in Float, as
    /// bitsandbytes' quantiser computes them; padded with +infinity to 16 lanes
    /// so that `code(of:)` can compare against all of them at once.
    static let midpoints: SIMD16<Float> = {
        var bounds = SIMD16<Float>(repeating: .infinity)
        for i in 0..<15 { bounds[i] = (values[i] + values[i + 1]) / 2 }
        return bounds
    }()

    /// The code of `scaled` (in [-1, 1]): how many bounds lie strictly below it.
    /// This is `torch.bucketize(scaled, bounds, right=False)`, which bitsandbytes
    /// uses, so a value exactly on a bound takes the lower code; it is also the
    /// nearest value, except on such ties.
    @inline(__always)
    static func code(of scaled: Float, bounds: SIMD16<Float>) -> UInt8 {
        let above = SIMD16<Float>(repeating: scaled) .> bounds
        return UInt8(truncatingIfNeeded: SIMD16<Int32>(repeating: 0).replacing(with: 1, where: above).wrappedSum())
    }
}
