// Dequantize: converts rows of ggml-typed data (F32, F16, BF16, Q4_0, Q4_1,
// Q8_0, Q6_K) to Float.
//
// The block layouts are ggml's (ggml-common.h), and each kernel computes the
// same float expression in the same order as ggml's `dequantize_row_*` and
// gguf-py's `dequantize_blocks`, so results agree bit for bit. This runs over
// every weight at load (100M+ values), hence the per-block unsafe-pointer
// loops and the split of big tensors across cores.
import Foundation

/// Float conversion of ggml-typed rows.
enum Dequantize {
    /// Converts `rowCount` rows of `rowLength` values of `type` into `destination`
    /// (row-major, `rowCount * rowLength` Floats). Destination row `r` comes
    /// from source row `sourceRow(r)`, which lets a caller reorder rows (the
    /// GGUF q/k unpermute) at no extra cost. The caller has checked that
    /// `type.isSupported`, that `rowLength` is a multiple of the block size, and
    /// that `source` holds every row.
    static func rows(
        of type: GGMLType, from source: UnsafeRawPointer, rowCount: Int, rowLength: Int,
        into destination: UnsafeMutablePointer<Float>, sourceRow: @escaping @Sendable (Int) -> Int = { $0 }
    ) {
        let rowBytes = rowLength / type.blockSize * type.blockBytes
        let convert = kernel(for: type)
        // Each chunk writes its own rows of `destination`, and `source` is read-only.
        let pointers = UncheckedSendable((source, destination))
        let work = { @Sendable (rows: Range<Int>) in
            let (source, destination) = pointers.value
            for r in rows {
                convert(source + sourceRow(r) * rowBytes, destination + r * rowLength, rowLength)
            }
        }
        // Below this many values the threads cost more than they save.
        let parallelThreshold = 1 << 16
        let chunks = min(rowCount, 4 * System.activeProcessorCount)
        if rowCount * rowLength < parallelThreshold || chunks < 2 {
            work(0..<rowCount)
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            work(rowCount * chunk / chunks..<rowCount * (chunk + 1) / chunks)
        }
    }

    /// A function converting one row of `count` values.
    typealias RowKernel = @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void

    static func kernel(for type: GGMLType) -> RowKernel {
        switch type {
        case .f32: return { src, dst, n in UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4) }
        case .f16: return f16Row
        case .bf16: return bf16Row
        case .q4_0: return q4_0Row
        case .q4_1: return q4_1Row
        case .q8_0: return q8_0Row
        case .q6_K: return q6_KRow
        default: return { _, dst, n in dst.update(repeating: .nan, count: n) }
        }
    }

    static func f16Row(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        halfTable.withUnsafeBufferPointer { table in
            for i in 0..<n { dst[i] = table[Int(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))] }
        }
    }

    static func bf16Row(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let bits = UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
            dst[i] = Float(bitPattern: bits)
        }
    }

    /// Q4_0 block (18 bytes): f16 scale d, 16 bytes of nibbles; value j is
    /// the low nibble of byte j, value j+16 the high nibble; x = (q - 8) * d.
    static func q4_0Row(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<n / 32 {
                let block = src + b * 18, y = dst + b * 32
                let d = table[Int(block.loadUnaligned(as: UInt16.self))]
                let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(Int32(qs[j] & 0x0F) - 8) * d
                    y[j + 16] = Float(Int32(qs[j] >> 4) - 8) * d
                }
            }
        }
    }

    /// Q4_1 block (20 bytes): f16 scale d, f16 minimum m, 16 bytes of nibbles
    /// laid out as in Q4_0; x = q * d + m.
    static func q4_1Row(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<n / 32 {
                let block = src + b * 20, y = dst + b * 32
                let d = table[Int(block.loadUnaligned(as: UInt16.self))]
                let m = table[Int(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
                let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    y[j] = Float(qs[j] & 0x0F) * d + m
                    y[j + 16] = Float(qs[j] >> 4) * d + m
                }
            }
        }
    }

    /// Q8_0 block (34 bytes): f16 scale d, 32 signed bytes; x = q * d.
    static func q8_0Row(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<n / 32 {
                let block = src + b * 34, y = dst + b * 32
                let d = table[Int(block.loadUnaligned(as: UInt16.self))]
                let qs = (block + 2).assumingMemoryBound(to: Int8.self)
                for j in 0..<32 { y[j] = Float(qs[j]) * d }
            }
        }
    }

    /// Q6_K super-block (210 bytes, 256 values): ql[128] low nibbles, qh[64]
    /// high 2-bit pairs, 16 signed 8-bit sub-block scales, f16 d. Each half of
    /// 128 values uses 64 bytes of ql, 32 of qh and 8 scales; within a half,
    /// value l + 32k takes nibble (k/2) of ql[l + 32(k%2)], bits 2k..2k+1 of
    /// qh[l], and scale l/16 + 2k; x = d * scale * (q - 32).
    static func q6_KRow(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<n / 256 {
                let block = src + b * 210
                let d = table[Int(block.loadUnaligned(fromByteOffset: 208, as: UInt16.self))]
                for half in 0..<2 {
                    let ql = (block + 64 * half).assumingMemoryBound(to: UInt8.self)
                    let qh = (block + 128 + 32 * half).assumingMemoryBound(to: UInt8.self)
                    let sc = (block + 192 + 8 * half).assumingMemoryBound(to: Int8.self)
                    let y = dst + b * 256 + 128 * half
                    for l in 0..<32 {
                        let s = l / 16
                        let h = qh[l]
                        let q1 = Int32((ql[l] & 0x0F) | ((h & 0x03) << 4)) - 32
                        let q2 = Int32((ql[l + 32] & 0x0F) | (((h >> 2) & 0x03) << 4)) - 32
                        let q3 = Int32((ql[l] >> 4) | (((h >> 4) & 0x03) << 4)) - 32
                        let q4 = Int32((ql[l + 32] >> 4) | (((h >> 6) & 0x03) << 4)) - 32
                        y[l] = d * Float(sc[s]) * Float(q1)
                        y[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                        y[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                        y[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                    }
                }
            }
        }
    }
}

/// Every IEEE half-precision bit pattern as Float: one table look-up is
/// cheaper than a software conversion on CPUs without F16C.
let halfTable: [Float] = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }

/// Host facts the loaders size their parallelism by.
enum System {
    static let activeProcessorCount = max(1, ProcessInfo.processInfo.activeProcessorCount)
}
