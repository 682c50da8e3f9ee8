// TorchFloatSum: PyTorch's CPU sum of Float32 values, reproduced in its order
// of additions, because bitsandbytes' double quantisation subtracts
// `absmax.mean()` from every absmax and a different last bit in that mean can
// move an absmax to another 8-bit code.
//
// torch sums Float32 in Float32 as a cascade: 8-lane vectors (the AVX2 and
// portable kernels; torch keeps its AVX-512 build off for sums, and ARM's
// vectors are 8 floats too) fed round-robin into 4 accumulators, each carried
// through 4 levels of partial sums so that only similar magnitudes meet, then
// the scalar tail, then the 8 lanes added one by one. `mean` divides by the
// count. This is the single-threaded order, which torch uses below 32768
// values (a matrix of up to 2M weights has fewer blocks than that); above,
// torch splits the sum across its threads and its own result depends on how
// many it has.

/// Sums and means of Float32 values in PyTorch's CPU order of additions.
enum TorchFloatSum {
    static let lanes = 8
    /// Running sums kept side by side (torch's "ilp factor").
    private static let accumulators = 4
    /// Levels of partial sums in the cascade.
    private static let levels = 4

    /// `torch.tensor(values).mean()` for a contiguous Float32 tensor.
    static func mean(_ values: UnsafeBufferPointer<Float>) -> Float {
        sum(values) / Float(values.count)
    }

    /// `torch.tensor(values).sum()` for a contiguous Float32 tensor.
    static func sum(_ values: UnsafeBufferPointer<Float>) -> Float {
        let n = values.count
        guard n >= lanes, let base = values.baseAddress else {
            return rowSum(count: n) { values[$0] }
        }
        let vectorCount = n / lanes
        let raw = UnsafeRawPointer(base)
        let vector = rowSum(count: vectorCount) { raw.loadUnaligned(fromByteOffset: $0 * lanes * 4, as: SIMD8<Float>.self) }
        var total: Float = 0
        for i in (vectorCount * lanes)..<n { total += values[i] }
        for lane in 0..<lanes { total += vector[lane] }
        return total
    }

    /// Items `0..<count` summed in `accumulators` interleaved cascades; the
    /// items left over after the last whole round go into the first, and the
    /// accumulators are then added in order.
    private static func rowSum<T: Summand>(count: Int, _ item: (Int) -> T) -> T {
        let rounds = count / accumulators
        var partial = cascade(steps: rounds) { step, k in item(step * accumulators + k) }
        for i in (rounds * accumulators)..<count { partial[0] += item(i) }
        for k in 1..<accumulators { partial[0] += partial[k] }
        return partial[0]
    }

    /// `accumulators` running sums over `steps` steps. Level 0 takes
    /// `2^power` steps at a time and then spills into level 1; level j spills
    /// into j + 1 every `2^(power * (j + 1))` steps.
    private static func cascade<T: Summand>(steps: Int, _ item: (Int, Int) -> T) -> [T] {
        let power = max(4, ceilLog2(steps) / levels)
        let chunk = 1 << power
        var sums = [[T]](repeating: [T](repeating: .zero, count: accumulators), count: levels)
        var i = 0
        while i + chunk <= steps {
            for _ in 0..<chunk {
                for k in 0..<accumulators { sums[0][k] += item(i, k) }
                i += 1
            }
            for j in 1..<levels {
                for k in 0..<accumulators {
                    sums[j][k] += sums[j - 1][k]
                    sums[j - 1][k] = .zero
                }
                if i & ((chunk - 1) << (j * power)) != 0 { break }
            }
        }
        while i < steps {
            for k in 0..<accumulators { sums[0][k] += item(i, k) }
            i += 1
        }
        for j in 1..<levels {
            for k in 0..<accumulators { sums[0][k] += sums[j][k] }
        }
        return sums[0]
    }

    /// ceil(log2(x)), taken as 1 for x <= 2 (torch's `CeilLog2`).
    private static func ceilLog2(_ x: Int) -> Int {
        x <= 2 ? 1 : Int.bitWidth - (x - 1).leadingZeroBitCount
    }
}

/// What the cascade adds: Floats, or 8-lane vectors of them added lane by lane.
fileprivate protocol Summand {
    static var zero: Self { get }
    static func += (lhs: inout Self, rhs: Self)
}

extension Float: Summand {}
extension SIMD8<Float>: Summand {}
