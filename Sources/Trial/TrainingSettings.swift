// TrainingSettings: how a trial trains — method, optimizer, schedule, loss —
// as plain values. Their JSON (Swift property names as keys) is part of the
// trial's canonical configuration, from which trial keys are hashed, and of
// checkpoints: renaming a property changes keys and old checkpoints.
import Foundation

/// How a trial trains. Fields are documented defaults; a sweep overrides them.
public struct TrainingSettings: Sendable, Codable, Equatable {
    public var method = MethodSettings(kind: .full)
    /// Peak learning rate.
    public var learningRate: Float = 5e-5
    public var epochs: Int = 10
    /// Examples per optimizer step; 0 means all examples in one batch.
    public var batchSize: Int = 1
    /// Seeds example order (shuffled every epoch) and any random initialisation.
    public var seed: UInt64 = 0
    public var warmupSteps: Int = 0
    public var decay: LearningRateSchedule.Decay = .constant
    public var lossScope: LossScope = .answer
    public var optimizer = AdamWSettings()
    /// A PEFT adapter directory to start from instead of PEFT's initialisation.
    public var initAdapter: String?
    /// The products' input format; nil is Float32, and is left out of the
    /// JSON so that the keys of trials from before the setting stay the same.
    public var precision: Precision?

    /// The precision products run in.
    public var productPrecision: Precision { precision ?? .f32 }

    public init() {}

    /// The settings a trial of `kind` starts from: the defaults with the method's learning rate.
    public init(method kind: MethodKind) {
        self.init()
        method = MethodSettings(kind: kind)
        learningRate = Self.defaultLearningRate(for: kind)
    }

    /// Per-method defaults: PEFT methods train few parameters from a neutral
    /// start (B = 0, l = 1) and need larger steps than full fine-tuning, whose
    /// every weight moves; IA³'s scaling vectors need the largest. Measured on
    /// the shipped facts (examples/learning-rates.json, docs/learning-rates.md):
    /// LoRA r=8 α=32 levels off at 0.84–0.88 accuracy with 2e-4 and reaches
    /// 0.93–0.96 with 1e-3; IA³ levels off at 0.87 with 3e-3 and reaches 0.91–0.93 with 1e-2.
    public static func defaultLearningRate(for method: MethodKind) -> Float {
        switch method {
        case .full: 5e-5
        case .lora, .qlora: 1e-3
        case .ia3: 1e-2
        }
    }
}

/// What the loss is taken over.
public enum LossScope: String, Sendable, Codable, CaseIterable {
    /// The answer and its end-of-turn token only (the study's setting).
    case answer
    /// Every position, the chat template's tokens included.
    case all
}

/// Hyperparameters of AdamW; defaults are PyTorch's except weight decay.
public struct AdamWSettings: Sendable, Codable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.0
    /// Clip the global gradient norm to this value; nil disables clipping.
    public var maxGradNorm: Float? = 1.0
    /// How the two moments are stored: nil is Float32; bf16 halves their
    /// memory (full fine-tuning at 1B scale needs it to fit in 24 GiB). Left
    /// out of the JSON when nil, so the keys of trials from before it stay.
    public var moments: Precision?

    /// Whether each layer's parameters are updated during the backward pass,
    /// as soon as its gradients are complete and still in cache (torchtune's
    /// `optimizer_in_bwd`), instead of all at once after it: the same update,
    /// element for element, without reading every gradient back from memory.
    /// It needs clipping off (`clip` 0): the global norm is known only after
    /// the whole backward, and every layer but the first is updated before
    /// then. nil (off) is left out of the JSON, so the keys of trials from
    /// before it stay.
    public var updateInBackward: Bool?

    /// The moments' storage.
    public var momentPrecision: Precision { moments ?? .f32 }

    /// Whether the update runs during the backward pass.
    public var updatesInBackward: Bool { updateInBackward ?? false }

    public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0, maxGradNorm: Float? = 1.0,
                moments: Precision? = nil, updateInBackward: Bool? = nil) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay; self.maxGradNorm = maxGradNorm
        self.moments = moments
        self.updateInBackward = updateInBackward
    }

    /// Refuses settings that cannot go together, naming each setting by
    /// `name` (a sweep spec's names by default; `factsweep train` passes
    /// `\.flag`).
    public func validate(naming name: (TrialSetting) -> String = { $0.rawValue }) throws(SettingRefusal) {
        if updatesInBackward, let clip = maxGradNorm {
            throw SettingRefusal("\(name(.updateInBackward)) needs \(name(.clip)) 0 (got \(clip)): the global gradient norm is known "
                                 + "only after the whole backward, when all but the first layer are already updated")
        }
    }
}
