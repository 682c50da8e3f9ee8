// JSONValue: a JSON document as a tree that keeps integers, numbers, booleans
// and strings apart — for the sweep spec's validator, which reports every wrong
// type at once instead of stopping at the first as a Decodable struct would,
// and for the small sections of tokenizer.json that are checked field by field.
import Foundation

/// A parsed JSON value.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits `Int`.
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in no particular order (JSONDecoder does not keep it); readers sort names.
    case object([String: JSONValue])

    /// The member `key` of an object; nil for anything else.
    public subscript(key: String) -> JSONValue? {
        if case let .object(fields) = self { return fields[key] }
        return nil
    }

    public var string: String? { if case let .string(value) = self { value } else { nil } }
    public var bool: Bool? { if case let .bool(value) = self { value } else { nil } }
    public var array: [JSONValue]? { if case let .array(value) = self { value } else { nil } }
    /// An integer, also when written as a number with an integral value (`2.0`).
    public var int: Int? {
        switch self {
        case let .integer(value): value
        case let .number(value): Int(exactly: value)
        default: nil
        }
    }
    public var isNull: Bool { self == .null }

    /// What the value is, for "expected X, got Y" messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    /// "a number 3", "a string \"x\"", "null": what the user wrote, for "got …".
    public var described: String { self == .null ? "null" : "\(kindName) \(shortText)" }

    /// The value as a reader shows it back to the user; objects abbreviated.
    public var shortText: String {
        switch self {
        case .object: "{…}"
        default: description
        }
    }
}

extension JSONValue: CustomStringConvertible {
    /// The value as JSON-like text, object members sorted by name.
    public var description: String {
        switch self {
        case .null: "null"
        case let .bool(value): "\(value)"
        case let .integer(value): "\(value)"
        case let .number(value): "\(value)"
        case let .string(value): value.debugDescription
        case let .array(values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case let .object(fields):
            "{" + fields.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription): \($0.value)" }
                .joined(separator: ", ") + "}"
        }
    }
}

extension JSONValue {
    /// `text`, one JSON document, read by `JSONScanner`: several times faster than `JSONDecoder` into this
    /// type, which took two thirds of a report at 100,000 trials. An integer is a number written without
    /// fraction or exponent that fits `Int` (`2.0` is a number, where `JSONDecoder` makes it an integer).
    public init(parsing text: String) throws {
        var text = text
        self = try text.withUTF8 { bytes in
            var scanner = JSONScanner(bytes)
            let value = try scanner.value()
            try scanner.end()
            return value
        }
    }
}

extension JSONValue: Decodable {
    public init(from decoder: Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !list.isAtEnd { items.append(try list.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [String: JSONValue] = [:]
            for key in object.allKeys { members[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
            self = .object(members)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let i = try? single.decode(Int.self) { self = .integer(i) }
        else if let d = try? single.decode(Double.self) { self = .number(d) }
        else { self = .string(try single.decode(String.self)) }
    }
}

/// Any member name of a JSON object.
private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
