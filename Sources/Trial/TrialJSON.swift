// TrialJSON: the one JSON coding of the trial's records wherever they are
// written — on the wire, in the run database — so that a diverged trial's
// NaN loss travels and is stored like any other number.
import Foundation

/// Coders for trial records. JSON has no NaN or infinity; a diverged run
/// has them, so they are written as the strings "nan", "inf", "-inf".
public enum TrialJSON {
    public static let nonFinite = (positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")

    /// Sorted keys (equal records give equal bytes), slashes unescaped.
    /// A new coder per use: JSONEncoder is not documented as thread-safe.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        return decoder
    }
}
