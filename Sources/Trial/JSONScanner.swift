// JSONScanner: a small pull parser over UTF-8 bytes. tokenizer.json files hold
// a 100k-entry vocabulary and 280k merges; Foundation's decoders spend most of a
// second building them, this reads them straight into arrays. It also reads
// stored trial configurations into `JSONValue` trees (`JSONValue(parsing:)`):
// at 100,000 trials Foundation's `JSONDecoder` took two thirds of a report.
import Foundation

/// Pulls JSON values, object keys and array elements from UTF-8 bytes in order.
public struct JSONScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    /// Arrays and objects `value()` is inside of.
    private var depth = 0

    /// `value()` recurses once per nested array or object; a limit keeps a
    /// hostile file (a million `[`) from overflowing the stack. Hugging Face's
    /// files nest a handful deep; Foundation's JSON parser stops at 512 too.
    public static let maximumDepth = 512

    /// Why the text is not JSON, with the byte offset.
    public struct SyntaxError: Error, CustomStringConvertible {
        public let offset: Int
        public let expected: String
        public var description: String { "invalid JSON at byte \(offset): expected \(expected)" }
    }

    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses `data` with a scanner that lives only for `body`.
    public static func parse<T>(_ data: [UInt8], _ body: (inout JSONScanner) throws -> T) throws -> T {
        try data.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            return try body(&scanner)
        }
    }

    private func fail(_ expected: String) -> SyntaxError { SyntaxError(offset: position, expected: expected) }

    private mutating func peek() -> UInt8? {
        while position < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[position]) { position += 1 }
        return position < bytes.count ? bytes[position] : nil
    }

    /// The last byte before `position` that is not whitespace: what a comma may follow, and what a first
    /// key or element follows (the `{` or `[` just entered). A string's last byte is its closing quote, so
    /// a `{` inside one is never seen here.
    private func previousSignificant() -> UInt8? {
        var index = position - 1
        while index >= 0, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index -= 1 }
        return index >= 0 ? bytes[index] : nil
    }

    private mutating func consume(_ byte: UInt8, _ expected: String) throws {
        guard peek() == byte else { throw fail(expected) }
        position += 1
    }

    /// Enters an object; then call `nextKey` until it returns nil.
    public mutating func beginObject() throws { try consume(UInt8(ascii: "{"), "{") }

    /// The next key of the current object, positioned at its value, or nil after its `}`.
    public mutating func nextKey() throws -> String? {
        switch peek() {
        case UInt8(ascii: "}"): position += 1; return nil
        case UInt8(ascii: ","):
            guard previousSignificant() != UInt8(ascii: "{") else { throw fail("a key or }") }
            position += 1
        default:
            guard previousSignificant() == UInt8(ascii: "{") else { throw fail(", or }") }
        }
        let key = try string()
        try consume(UInt8(ascii: ":"), ":")
        return key
    }

    /// Enters an array; then call `nextElement` until it returns false.
    public mutating func beginArray() throws { try consume(UInt8(ascii: "["), "[") }

    /// Whether another element follows (positioned at it), false after the `]`.
    public mutating func nextElement() throws -> Bool {
        switch peek() {
        case UInt8(ascii: "]"): position += 1; return false
        case UInt8(ascii: ","):
            guard previousSignificant() != UInt8(ascii: "[") else { throw fail("a value or ]") }
            position += 1
            return true
        case .some:
            guard previousSignificant() == UInt8(ascii: "[") else { throw fail(", or ]") }
            return true
        case nil: throw fail("]")
        }
    }

    /// Throws unless only whitespace is left: a document is one value.
    public mutating func end() throws { guard peek() == nil else { throw fail("the end of the text") } }

    /// Whether the next value is a string, without consuming it.
    public mutating func atString() -> Bool { peek() == UInt8(ascii: "\"") }

    public mutating func string() throws -> String {
        try consume(UInt8(ascii: "\""), "a string")
        let start = position
        while position < bytes.count, bytes[position] != UInt8(ascii: "\""), bytes[position] != UInt8(ascii: "\\"),
              bytes[position] >= 0x20 {
            position += 1
        }
        guard position < bytes.count else { throw fail("\"") }
        guard bytes[position] >= 0x20 else { throw fail("an escape, not a control character") }
        if bytes[position] == UInt8(ascii: "\"") {  // no escapes: the common case
            position += 1
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<(position - 1)]), as: UTF8.self)
        }
        var utf8 = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: utf8, as: UTF8.self) }
            guard byte >= 0x20 else { position -= 1; throw fail("an escape, not a control character") }
            guard byte == UInt8(ascii: "\\") else { utf8.append(byte); continue }
            guard position < bytes.count else { break }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "u"):
                var value = try hex4()
                if (0xD800..<0xDC00).contains(value), position + 1 < bytes.count,
                   bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                    position += 2
                    let low = try hex4()
                    value = (0xDC00..<0xE000).contains(low) ? 0x10000 + (value - 0xD800) << 10 + (low - 0xDC00) : 0xFFFD
                }
                utf8.append(contentsOf: String(Unicode.Scalar(value).map(Character.init) ?? "\u{FFFD}").utf8)
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
            default: position -= 1; throw fail("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)")
            }
        }
        throw fail("\"")
    }

    private mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Character(Unicode.Scalar(bytes[position])).hexDigitValue else { throw fail("a hex digit") }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// A number as JSON writes one: `-`?, digits without a leading zero, then `.` and digits, then `e` or
    /// `E`, a sign and digits, each part optional but the first digits; finite (`1e400` is refused, as
    /// `JSONDecoder` refuses it).
    public mutating func number() throws -> Double {
        _ = peek()
        let start = position
        func at(_ characters: String) -> Bool { position < bytes.count && characters.utf8.contains(bytes[position]) }
        func digits() -> Int {
            let first = position
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
            return position - first
        }
        if at("-") { position += 1 }
        let integral = position
        let count = digits()
        guard count > 0, count == 1 || bytes[integral] != UInt8(ascii: "0") else { position = integral; throw fail("a number") }
        if at(".") {
            position += 1
            guard digits() > 0 else { throw fail("digits after .") }
        }
        if at("eE") {
            position += 1
            if at("+-") { position += 1 }
            guard digits() > 0 else { throw fail("digits of an exponent") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { position = start; throw fail("a finite number") }
        return value
    }

    /// An integer that fits `Int32`, as token ids must.
    public mutating func int32() throws -> Int32 {
        let value = try number()
        guard let exact = Int32(exactly: value) else { throw fail("an integer id") }
        return exact
    }

    private mutating func literal(_ word: String, _ value: JSONValue) throws -> JSONValue {
        for byte in word.utf8 {
            guard position < bytes.count, bytes[position] == byte else { throw fail(word) }
            position += 1
        }
        return value
    }

    /// Any value, as a tree.
    public mutating func value() throws -> JSONValue {
        let next = peek()
        let nests = next == UInt8(ascii: "{") || next == UInt8(ascii: "[")
        if nests {
            guard depth < Self.maximumDepth else { throw fail("at most \(Self.maximumDepth) nested arrays and objects") }
            depth += 1
        }
        defer { if nests { depth -= 1 } }
        switch next {
        case UInt8(ascii: "{"):
            try beginObject()
            var fields: [String: JSONValue] = [:]
            // A name given twice keeps its first value, as JSONDecoder keeps it.
            while let key = try nextKey() {
                let member = try value()
                if fields[key] == nil { fields[key] = member }
            }
            return .object(fields)
        case UInt8(ascii: "["):
            try beginArray()
            var items: [JSONValue] = []
            while try nextElement() { items.append(try value()) }
            return .array(items)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case .some:
            let start = position
            let value = try number()
            // As in a sweep spec: an integer is written without fraction or exponent. Read from its digits,
            // not through `value`: a Double holds integers exactly only up to 2^53 (a seed may be larger).
            let written = UnsafeBufferPointer(rebasing: bytes[start..<position])
            guard !written.contains(where: { "+.eE".utf8.contains($0) }),
                  let integer = Int(String(decoding: written, as: UTF8.self)) else {
                return .number(value)
            }
            return .integer(integer)
        case nil: throw fail("a value")
        }
    }
}
