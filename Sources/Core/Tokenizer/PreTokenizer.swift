// PreTokenizer: the regex splits that cut text into words before BPE, written
// as hand scanners over Unicode scalars (no regex engine) that reproduce what
// Hugging Face `tokenizers` (Oniguruma) matches, alternative by alternative.

/// How text is cut into chunks before byte-pair merging.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3 = "llama-bpe"
    /// SmolLM2: every numeric scalar on its own (`Digits(individual_digits)`),
    /// then GPT-2's split of what lies between.
    case smollm

    /// Llama 3's split regex exactly as its tokenizer.json spells it: read
    /// back it must match character for character.
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Appends to `chunks` the ranges of `text.scalars[range]` that BPE encodes separately.
    func split(_ text: ClassifiedText, _ range: Range<Int>, into chunks: inout [Range<Int>]) {
        switch self {
        case .gpt2: text.splitGPT2(range, into: &chunks)
        case .llama3: text.splitLlama3(range, into: &chunks)
        case .smollm:
            var start = range.lowerBound
            for i in range where text.classes[i] == .number {
                if start < i { text.splitGPT2(start..<i, into: &chunks) }
                chunks.append(i..<(i + 1))
                start = i + 1
            }
            if start < range.upperBound { text.splitGPT2(start..<range.upperBound, into: &chunks) }
        }
    }
}

/// The regex classes a scalar can fall in: `\p{L}`, `\p{N}`, `\s` or none of them.
enum ScalarClass: UInt8 {
    case letter, number, whitespace, other

    init(_ scalar: Unicode.Scalar) {
        if scalar.isASCII {
            let v = scalar.value
            if (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) { self = .letter }
            else if (0x30...0x39).contains(v) { self = .number }
            else if v == 0x20 || (0x09...0x0D).contains(v) { self = .whitespace }
            else { self = .other }
            return
        }
        let properties = scalar.properties
        // Oniguruma's \s is the Unicode White_Space property.
        if properties.isWhitespace { self = .whitespace; return }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            self = .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            self = .number
        default:
            self = .other
        }
    }
}

/// Text as scalars with each scalar's class and UTF-8 position, computed once per encode.
struct ClassifiedText {
    let scalars: [Unicode.Scalar]
    let classes: [ScalarClass]
    /// The text's UTF-8, and where each scalar's bytes start (one extra entry for the end).
    let utf8: [UInt8]
    let byteOffsets: [Int]

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
        classes = scalars.map(ScalarClass.init)
        utf8 = Array(text.utf8)
        var offsets = [Int]()
        offsets.reserveCapacity(scalars.count + 1)
        var offset = 0
        for scalar in scalars {
            offsets.append(offset)
            offset += UTF8.width(scalar)
        }
        offsets.append(offset)
        byteOffsets = offsets
    }

    /// The UTF-8 bytes of `scalars[range]`.
    func bytes(_ range: Range<Int>) -> ArraySlice<UInt8> {
        utf8[byteOffsets[range.lowerBound]..<byteOffsets[range.upperBound]]
    }

    private func isLineBreak(_ i: Int) -> Bool { scalars[i] == "\r" || scalars[i] == "\n" }
    private func isSpace(_ i: Int) -> Bool { scalars[i] == " " }

    /// End of the run of `cls` starting at `i`, at most `limit`.
    private func runEnd(_ cls: ScalarClass, from i: Int, limit: Int) -> Int {
        var j = i
        while j < limit && classes[j] == cls { j += 1 }
        return j
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `i`, ASCII case folded when asked
    /// (Oniguruma's `(?i:)` would also fold U+017F to s, but Hugging Face's
    /// Llama 3 output shows "'ſ" is not split off, so only ASCII folds here).
    private func contractionLength(at i: Int, end: Int, ignoringCase: Bool) -> Int {
        guard scalars[i] == "'", i + 1 < end else { return 0 }
        func letter(_ k: Int) -> UInt32? {
            guard k < end, scalars[k].isASCII else { return nil }
            let v = scalars[k].value
            return ignoringCase && (0x41...0x5A).contains(v) ? v + 0x20 : v
        }
        switch letter(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // 's 't 'm 'd
        case 0x72, 0x76: return letter(i + 2) == 0x65 ? 3 : 0  // 're 've
        case 0x6C: return letter(i + 2) == 0x6C ? 3 : 0  // 'll
        default: return 0
        }
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar `i`: the run, less its last
    /// scalar when a non-space follows and more than one scalar would remain.
    private func whitespaceEnd(from i: Int, end: Int) -> Int {
        let j = runEnd(.whitespace, from: i, limit: end)
        return j < end && j - i > 1 ? j - 1 : j
    }

    func splitGPT2(_ range: Range<Int>, into chunks: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            var next: Int
            let contraction = contractionLength(at: i, end: end, ignoringCase: false)
            if contraction > 0 {
                next = i + contraction
            } else {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run after it.
                let start = isSpace(i) && i + 1 < end && classes[i + 1] != .whitespace ? i + 1 : i
                let cls = classes[start]
                next = cls == .whitespace ? whitespaceEnd(from: i, end: end) : runEnd(cls, from: start, limit: end)
            }
            chunks.append(i..<next)
            i = next
        }
    }

    func splitLlama3(_ range: Range<Int>, into chunks: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            let next: Int
            let cls = classes[i]
            let contraction = contractionLength(at: i, end: end, ignoringCase: true)
            if contraction > 0 {
                next = i + contraction
            } else if cls == .letter {
                next = runEnd(.letter, from: i, limit: end)
            } else if cls != .number && !isLineBreak(i) && i + 1 < end && classes[i + 1] == .letter {
                // `[^\r\n\p{L}\p{N}]?\p{L}+`: one leading non-letter (space, tab, punctuation).
                next = runEnd(.letter, from: i + 1, limit: end)
            } else if cls == .number {
                next = min(runEnd(.number, from: i, limit: end), i + 3)
            } else if cls == .other || (isSpace(i) && i + 1 < end && classes[i + 1] == .other) {
                // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                var j = runEnd(.other, from: cls == .other ? i : i + 1, limit: end)
                while j < end && isLineBreak(j) { j += 1 }
                next = j
            } else {
                // `\s*[\r\n]+` takes the whitespace up to its last line break;
                // otherwise `\s+(?!\S)|\s+`.
                let runEnd = runEnd(.whitespace, from: i, limit: end)
                if let lastBreak = (i..<runEnd).last(where: isLineBreak) {
                    next = lastBreak + 1
                } else {
                    next = whitespaceEnd(from: i, end: end)
                }
            }
            chunks.append(i..<next)
            i = next
        }
    }
}
