// LinearStorage: how a trial's model holds its projections — a fact of the
// trial's settings (method and precision), so that the worker that loads the
// model and the report that describes it decide it by the same rule.

/// How a model keeps its seven projections per layer.
public enum LinearStorage: String, Sendable, Codable, CaseIterable {
    /// Float32 in the parameter arena (full fine-tuning, LoRA, IA³).
    case float32
    /// bitsandbytes NF4 with double-quantised scales (QLoRA); the arena holds
    /// only embeddings, norms and head, so no Float32 copy of them exists.
    case nf4
    /// bf16 (LoRA and IA³ in bf16 precision): half the bytes of Float32; the
    /// arena holds only embeddings, norms and head, as with NF4.
    case bf16

    /// The storage a trial of `method` in `precision` trains on: QLoRA's NF4,
    /// the other adapter methods' frozen base in bf16 when their products are,
    /// Float32 otherwise (full fine-tuning keeps Float32 master weights).
    public static func training(_ method: MethodKind, precision: Precision) -> LinearStorage {
        switch (method, precision) {
        case (.qlora, _): .nf4
        case (.lora, .bf16), (.ia3, .bf16): .bf16
        case (.full, _), (.lora, .f32), (.ia3, .f32): .float32
        }
    }
}
