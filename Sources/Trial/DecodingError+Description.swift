// DecodingError+Description: a decoding failure as one line naming the JSON
// path at fault, for messages about configs, checkpoints and protocol bodies.
import Foundation

extension DecodingError {
    /// A one-line description naming the JSON path at fault.
    public var shortDescription: String {
        func path(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch self {
        case let .typeMismatch(type, ctx): return "field \(path(ctx.codingPath)): expected \(type)"
        case let .valueNotFound(_, ctx): return "field \(path(ctx.codingPath)): missing value"
        case let .keyNotFound(key, ctx): return "missing field \(path(ctx.codingPath + [key]))"
        case let .dataCorrupted(ctx): return "invalid JSON at \(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "\(self)"
        }
    }
}
