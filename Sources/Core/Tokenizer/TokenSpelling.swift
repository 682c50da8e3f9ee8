// TokenSpelling: vocabulary strings compared and hashed byte for byte.

/// A vocabulary string as a dictionary key. Swift's `String` compares by
/// canonical equivalence and normalises non-ASCII text to hash it, which is
/// both slower (most byte-level tokens contain "Ġ") and not what Hugging Face
/// does: Rust compares bytes.
struct TokenSpelling: Hashable, Sendable {
    let text: String

    init(_ text: String) {
        var text = text
        text.makeContiguousUTF8()
        self.text = text
    }

    static func == (a: TokenSpelling, b: TokenSpelling) -> Bool {
        a.text.utf8.elementsEqual(b.text.utf8)
    }

    func hash(into hasher: inout Hasher) {
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil { for byte in text.utf8 { hasher.combine(byte) } }
    }
}
