// ModelDescription: what a model is, for the people reading results — its own
// name, its file, how that file stores the weights and what FactSweep made of
// them, and its size. The default model is a 4-bit GGUF dequantised to
// Float32, so "full fine-tuning" starts from 4-bit-rounded weights and QLoRA
// quantises them a second time; results cannot be read without knowing that.
// Core describes a loaded model; the summary carries it to the report.
import Foundation

/// A model as loaded for training, described in words and numbers.
public struct ModelDescription: Codable, Sendable, Equatable {
    /// The model's own name: GGUF `general.name`, or `_name_or_path` in a
    /// Hugging Face config.json; nil when the files hold none.
    public var name: String?
    /// The GGUF file's or the Hugging Face directory's last path component.
    public var file: String
    /// How the file stores the weights and what training uses, e.g.
    /// "GGUF Q4_1 (also Q8_0 21%, F32 <1%), dequantised to Float32".
    public var weights: String
    /// Parameters as PyTorch counts them.
    public var parameters: Int

    public init(name: String?, file: String, weights: String, parameters: Int) {
        self.name = name; self.file = file; self.weights = weights; self.parameters = parameters
    }
}
