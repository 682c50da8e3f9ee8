// FullFineTuning: every parameter trained with AdamW. Owns the gradient arena,
// the optimizer moments and the activations; the model's parameter arena is
// updated in place.

/// The outcome of one optimizer step.
public struct StepResult: Sendable, Equatable {
    public var loss: Float
    public var gradientNorm: Float
    public var labelledTokens: Int
}

/// Full fine-tuning of a `LlamaModel`: forward, backward, clip, AdamW update.
public final class FullFineTuning: @unchecked Sendable {
    public let model: LlamaModel
    public let gradients: FloatArena
    public let gradientWeights: LlamaWeights
    public let optimizer: AdamW
    public let activations: LlamaActivations
    public let context: ComputeContext

    public init(model: LlamaModel, optimizer settings: AdamWSettings, maxBatch: Int, maxSeq: Int, context: ComputeContext) {
        self.model = model
        self.context = context
        gradients = FloatArena(capacity: model.layout.totalCount)
        gradientWeights = LlamaWeights(layout: model.layout, config: model.config, base: gradients.base)
        optimizer = AdamW(count: model.layout.totalCount, settings: settings)
        activations = LlamaActivations(config: model.config, maxBatch: maxBatch, maxSeq: maxSeq, threads: context.threads)
    }

    /// Number of trained parameters, counted as PyTorch does.
    public var trainableParameterCount: Int { model.layout.parameterCount }

    /// One training step on `batch` at learning rate `lr`. Gradients are zero
    /// on entry and on return (the update zeroes them as it streams past).
    public func step(_ batch: TokenBatch, lr: Float) -> StepResult {
        let loss = model.forward(batch, activations, context: context)
        let squaredNorm = model.backward(batch, activations, grads: gradientWeights, context: context)
        let norm = optimizer.update(params: FloatPointer(model.parameters.base), grads: FloatPointer(gradients.base), lr: lr,
                                    squaredNorm: squaredNorm, context: context)
        return StepResult(loss: loss, gradientNorm: norm, labelledTokens: batch.labelledCount)
    }
}
