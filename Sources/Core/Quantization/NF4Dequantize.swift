// NF4Dequantize: the tile kernel of QLoRA's forward and backward, which turn a
// few rows of a frozen NF4 weight back into Floats in a small scratch buffer
// just before a matrix product, so that no Float copy of the model exists.
//
// Each value is `NF4Code.values[code] * blockScale`, one Float product, as in
// bitsandbytes' `dequantize_4bit`, so the results are bit-exact whatever the
// path: the C kernel (`factsweep_nf4_dequantize`) takes runs of whole blocks at
// one table permute per 16 values on AVX-512 (two permutes and a blend per 8 on
// AVX2), and parts of blocks value by value.
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
        let out = UncheckedSendable(destination)
        inChunks(rows, context: context) { dequantizeBFloat16($0, into: out.value + $1) }
    }

    /// The same bf16 values kept in Float32 (exact there), for bf16 products
    /// on a CPU without bf16 kernels, which multiply in f32 (`MatmulEngine.hasBF16Kernels`).
    func dequantizeRowsBFloat16Floats(_ rows: Range<Int>, into destination: UnsafeMutablePointer<Float>, context: ComputeContext) {
        let out = UncheckedSendable(destination)
        inChunks(rows, context: context) { dequantizeBFloat16Floats($0, into: out.value + $1) }
    }

    /// Whether `dequantizeRowsBFloat16Blocked` takes this matrix: rows and
    /// columns multiples of 64 (whole blocks per row, whole blocks of the layout).
    var fitsBlockedLayout: Bool { rows > 0 && rows % 64 == 0 && columns % 64 == 0 }

    /// Writes the whole matrix as bf16 bits (the values `dequantizeRowsBFloat16`
    /// writes) into `destination` (`count` values) in the layout oneDNN's
    /// AVX-512 bf16 matmul reads a packed B in (`BA16a64b2a`; docs/formats/nf4.md):
    /// B = W for the backward's dY · W, or, `transposed`, B = Wᵀ for the
    /// forward's X · Wᵀ. Split across `context`'s threads in groups of 64
    /// rows. False, writing nothing, unless rows and columns are multiples of 64.
    func dequantizeRowsBFloat16Blocked(
        transposed: Bool, into destination: UnsafeMutablePointer<UInt16>, context: ComputeContext, path: KernelPath = .widest
    ) -> Bool {
        guard fitsBlockedLayout else { return false }
        let out = UncheckedSendable(destination)
        let groups = rows / 64
        // About 16K values per thread at least, as the plain dequantisation splits.
        let minimumGroups = max(1, (1 << 14) / (64 * columns))
        withKernelView { view in
            let kernel = UncheckedSendable(view)
            context.parallelFor(groups, minimumPerThread: minimumGroups) { part in
                _ = factsweep_nf4_dequantize_bf16_vnni(kernel.value, rows, columns, transposed ? 1 : 0, 64 * part.lowerBound,
                                                       64 * part.upperBound, out.value, path.code)
            }
        }
        return true
    }

    /// Writes B's column panels `panels` (64 columns each) in the layout and
    /// place `dequantizeRowsBFloat16Blocked` gives them, on the calling
    /// thread: `transposed` (B = Wᵀ), W's rows 64·panels; else (B = W), W's
    /// columns 64·panels over all rows. The panels are themselves the layout
    /// of the K × 64·panels.count matrix they hold, so a thread can multiply
    /// by them alone (`FrozenMatrix.multiplyPerThreadBlocked`). False,
    /// writing nothing, unless rows and columns are multiples of 64 and the
    /// panels lie within B.
    func dequantizeBFloat16Panels(
        transposed: Bool, _ panels: Range<Int>, into destination: UnsafeMutablePointer<UInt16>, path: KernelPath = .widest
    ) -> Bool {
        guard fitsBlockedLayout, panels.lowerBound >= 0 else { return false }
        return withKernelView { view in
            factsweep_nf4_dequantize_bf16_vnni_panels(view, rows, columns, transposed ? 1 : 0, panels.lowerBound, panels.upperBound,
                                                      destination, path.code) != 0
        }
    }

    /// Runs `body(elements, offset)` over rows `rows`' elements in chunks of
    /// 64 blocks split across `context`'s threads, so that both threads get
    /// work at every shape; `offset` is the chunk's from the first element.
    private func inChunks(_ rows: Range<Int>, context: ComputeContext, _ body: (Range<Int>, Int) -> Void) {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= self.rows, "rows \(rows) outside 0..<\(self.rows)")
        let elements = rows.lowerBound * columns..<rows.upperBound * columns
        let chunk = 64 * Self.blockSize
        let chunks = (elements.count + chunk - 1) / chunk
        context.parallelFor(chunks, minimumPerThread: 4) { part in
            let lo = elements.lowerBound + part.lowerBound * chunk, hi = min(elements.upperBound, elements.lowerBound + part.upperBound * chunk)
            body(lo..<hi, lo - elements.lowerBound)
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`
    /// as bf16 bits. Any range works.
    func dequantizeBFloat16(_ elements: Range<Int>, into destination: UnsafeMutablePointer<UInt16>, path: KernelPath = .widest) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        withKernelView {
            factsweep_nf4_dequantize_bf16($0, elements.lowerBound, elements.upperBound, destination, path.code)
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`
    /// as bf16 values kept in Float32. Any range works.
    func dequantizeBFloat16Floats(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>, path: KernelPath = .widest) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        withKernelView {
            factsweep_nf4_dequantize_bf16_floats($0, elements.lowerBound, elements.upperBound, destination, path.code)
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`.
    /// Any range works; `path` limits the kernel's code (tests).
    public func dequantize(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        dequantize(elements, into: destination, path: .widest)
    }

    func dequantize(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>, path: KernelPath) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        withKernelView { factsweep_nf4_dequantize($0, elements.lowerBound, elements.upperBound, destination, path.code) }
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
