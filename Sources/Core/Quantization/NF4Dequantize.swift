// NF4Dequantize: the tile kernel of QLoRA's forward and backward, which turn a
// few rows of a frozen NF4 weight back into Floats in a small scratch buffer
// just before a matrix product, so that no Float copy of the model exists.
//
// Each value is `NF4Code.values[code] * blockScale`, one Float product, as in
// bitsandbytes' `dequantize_4bit`, so the results are bit-exact whatever the
// path: runs of whole blocks go to the C kernel (`factsweep_nf4_dequantize_blocks`,
// one table permute per 16 values on AVX-512); partial blocks scale the
// 16-entry code book once and look values up.
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
            for index in part {
                let lo = elements.lowerBound + index * chunk, hi = min(elements.upperBound, lo + chunk)
                dequantizeBFloat16(lo..<hi, into: out.value + (lo - elements.lowerBound))
            }
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`
    /// as bf16 bits: whole blocks straight from the kernel, partial ones
    /// through a Float block that is then rounded.
    func dequantizeBFloat16(_ elements: Range<Int>, into destination: UnsafeMutablePointer<UInt16>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.blockSize) { buffer in
            guard let floats = buffer.baseAddress else { return }
            forEachRun(in: elements) { run, wholeBlocks in
                let out = destination + (run.lowerBound - elements.lowerBound)
                if let blocks = wholeBlocks {
                    dequantizeBlocks(blocks, intoBFloat16: out)
                } else {
                    dequantize(run, into: floats)
                    convertToBFloat16(out, floats, rows: 1, columns: run.count, ld: run.count)
                }
            }
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`.
    /// Any range works; runs of whole aligned blocks take the kernel.
    public func dequantize(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        forEachRun(in: elements) { run, wholeBlocks in
            let out = destination + (run.lowerBound - elements.lowerBound)
            if let blocks = wholeBlocks { return dequantizeBlocks(blocks, into: out) }
            // Part of one block: its code book scaled once, then looked up.
            let block = run.lowerBound / Self.blockSize
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { table in
                guard let table = table.baseAddress else { return }
                UnsafeMutableRawPointer(table).storeBytes(
                    of: NF4Code.vector * SIMD16(repeating: blockScale(block)), as: SIMD16<Float>.self)
                for k in run {
                    let byte = packed[k / 2]
                    out[k - run.lowerBound] = table[Int(k & 1 == 0 ? byte >> 4 : byte & 0x0F)]
                }
            }
        }
    }

    /// Splits `elements` into runs, in order: each either a run of whole
    /// blocks (`wholeBlocks` their indices) or part of one block (nil).
    private func forEachRun(in elements: Range<Int>, _ body: (Range<Int>, Range<Int>?) -> Void) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        var i = elements.lowerBound
        while i < elements.upperBound {
            let block = i / Self.blockSize, blockStart = block * Self.blockSize
            let whole = i == blockStart ? (elements.upperBound - i) / Self.blockSize : 0
            if whole > 0 {
                body(i..<(i + whole * Self.blockSize), block..<(block + whole))
                i += whole * Self.blockSize
            } else {
                let stop = min(blockStart + Self.blockSize, elements.upperBound)
                body(i..<stop, nil)
                i = stop
            }
        }
    }

    /// Writes whole blocks `blocks` (64 Floats each) with the C kernel;
    /// `portable` takes its plain C loop even where AVX-512 is present (tests).
    func dequantizeBlocks(_ blocks: Range<Int>, into destination: UnsafeMutablePointer<Float>, portable: Bool = false) {
        precondition(blocks.lowerBound >= 0 && blocks.upperBound * Self.blockSize <= count, "blocks \(blocks) not whole")
        withKernelView { factsweep_nf4_dequantize_blocks($0, blocks.lowerBound, blocks.count, destination, portable ? 1 : 0) }
    }

    /// `dequantizeBlocks` rounded to bf16 bits.
    func dequantizeBlocks(_ blocks: Range<Int>, intoBFloat16 destination: UnsafeMutablePointer<UInt16>, portable: Bool = false) {
        precondition(blocks.lowerBound >= 0 && blocks.upperBound * Self.blockSize <= count, "blocks \(blocks) not whole")
        withKernelView {
            factsweep_nf4_dequantize_blocks_bf16($0, blocks.lowerBound, blocks.count, destination, portable ? 1 : 0)
        }
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
