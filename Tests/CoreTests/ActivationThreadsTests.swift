// ActivationThreadsTests: activations are sized for a number of threads
// (attention's, the norms', the dequantised tiles' and the fused head's
// scratch are per thread), and a context of more threads would write past
// them; forward and backward stop such a call rather than overrun. Each
// stopped call runs in a child process (an exit test).
import Testing
import TestSupport
@testable import Core

@Suite struct ActivationThreadsTests {
    /// A forward with a context of more threads than the activations were made for stops the process.
    @Test func forwardRefusesMoreThreads() async {
        await #expect(processExitsWith: .failure) {
            let (model, network, batch) = ActivationThreadsTests.tiny()
            let acts = LlamaActivations(network: network, maxBatch: batch.batchSize, maxSeq: batch.seqLen, threads: 1)
            _ = network.forward(batch, acts, context: ComputeContext(threads: 2))
            withExtendedLifetime(model) {}
        }
    }

    /// A backward with more threads than the activations, after a forward with as many as they have, stops the process.
    @Test func backwardRefusesMoreThreads() async {
        await #expect(processExitsWith: .failure) {
            let (model, network, batch) = ActivationThreadsTests.tiny()
            let acts = LlamaActivations(network: network, maxBatch: batch.batchSize, maxSeq: batch.seqLen, threads: 1)
            let loss = network.forward(batch, acts, context: ComputeContext(threads: 1))
            precondition(loss.isFinite, "the forward before the backward failed: loss \(loss)")
            _ = network.backward(batch, acts, context: ComputeContext(threads: 2))
            withExtendedLifetime(model) {}
        }
    }

    /// As many threads as the activations', or fewer: forward and backward run, and give the same loss.
    @Test func asManyOrFewerThreadsRun() {
        let (model, network, batch) = Self.tiny()
        defer { withExtendedLifetime(model) {} }
        let acts = LlamaActivations(network: network, maxBatch: batch.batchSize, maxSeq: batch.seqLen, threads: 3)
        var losses: [Float] = []
        for threads in 1...3 {
            let ctx = ComputeContext(threads: threads)
            losses.append(network.forward(batch, acts, context: ctx))
            _ = network.backward(batch, acts, context: ctx)
        }
        #expect(losses.allSatisfy { $0.isFinite && $0 > 0 }, "losses \(losses)")
        #expect(losses.allSatisfy { abs($0 - losses[0]) <= 1e-5 * losses[0] }, "losses on 1, 2 and 3 threads: \(losses)")
    }

    /// A tiny model, a network over it (which reads the model's weights and
    /// does not keep it alive: callers hold `model` while they use it), and
    /// a batch of two sequences.
    static func tiny() -> (model: LlamaModel, network: LlamaNetwork, batch: TokenBatch) {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        return (model, model.frozenNetwork(), TinyModels.batch(vocab: config.vocabularySize))
    }
}
