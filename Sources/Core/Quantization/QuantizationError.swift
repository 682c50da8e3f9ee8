// QuantizationError: why a matrix could not be quantised or a stored quantised
// matrix was refused.

/// An error quantising weights or assembling stored quantised weights.
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    /// The values given do not fill the stated shape.
    case shapeMismatch(what: String, expected: Int, found: Int)
    /// A weight is NaN or infinite; its block would have no usable scale.
    case nonFinite(index: Int, value: Float)
    /// A shape with a zero or negative dimension.
    case emptyShape(rows: Int, columns: Int)

    public var description: String {
        switch self {
        case let .shapeMismatch(what, expected, found):
            return "\(what): expected \(expected) values, found \(found)"
        case let .nonFinite(index, value):
            return "weight \(index) is \(value); NF4 needs finite weights (check the checkpoint)"
        case let .emptyShape(rows, columns):
            return "cannot quantise a [\(rows), \(columns)] matrix: both dimensions must be positive"
        }
    }
}
