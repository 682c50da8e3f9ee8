// JSONText: JSON written with its keys in a chosen order, for the files that
// Hugging Face reads (tokenizer.json, tokenizer_config.json): their own key
// order keeps the files recognisable next to the originals, which a
// dictionary-based encoder would shuffle.

/// A fragment of compact JSON text, built from literals in the order written.
struct JSONText: Sendable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByNilLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    /// The JSON itself.
    let text: String

    private init(raw: String) { text = raw }

    init(stringLiteral value: String) { self = .string(value) }
    init(booleanLiteral value: Bool) { text = value ? "true" : "false" }
    init(integerLiteral value: Int) { self = .int(value) }
    init(nilLiteral: ()) { text = "null" }
    init(arrayLiteral elements: JSONText...) { self = .array(elements) }
    init(dictionaryLiteral fields: (String, JSONText)...) { self = .object(fields) }

    static func int<T: BinaryInteger>(_ value: T) -> JSONText { JSONText(raw: "\(value)") }

    static func bool(_ value: Bool) -> JSONText { JSONText(booleanLiteral: value) }

    /// `value` quoted, escaping only what JSON requires (quote, backslash,
    /// controls) so that non-ASCII text stays readable, as Hugging Face writes it.
    static func string(_ value: String) -> JSONText {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return JSONText(raw: out)
    }

    static func array<S: Sequence>(_ elements: S) -> JSONText where S.Element == JSONText {
        JSONText(raw: "[" + elements.lazy.map(\.text).joined(separator: ",") + "]")
    }

    /// An object with `fields` in the given order; `oneFieldPerLine` for the
    /// top level of a file that people open.
    static func object<S: Sequence>(_ fields: S, oneFieldPerLine: Bool = false) -> JSONText
    where S.Element == (String, JSONText) {
        let members = fields.lazy.map { string($0.0).text + ":" + $0.1.text }
        guard oneFieldPerLine else { return JSONText(raw: "{" + members.joined(separator: ",") + "}") }
        return JSONText(raw: "{\n  " + members.joined(separator: ",\n  ") + "\n}\n")
    }
}
