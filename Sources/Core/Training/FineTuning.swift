// FineTuning: one trial's trainable state for any method — the trained tensors
// in one arena (a copy of the model for full fine-tuning; adapters otherwise),
// their gradients, AdamW moments and activations — and the training step.
import Foundation
import Trial

/// The outcome of one optimizer step.
public struct StepResult: Sendable, Equatable {
    public var loss: Float
    /// The global gradient norm before clipping; nil when nothing asked for
    /// it (no clipping, `FineTuning.measuresGradientNorm` off).
    public var gradientNorm: Float?
    public var labelledTokens: Int
}

/// A trial's trainable state over a shared, read-only base model.
public final class FineTuning: @unchecked Sendable {
    public let method: MethodSettings
    public let base: LlamaModel
    /// Names (PEFT keys for adapters, HF names for full) and places of the trained tensors.
    public let trainable: [ParameterEntry]
    /// The trained tensors. Whoever writes them here outside `step` (a
    /// resumed checkpoint) must call `parametersChanged()` before the next
    /// step; `tensor(_:)` hands one out and calls it.
    public let parameters: FloatArena
    /// The trained tensors' gradients, laid out as `parameters`, except for
    /// full fine-tuning with the update in the backward pass, which lays
    /// every layer's in one layer's span (`LayerSharedGradients`).
    public let gradients: FloatArena
    public let optimizer: AdamW
    public let network: LlamaNetwork
    public let activations: LlamaActivations
    public let context: ComputeContext
    /// The precision of the network's products (steps and evaluations run inside `ProductPrecision.run`).
    public let precision: Precision
    /// Draws LoRA dropout masks; saved with checkpoints.
    public var dropoutRNG: SeededGenerator
    /// Full fine-tuning in bf16: the trained matrices' roundings, which the
    /// update writes in the pass that writes the weights (sorted by offset).
    private let roundedSpans: [AdamW.RoundedSpan]
    /// Whether the update writes the roundings (`roundedSpans`), instead of
    /// the first product of the next step reading every weight again to
    /// round it: the default; `FACTSWEEP_ROUND_IN_UPDATE=off` and tests turn it off.
    var roundsInUpdate = FineTuning.roundsInUpdateByEnvironment
    static let roundsInUpdateByEnvironment = ProcessInfo.processInfo.environment["FACTSWEEP_ROUND_IN_UPDATE"]?.lowercased() != "off"

    /// Whether training batches lay the prompt prefix their examples share
    /// once (`TokenBatch(examples:sharingPrefix:)`, the chat template's
    /// system turn): the default. Exact without LoRA dropout, whose masks
    /// PEFT draws for each example's rows apart, so not with it;
    /// `FACTSWEEP_SHARED_PREFIX=off` lays every example whole.
    public var sharesPromptPrefix: Bool { FineTuning.promptPrefix.isOn && method.dropout == 0 }
    static let promptPrefix = PathSwitch(environmentKey: "FACTSWEEP_SHARED_PREFIX")

    /// Sets up `method` on `base` for batches of up to `maxBatch × maxSeq` tokens.
    /// `seed` initialises LoRA's A matrices (as PEFT's Kaiming-uniform) and dropout.
    /// In bf16 LoRA and IA³ need a base loaded with `.bf16` storage (see
    /// `LinearStorage.training`); full fine-tuning keeps Float32 master weights
    /// and rounds them to bf16 once per step, for the products of both
    /// directions (as autocast casts them once per forward and keeps the casts
    /// for the backward).
    public init(base: LlamaModel, method: MethodSettings, optimizer settings: AdamWSettings, maxBatch: Int, maxSeq: Int,
                seed: UInt64, precision: Precision = .f32, context: ComputeContext) throws {
        try method.validate()
        do throws(SettingRefusal) { try settings.validate() } catch { throw MethodError(error.message) }
        let needed = LinearStorage.training(method.kind, precision: precision)
        guard base.storage == needed else {
            throw MethodError("\(method.kind.rawValue) needs a base model loaded with \(needed.rawValue) projections, not \(base.storage.rawValue)")
        }
        self.method = method
        self.base = base
        self.context = context
        self.precision = precision
        let c = base.config
        var rng = SeededGenerator(seed: seed)
        switch method.kind {
        case .full:
            trainable = base.layout.entries
            // Tensor by tensor, each under a lease on the base's released rows (the padding between stays zero).
            let copy = FloatArena(capacity: base.layout.totalCount)
            for e in base.layout.entries {
                base.withPlainRows(of: e) { (copy.base + e.offset).update(from: $0, count: e.count) }
            }
            parameters = copy
            let weights = LlamaWeights(layout: base.layout, config: c, base: parameters.base)
            let grads: LlamaWeights
            if settings.updatesInBackward {
                // Each layer's gradients are consumed by its update before the next layer down writes: one span for all.
                let shared = LayerSharedGradients(layout: base.layout, config: c)
                gradients = FloatArena(capacity: shared.capacity)
                let g = gradients.base
                grads = LlamaWeights(layout: base.layout, config: c) { FloatPointer(g + shared.place($0)) }
            } else {
                gradients = FloatArena(capacity: base.layout.totalCount)
                grads = LlamaWeights(layout: base.layout, config: c, base: gradients.base)
            }
            network = base.network(weights: weights, grads: grads, adapters: { _, _ in nil }, roundTrained: precision == .bf16)
        case .lora, .qlora, .ia3:
            let layout = AdapterLayout(config: c, method: method)
            trainable = layout.entries
            parameters = FloatArena(capacity: layout.totalCount)
            gradients = FloatArena(capacity: layout.totalCount)
            layout.initialise(parameters.base, method: method, rng: &rng)
            network = base.frozenNetwork(adapters: layout.adapters(method: method, parameters: parameters.base, gradients: gradients.base),
                                         precision: precision, context: context)
                .withGradientRanges(layout.layerRanges(gradients: gradients.base))
        }
        dropoutRNG = rng
        let arena = UnsafePointer(parameters.base)
        roundedSpans = network.trainedRoundings.compactMap { $0.roundedSpan(in: arena) }.sorted { $0.offset < $1.offset }
        optimizer = AdamW(count: parameters.capacity, settings: settings)
        activations = LlamaActivations(network: network, maxBatch: maxBatch, maxSeq: maxSeq, threads: context.threads)
        if settings.updatesInBackward {
            // Every trained tensor must be handed to the update by some range, or it would never train.
            let ranges = (network.layerGradients + network.finalGradients).map { $0.offset..<($0.offset + $0.count) }
            for entry in trainable where !ranges.contains(where: { $0.contains(entry.offset) && entry.offset + entry.count <= $0.upperBound }) {
                preconditionFailure("\(entry.name) lies in no gradient range: it would not be updated in the backward pass")
            }
        }
    }

