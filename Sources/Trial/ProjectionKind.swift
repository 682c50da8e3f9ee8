// ProjectionKind: the seven linear maps of a Llama layer, by their Hugging
// Face module names — what a method's `targets` name.

/// The seven linear maps of a Llama layer, named as in Hugging Face modules.
public enum ProjectionKind: String, Sendable, CaseIterable, Codable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module path inside a layer, e.g. `self_attn.q_proj`.
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: "self_attn." + rawValue
        case .gate, .up, .down: "mlp." + rawValue
        }
    }
}
