// JSONValue: a JSON document as a tree that keeps integers, numbers, booleans
// and strings apart, so that the spec validator can report every wrong type at
// once instead of stopping at the first, as a Decodable struct would.
import Foundation

/// A parsed JSON value.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits `Int`.
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in no particular order (JSONDecoder does not keep it); readers sort names.
    case object([String: JSONValue])

    /// What the value is, for "expected X, got Y" messages.
    var kindName: String {
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
    var described: String { self == .null ? "null" : "\(kindName) \(shortText)" }

    /// The value as a spec reader shows it back to the user.
    var shortText: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .integer(let i): "\(i)"
        case .number(let d): "\(d)"
        case .string(let s): "\"\(s)\""
        case .array(let items): "[\(items.map(\.shortText).joined(separator: ", "))]"
        case .object: "{…}"
        }
    }
}

extension JSONValue: Decodable {
    init(from decoder: Decoder) throws {
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
