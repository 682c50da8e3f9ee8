// NF4Tensor: one weight matrix stored as QLoRA stores its frozen base weights,
// in bitsandbytes' NF4 layout with double-quantised block scales.
//
// Layout (docs/formats/nf4.md): the matrix [rows, columns] is flattened in
// row-major order and cut into blocks of 64 values (the last may be short;
// blocks may straddle rows). Each value becomes a 4-bit code into `NF4Code`;
// two codes share a byte, the first value in the high nibble. Each block's
// absmax is not kept as a Float: the mean of all absmax values (`absmaxOffset`)
// is subtracted and the differences are quantised to 8-bit codes into
// `DynamicMap`, in groups of 256 with one Float scale per group. About 0.52
// bytes per weight instead of 4.

/// A matrix in bitsandbytes' NF4 format (blocksize 64, compress_statistics).
public struct NF4Tensor: Sendable {
    /// Values per NF4 block (one absmax each), bitsandbytes' QLoRA default.
    public static let blockSize = 64
    /// Absmax values per group of the nested 8-bit quantisation.
    public static let absmaxGroupSize = DynamicMap.blockSize

    public let rows: Int
    public let columns: Int
    /// 4-bit codes, two per byte, first of a pair in the high nibble; an odd
    /// count ends with code 7 (zero) in the last low nibble. `(count + 1) / 2` bytes.
    public let packed: [UInt8]
    /// Per block, the 8-bit `DynamicMap` code of `(absmax - absmaxOffset) / groupScale`.
    public let quantizedAbsmax: [UInt8]
    /// Per group of 256 blocks, the largest |absmax - absmaxOffset| (bitsandbytes'
    /// nested `absmax`).
    public let absmaxScales: [Float]
    /// The mean of the Float absmax values (bitsandbytes' `offset`).
    public let absmaxOffset: Float

    /// Assembles stored parts, checking that their sizes fit the shape.
    public init(
        rows: Int, columns: Int, packed: [UInt8], quantizedAbsmax: [UInt8], absmaxScales: [Float], absmaxOffset: Float
    ) throws {
        guard rows > 0, columns > 0 else { throw QuantizationError.emptyShape(rows: rows, columns: columns) }
        let count = rows * columns
        let blocks = Self.blockCount(for: count)
        for (what, expected, found) in [
            ("packed NF4 bytes", (count + 1) / 2, packed.count),
            ("quantised absmax codes", blocks, quantizedAbsmax.count),
            ("absmax group scales", (blocks + Self.absmaxGroupSize - 1) / Self.absmaxGroupSize, absmaxScales.count),
        ] where expected != found {
            throw QuantizationError.shapeMismatch(what: what, expected: expected, found: found)
        }
        self.rows = rows
        self.columns = columns
        self.packed = packed
        self.quantizedAbsmax = quantizedAbsmax
        self.absmaxScales = absmaxScales
        self.absmaxOffset = absmaxOffset
    }

    /// Number of weights.
    public var count: Int { rows * columns }

    /// Number of 64-value blocks.
    public var blockCount: Int { quantizedAbsmax.count }

    /// Bytes held: packed codes, absmax codes, group scales and the offset.
    public var byteCount: Int { packed.count + quantizedAbsmax.count + 4 * absmaxScales.count + 4 }

    static func blockCount(for count: Int) -> Int { (count + blockSize - 1) / blockSize }

    /// Block `block`'s scale: its absmax as bitsandbytes dequantises it,
    /// `code * groupScale` then `+ offset`, two Float roundings in that order.
    @inline(__always)
    public func blockScale(_ block: Int) -> Float {
        let scaled = DynamicMap.values[Int(quantizedAbsmax[block])] * absmaxScales[block / Self.absmaxGroupSize]
        return scaled + absmaxOffset
    }
}
