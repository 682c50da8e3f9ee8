// JSONValue: any JSON value, for the small tokenizer.json sections that are
// checked field by field (the large vocabulary and merges are read typed).

/// A decoded JSON value of unknown shape.
enum JSONValue: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    subscript(key: String) -> JSONValue? {
        if case let .object(fields) = self { return fields[key] }
        return nil
    }

    var string: String? { if case let .string(value) = self { return value } else { return nil } }
    var bool: Bool? { if case let .bool(value) = self { return value } else { return nil } }
    var array: [JSONValue]? { if case let .array(value) = self { return value } else { return nil } }
    var int: Int? {
        if case let .number(value) = self, let exact = Int(exactly: value) { return exact }
        return nil
    }
    var isNull: Bool { if case .null = self { return true } else { return false } }

    var description: String {
        switch self {
        case .null: return "null"
        case let .bool(value): return "\(value)"
        case let .number(value): return "\(value)"
        case let .string(value): return value.debugDescription
        case let .array(values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case let .object(fields):
            return "{" + fields.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription): \($0.value)" }
                .joined(separator: ", ") + "}"
        }
    }
}
