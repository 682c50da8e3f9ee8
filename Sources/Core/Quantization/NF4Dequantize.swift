// NF4Dequantize: the tile kernel of QLoRA's forward and backward, which turn a
// few rows of a frozen NF4 weight back into Floats in a small scratch buffer
// just before a matrix product, so that no Float copy of the model exists.
//
// Each value is `NF4Code.values[code] * blockScale`, one Float product, as in
// bitsandbytes' `dequantize_4bit`, so the results are bit-exact whatever the
// path: the C kernel (`factsweep_nf4_dequantize`) takes runs of whole blocks at
// one table permute per 16 values on AVX-512, and parts of blocks value by value.
import CKernels

extension NF4Tensor {
    /// Writes rows `rows` ([rows.count, columns], row-major) into `destination`
    /// on the calling thread.
    public func dequantizeRows(_ rows: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= self.rows, "rows \(rows) outside 0..<\(self.rows)")
        dequantize(rows.lowerBound * columns..<rows.upperBound * columns, into: destination)
    }

    /// Writes rows `rows` into `destination`, split across `context`'s threads.
    public func dequantizeRows(_ rows: Range<Int>, into destination: UnsafeMutablePointer<Float>, context: ComputeContext) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= self.rows, "rows \(rows) outside 0..<\(self.rows)")
        // Below about 16K values per thread, waking threads costs more than it saves.
        let rowsPerThread = max(1, (1 << 14) / columns)
        context.parallelFor(rows.count, minimumPerThread: rowsPerThread) { part in
            dequantizeRows(
                (rows.lowerBound + part.lowerBound)..<(rows.lowerBound + part.upperBound),
                into: destination + part.lowerBound * columns)
        }
    }

    /// Writes rows `rows` as bf16 bits (rounded to nearest even, as
    /// bitsandbytes' bf16 dequantisation rounds its Float product) into
    /// `destination`, split across `context`'s threads: QLoRA's base in bf16
    /// precision, half the bytes of the Float32 rows.
    public func dequantizeRowsBFloat16(_ rows: Range<Int>, into destination: UnsafeMutablePointer<UInt16>, context: ComputeContext) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= self.rows, "rows \(rows) outside 0..<\(self.rows)")
        let elements = rows.lowerBound * columns..<rows.upperBound * columns
        // Chunks of 64 blocks, so that both threads get work at every shape.
        let chunk = 64 * Self.blockSize
        let chunks = (elements.count + chunk - 1) / chunk
        let out = UncheckedSendable(destination)
        context.parallelFor(chunks, minimumPerThread: 4) { part in
            let lo = elements.lowerBound + part.lowerBound * chunk, hi = min(elements.upperBound, elements.lowerBound + part.upperBound * chunk)
            dequantizeBFloat16(lo..<hi, into: out.value + (lo - elements.lowerBound))
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`
    /// as bf16 bits. Any range works.
    func dequantizeBFloat16(_ elements: Range<Int>, into destination: UnsafeMutablePointer<UInt16>, portable: Bool = false) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        withKernelView {
            factsweep_nf4_dequantize_bf16($0, elements.lowerBound, elements.upperBound, destination, portable ? 1 : 0)
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`.
    /// Any range works; `portable` takes the kernel's plain C loop even where
    /// AVX-512 is present (tests).
    public func dequantize(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>, portable: Bool = false) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        withKernelView { factsweep_nf4_dequantize($0, elements.lowerBound, elements.upperBound, destination, portable ? 1 : 0) }
    }

    /// The kernel's view of this tensor, valid inside `body`.
    private func withKernelView<R>(_ body: (UnsafePointer<factsweep_nf4>) -> R) -> R {
        packed.withUnsafeBufferPointer { codes in
            quantizedAbsmax.withUnsafeBufferPointer { absmax in
                absmaxScales.withUnsafeBufferPointer { groups in
                    DynamicMap.values.withUnsafeBufferPointer { map in
                        NF4Code.values.withUnsafeBufferPointer { book in
                            var view = factsweep_nf4(
                                codes: codes.baseAddress, absmax_codes: absmax.baseAddress, group_scales: groups.baseAddress,
                                dynamic_map: map.baseAddress, code_book: book.baseAddress, absmax_offset: absmaxOffset)
                            return withUnsafePointer(to: &view) { body($0) }
                        }
                    }
                }
            }
        }
    }
}
