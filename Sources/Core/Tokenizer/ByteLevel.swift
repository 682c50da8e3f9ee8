// ByteLevel: GPT-2's reversible mapping between bytes and printable Unicode
// scalars, under which byte-level BPE vocabularies are written ("Ġ" is a space).

/// The byte-to-scalar table of GPT-2's `bytes_to_unicode`, used by every
/// byte-level BPE vocabulary (SmolLM2, Llama 3).
enum ByteLevel {
    /// Scalar that stands for each byte in vocabulary strings.
    static let scalarForByte: [Unicode.Scalar] = {
        // Printable Latin-1 bytes stand for themselves; the rest (controls,
        // space, DEL, NBSP, soft hyphen) are moved to 256 and up, in byte order,
        // so that no vocabulary string contains whitespace or controls.
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var shifted: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(shifted) ?? " "
                shifted += 1
            }
        }
        return table
    }()

    /// Inverse of `scalarForByte`, indexed by scalar value (all are below 324).
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The bytes a vocabulary string stands for, or nil when it contains a
    /// scalar outside the table (then Hugging Face's decoder uses the string's
    /// own UTF-8, as added tokens such as "<|im_start|>" never need).
    static func decode(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            guard value < byteForScalar.count, byteForScalar[value] >= 0 else { return nil }
            bytes.append(UInt8(byteForScalar[value]))
        }
        return bytes
    }
}
