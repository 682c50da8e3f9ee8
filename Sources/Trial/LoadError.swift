// LoadError: every way a model, tokenizer or weight file can be refused, each
// naming the file and the problem so that a user can act on it.

/// An error reading a model file; `description` names the file.
public enum LoadError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case truncated(file: String, reason: String)
    case badMagic(file: String, found: String, expected: String)
    case unsupportedVersion(file: String, version: Int)
    case unsupportedType(file: String, tensor: String, type: String)
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    case missingTensor(file: String, tensor: String)
    case badConfiguration(file: String, reason: String)
    case malformed(file: String, reason: String)
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(f, r): return "\(f): cannot read: \(r)"
        case let .truncated(f, r): return "\(f): file is truncated: \(r)"
        case let .badMagic(f, found, expected): return "\(f): not a \(expected) file (magic \(found))"
        case let .unsupportedVersion(f, v): return "\(f): unsupported format version \(v)"
        case let .unsupportedType(f, t, ty): return "\(f): tensor \(t) has unsupported type \(ty)"
        case let .shapeMismatch(f, t, e, found): return "\(f): tensor \(t) has shape \(found), expected \(e)"
        case let .missingTensor(f, t): return "\(f): tensor \(t) is missing"
        case let .badConfiguration(f, r): return "\(f): \(r)"
        case let .malformed(f, r): return "\(f): \(r)"
        case let .unwritable(f, r): return "\(f): cannot write: \(r)"
        }
    }
}
