// GGMLType: the element and block types a GGUF tensor may be stored in, with
// their block geometry.
//
// Every type ggml defines is listed, so that a file using one we cannot
// convert still parses and has its tensor bounds checked; reading such a tensor
// is then refused by name (`LoadError.unsupportedType`). Sizes are ggml's
// `GGML_QUANT_SIZES` (values per block, bytes per block).
import Trial

/// A ggml tensor type, as stored in a GGUF tensor info.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_M = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

    /// Number of values in one block (1 for plain element types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq2_XXS, .iq2_XS, .iq3_XXS, .iq1_S, .iq3_S,
             .iq2_S, .iq4_XS, .iq1_M, .tq1_0, .tq2_0:
            return 256
        }
    }

    /// Number of bytes in one block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0, .iq4_NL: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 40
        case .mxfp4: return 17
        case .q2_K: return 84
        case .q3_K, .iq3_S: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        case .iq2_XXS, .tq2_0: return 66
        case .iq2_XS: return 74
        case .iq3_XXS: return 98
        case .iq1_S: return 50
        case .iq2_S: return 82
        case .iq4_XS: return 136
        case .iq1_M: return 56
        case .tq1_0: return 54
        }
    }

    /// Whether FactSweep can convert this type to Float.
    public var isSupported: Bool {
        switch self {
        case .f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q6_K: return true
        default: return false
        }
    }

    /// ggml's name for the type (`Q4_1`, `F32`, ...).
    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .q8_K: "Q8_K"
        case .iq2_XXS: "IQ2_XXS"
        case .iq2_XS: "IQ2_XS"
        case .iq3_XXS: "IQ3_XXS"
        case .iq1_S: "IQ1_S"
        case .iq4_NL: "IQ4_NL"
        case .iq3_S: "IQ3_S"
        case .iq2_S: "IQ2_S"
        case .iq4_XS: "IQ4_XS"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .f64: "F64"
        case .iq1_M: "IQ1_M"
        case .bf16: "BF16"
        case .tq1_0: "TQ1_0"
        case .tq2_0: "TQ2_0"
        case .mxfp4: "MXFP4"
        }
    }
}
