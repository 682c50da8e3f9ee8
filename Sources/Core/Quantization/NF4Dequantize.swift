// NF4Dequantize: the tile kernel of QLoRA's forward and backward, which turn a
// few rows of a frozen NF4 weight back into Floats in a small scratch buffer
// just before a matrix product, so that no Float copy of the model exists.
//
// Each value is `NF4Code.values[code] * blockScale`, one Float product, as in
// bitsandbytes' `dequantize_4bit`, so the results are bit-exact whatever the
// path: whole blocks look up code-book pairs per byte and scale 16 lanes at a
// time; partial blocks scale the 16-entry code book once and look values up.

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
        // Chunks of 64 blocks: dequantised into a small Float buffer that stays
        // in L1, then rounded into place.
        let chunk = 64 * Self.blockSize
        let chunks = (elements.count + chunk - 1) / chunk
        let out = UncheckedSendable(destination)
        context.parallelFor(chunks, minimumPerThread: 4) { part in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buffer in
                guard let floats = buffer.baseAddress else { return }
                for index in part {
                    let lo = elements.lowerBound + index * chunk, hi = min(elements.upperBound, lo + chunk)
                    dequantize(lo..<hi, into: floats)
                    convertToBFloat16(out.value + (lo - elements.lowerBound), floats, rows: 1, columns: hi - lo, ld: hi - lo)
                }
            }
        }
    }

    /// Writes the weights with flattened indices `elements` into `destination`.
    /// Any range works; whole aligned blocks take the fast path.
    public func dequantize(_ elements: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        precondition(elements.lowerBound >= 0 && elements.upperBound <= count, "elements \(elements) outside 0..<\(count)")
        let codeBook = NF4Code.vector
        NF4Code.pairs.withUnsafeBufferPointer { pairs in
            packed.withUnsafeBufferPointer { packed in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { table in
                    guard let pairs = pairs.baseAddress, let bytes = packed.baseAddress, let table = table.baseAddress
                    else { return }
                    var i = elements.lowerBound
                    var out = destination
                    while i < elements.upperBound {
                        let block = i / Self.blockSize
                        let blockStart = block * Self.blockSize
                        let stop = min(blockStart + Self.blockSize, elements.upperBound)
                        let scale = blockScale(block)
                        if i == blockStart && stop - i == Self.blockSize {
                            Self.dequantizeBlock(bytes + blockStart / 2, scale: scale, pairs: pairs, into: out)
                        } else {
                            UnsafeMutableRawPointer(table).storeBytes(
                                of: codeBook * SIMD16(repeating: scale), as: SIMD16<Float>.self)
                            for k in i..<stop {
                                let byte = bytes[k / 2]
                                out[k - i] = table[Int(k & 1 == 0 ? byte >> 4 : byte & 0x0F)]
                            }
                        }
                        out += stop - i
                        i = stop
                    }
                }
            }
        }
    }

    /// One whole block: 32 bytes to 64 Floats, 16 at a time.
    @inline(__always)
    private static func dequantizeBlock(
        _ bytes: UnsafePointer<UInt8>, scale: Float, pairs: UnsafePointer<SIMD2<Float>>,
        into out: UnsafeMutablePointer<Float>
    ) {
        let scales = SIMD16<Float>(repeating: scale)
        for j in stride(from: 0, to: blockSize / 2, by: 8) {
            let b = bytes + j
            let low = SIMD8(
                lowHalf: SIMD4(lowHalf: pairs[Int(b[0])], highHalf: pairs[Int(b[1])]),
                highHalf: SIMD4(lowHalf: pairs[Int(b[2])], highHalf: pairs[Int(b[3])]))
            let high = SIMD8(
                lowHalf: SIMD4(lowHalf: pairs[Int(b[4])], highHalf: pairs[Int(b[5])]),
                highHalf: SIMD4(lowHalf: pairs[Int(b[6])], highHalf: pairs[Int(b[7])]))
            store16(SIMD16(lowHalf: low, highHalf: high) * scales, out + 2 * j)
        }
    }
}
