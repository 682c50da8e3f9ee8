// AddedTokens: tokens such as "<|im_start|>" that are matched in the raw text
// before pre-tokenization, the way Hugging Face's AddedVocabulary splits them out.

/// A token matched verbatim in text rather than built by merges.
public struct AddedToken: Sendable, Equatable {
    public let id: Int32
    public let content: String
    /// Control tokens (GGUF token type 3, `"special": true`): skipped by
    /// `decode(skipSpecialTokens:)` and left as plain text when special parsing is off.
    public let isSpecial: Bool

    public init(id: Int32, content: String, isSpecial: Bool) {
        self.id = id
        self.content = content
        self.isSpecial = isSpecial
    }
}

/// Leftmost-longest matching of added tokens over a scalar array.
struct AddedTokenMatcher: Sendable {
    private struct Candidate: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }
    /// Candidates by first scalar, longest first.
    private let byFirstScalar: [Unicode.Scalar: [Candidate]]

    init(_ tokens: [AddedToken]) {
        var table: [Unicode.Scalar: [Candidate]] = [:]
        for token in tokens {
            let scalars = Array(token.content.unicodeScalars)
            guard let first = scalars.first else { continue }
            table[first, default: []].append(Candidate(scalars: scalars, token: token))
        }
        byFirstScalar = table.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
    }

    /// A matched token: where it sits in the text and which it is.
    struct Match {
        let range: Range<Int>
        let token: AddedToken
    }

    /// The added tokens in `scalars`, leftmost first and longest at each
    /// position; special ones only when `includeSpecial`.
    func matches(in scalars: [Unicode.Scalar], includeSpecial: Bool) -> [Match] {
        guard !byFirstScalar.isEmpty else { return [] }
        var found: [Match] = []
        var i = 0
        scan: while i < scalars.count {
            if let candidates = byFirstScalar[scalars[i]] {
                for candidate in candidates where includeSpecial || !candidate.token.isSpecial {
                    let end = i + candidate.scalars.count
                    if end <= scalars.count && scalars[i..<end].elementsEqual(candidate.scalars) {
                        found.append(Match(range: i..<end, token: candidate.token))
                        i = end
                        continue scan
                    }
                }
            }
            i += 1
        }
        return found
    }
}
