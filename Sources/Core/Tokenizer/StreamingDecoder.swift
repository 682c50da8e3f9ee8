// StreamingDecoder: text for token ids as they are generated, holding back the
// bytes of a character split across tokens until the rest arrives.

/// Incremental decoding for generation: the concatenated outputs of
/// `append` and `finish` equal `tokenizer.decode` of all the ids.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text completed by `id` (empty while a character is still incomplete).
    public mutating func append(_ id: Int32) -> String {
        if skipSpecialTokens && tokenizer.isSpecial(id) { return "" }
        pending.append(contentsOf: tokenizer.bytes(of: id))
        let ready = Self.completePrefixLength(pending)
        guard ready > 0 else { return "" }
        let text = String(decoding: pending[..<ready], as: UTF8.self)
        pending.removeFirst(ready)
        return text
    }

    /// Whatever is held back, broken bytes as U+FFFD; call when generation ends.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of `bytes` without a trailing incomplete-but-so-far-valid UTF-8
    /// sequence. Cutting just before a lead byte never splits an invalid
    /// subsequence, so decoding the parts apart gives the same replacements.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var start = bytes.count
        // Walk back over at most three continuation bytes to the lead byte.
        while start > 0 && bytes.count - start < 4 {
            start -= 1
            let byte = bytes[start]
            if byte & 0xC0 == 0x80 { continue }  // continuation
            let needed: Int
            switch byte {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return bytes.count  // ASCII or a byte that can never start a character
            }
            return bytes.count - start < needed ? start : bytes.count
        }
        return bytes.count
    }
}