    /// Whether `step` reports the gradient norm when nothing clips (with
    /// clipping it always does). Off by default: summing every gradient's
    /// square is a pass over all of them, for a figure training does not read
    /// without clipping; leaving it out made SmolLM2's full fine-tuning
    /// epochs at batch 1 2% (f32) and 6% (bf16) shorter (docs/benchmarks.md).
    public var measuresGradientNorm = false

    /// Parameters trained, counted as PyTorch counts them.
    public var trainableParameterCount: Int { trainable.reduce(0) { $0 + $1.count } }

    /// A trained tensor by name, to write outside `step`: as it is handed
    /// out, the roundings of the trained weights are marked stale
    /// (`parametersChanged()`), so that the next product reads the written
    /// values (as `LlamaModel.tensor(_:)` does for a model's copies). Write
    /// before the next step: a product in between rounds the old values.
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let e = trainable.first(where: { $0.name == name }) else { return nil }
        parametersChanged()
        return UnsafeMutableBufferPointer(start: parameters.base + e.offset, count: e.count)
    }

    /// Marks the trained parameters as written from outside `step` (a
    /// restored checkpoint): full fine-tuning's bf16 roundings of them are
    /// made again by the next product that reads each.
    public func parametersChanged() {
        network.invalidateTrainedRoundings()
    }

    /// One training step on `batch` at learning rate `lr`: forward, backward,
    /// clip and update. The backward overwrites every gradient, so what the
    /// arena holds on entry does not matter; on return it holds this step's.
    public func step(_ batch: TokenBatch, lr: Float) -> StepResult {
        // bf16 roundings of trained weights hold for one step's parameters:
        // each is current here (made by the previous step's update, or stale
        // since it and made again by the first product that reads it; a write
        // from outside calls `parametersChanged()`).
        let rounded = roundsInUpdate ? roundedSpans : []
        let params = FloatPointer(parameters.base), grads = FloatPointer(gradients.base)
        let adam = optimizer, ctx = context, inBackward = optimizer.settings.updatesInBackward
        let sumsSquares = optimizer.settings.maxGradNorm != nil || measuresGradientNorm
        let (loss, squaredNorm) = ProductPrecision.run(precision) { () -> (Float, Double?) in
            let loss = network.forward(batch, activations, rng: &dropoutRNG, context: ctx)
            // With the update in the backward pass, each layer's parameters
            // are updated as soon as its gradients are complete (and no
            // product later in the pass reads that layer's rounding).
            let update = inBackward ? adam.beginStep(lr: lr) : nil
            let squares = network.backward(batch, activations, context: ctx, sumsSquares: sumsSquares, gradientsDone: update.map { update in
                { range in
                    adam.update(update, params: params, grads: range.start, range: range.offset..<(range.offset + range.count), rounded: rounded,
                                context: ctx)
                }
            })
            return (loss, squares)
        }
        let norm = inBackward ? squaredNorm.map { Float($0.squareRoot()) }
            : optimizer.update(params: params, grads: grads, lr: lr, squaredNorm: squaredNorm, rounded: rounded, context: context)
        if rounded.isEmpty {
            network.invalidateTrainedRoundings()
        } else {
            // Every trained matrix lies in the updated ranges: its bits now round its new weights.
            for matrix in network.trainedRoundings { matrix.markCurrent() }
        }
        return StepResult(loss: loss, gradientNorm: norm, labelledTokens: batch.labelledCount)
    }
}

extension LlamaNetwork {
    /// The same network with its per-layer gradient ranges replaced (a copy,
    /// so that every other field, such as the packed head, comes along).
    func withGradientRanges(_ ranges: [GradientRange]) -> LlamaNetwork {
        var network = self
        network.layerGradients = ranges
        return network
    }
}
