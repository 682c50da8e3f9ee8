// Precision: the number format a trial's matrix products take their inputs
// in. Everything else (master weights, gradient accumulation, optimizer
// states, norms, softmax, the loss) is Float32 in both.

/// What PyTorch's CPU autocast calls the compute dtype of products.
public enum Precision: String, Sendable, Codable, CaseIterable {
    /// Float32 inputs, Float32 accumulation.
    case f32
    /// bfloat16 inputs (rounded to nearest even), Float32 accumulation and
    /// output — `torch.autocast("cpu", dtype=torch.bfloat16)`'s products.
    case bf16
}
