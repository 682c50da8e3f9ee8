// BertNormalizer: Hugging Face `tokenizers`' BertNormalizer and BertPreTokenizer
// over Unicode scalars: clean text, space out CJK ideographs, strip accents,
// lowercase, then split on whitespace and punctuation.
//
// `tokenizers` classifies control characters, accents (Mn) and punctuation with
// the `unicode_categories` crate, whose tables are Unicode 8.0: characters
// assigned later are none of these (U+2E44 is not split, U+1DF6 is not stripped,
// U+0890 is not removed), while whitespace and lowercasing follow the current
// Unicode of Rust's standard library. `isUnicode8` reproduces that with the
// scalar's age; the golden test and the cases in docs/formats/minilm.md check it.
import Foundation

/// The settings of a `"type": "BertNormalizer"` normalizer.
struct BertNormalizer: Sendable, Equatable {
    var cleanText = true
    var handleChineseChars = true
    var stripAccents = true
    var lowercase = true

    /// `text` normalized as `tokenizers` does, step by step in its order.
    func normalize(_ text: some Sequence<Unicode.Scalar>) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        for s in text {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
                if Self.isWhitespace(s) {
                    scalars.append(" ")
                    continue
                }
            }
            if handleChineseChars && Self.isChineseChar(s) {
                scalars += [" ", s, " "]
            } else {
                scalars.append(s)
            }
        }
        if stripAccents {
            var string = String.UnicodeScalarView()
            string.append(contentsOf: scalars)
            scalars = String(string).decomposedStringWithCanonicalMapping.unicodeScalars.filter {
                !($0.properties.generalCategory == .nonspacingMark && Self.isUnicode8($0))
            }
        }
        if lowercase {
            scalars = scalars.flatMap { s in s.isASCII ? [Unicode.Scalar(UInt8(ascii: s).lowercasedASCII)] : Array(s.properties.lowercaseMapping.unicodeScalars) }
        }
        return scalars
    }

    /// BertPreTokenizer: the words of normalized `scalars` as ranges: whitespace
    /// separates and is dropped, each punctuation scalar is a word of its own.
    static func words(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var start = 0
        for (i, s) in scalars.enumerated() {
            let space = isWhitespace(s)
            guard space || isPunctuation(s) else { continue }
            if start < i { words.append(start..<i) }
            if !space { words.append(i..<(i + 1)) }
            start = i + 1
        }
        if start < scalars.count { words.append(start..<scalars.count) }
        return words
    }

    /// Rust's `char::is_whitespace` (White_Space) plus tab, newline, return.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Cc, Cf or Co in Unicode 8.0, except tab, newline and return.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse: return isUnicode8(s)
        default: return false
        }
    }

    /// ASCII punctuation and symbols (BERT's rule), or Unicode P* in Unicode 8.0.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E: return true
        default: break
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return isUnicode8(s)
        default:
            return false
        }
    }

    /// The CJK ideograph blocks exactly as `tokenizers` lists them (its
    /// Extension E range starts at 0x2B920, not 0x2B820).
    static func isChineseChar(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Assigned in Unicode 8.0 or earlier.
    static func isUnicode8(_ s: Unicode.Scalar) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major <= 8
    }
}

private extension UInt8 {
    var lowercasedASCII: UInt8 { (0x41...0x5A).contains(self) ? self + 0x20 : self }
}
