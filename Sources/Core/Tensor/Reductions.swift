// Reductions: sums over large buffers, deterministic for a given thread count.

/// Σ x² over `count` Floats: Float sums over blocks of 4096, Double across
/// blocks, per thread chunk, added in chunk order.
public func sumOfSquares(_ x: FloatPointer, count: Int, context: ComputeContext) -> Double {
    let blocks = (count + 4095) / 4096
    var total: Double = 0
    withUnsafeTemporaryAllocation(of: Double.self, capacity: context.threads) { partial in
        partial.initialize(repeating: 0)
        let out = UncheckedSendable(partial)
        context.parallelChunks(blocks) { chunk, range in
            var sum: Double = 0
            for block in range {
                let start = block * 4096, end = min(count, start + 4096)
                var s = SIMD16<Float>.zero
                var i = start
                while i + 16 <= end {
                    let v = load16(x.base + i)
                    s += v * v
                    i += 16
                }
                var tail: Float = 0
                while i < end { tail += x[i] * x[i]; i += 1 }
                sum += Double(s.sum() + tail)
            }
            out.value[chunk] = sum
        }
        total = partial.reduce(0, +)
    }
    return total
}

/// out += inp over `count` Floats (residual connections).
public func add(_ out: FloatPointer, _ inp: FloatPointer, count: Int, context: ComputeContext) {
    context.parallelFor(count / 16, minimumPerThread: 4096) { range in
        for block in range {
            let i = block * 16
            store16(load16(out.base + i) + load16(inp.base + i), out.base + i)
        }
    }
    for i in (count / 16 * 16)..<count { out[i] += inp[i] }
}
