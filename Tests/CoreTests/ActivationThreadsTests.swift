// ActivationThreadsTests: activations are sized for a number of threads
// (attention's, the norms' and the dequantised tiles' scratch are per
// thread), and a context of more threads would write past them; forward and
// backward stop such a call rather than overrun. Each stopped call runs in a
// child process (an exit test), which must stop at that check: its message
// is looked for in the child's standard error. An evaluator's reused
// activations and generator follow the thread count they are asked for.
import Testing
import TestSupport
@testable import Core

@Suite struct ActivationThreadsTests {
    /// A forward with a context of more threads than the activations were made for stops the process.
    @Test func forwardRefusesMoreThreads() async {
        let child = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (model, network, batch) = ActivationThreadsTests.tiny()
            let acts = LlamaActivations(network: network, maxBatch: batch.batchSize, maxSeq: batch.seqLen, threads: 1)
            _ = network.forward(batch, acts, context: ComputeContext(threads: 2))
            withExtendedLifetime(model) {}
        }
        Self.expectStopped(child)
    }

    /// A backward with more threads than the activations, after a forward with as many as they have, stops the process.
    @Test func backwardRefusesMoreThreads() async {
        let child = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let (model, network, batch) = ActivationThreadsTests.tiny()
            let acts = LlamaActivations(network: network, maxBatch: batch.batchSize, maxSeq: batch.seqLen, threads: 1)
            _ = network.forward(batch, acts, context: ComputeContext(threads: 1))
            _ = network.backward(batch, acts, context: ComputeContext(threads: 2))
            withExtendedLifetime(model) {}
        }
        Self.expectStopped(child)
    }

    /// The child stopped at the thread check, not anywhere else.
    static func expectStopped(_ child: ExitTest.Result?, sourceLocation: SourceLocation = #_sourceLocation) {
        let stderr = child.map { String(decoding: $0.standardErrorContent, as: UTF8.self) } ?? ""
        #expect(stderr.contains("a context of 2 threads over activations made for 1"), "the child's standard error: \(stderr)",
                sourceLocation: sourceLocation)
    }

    /// As many threads as the activations', or fewer: forward and backward
    /// run (the frozen network's backward computes input gradients only),
    /// and forward gives the same loss on each.
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

    /// An evaluator's reused buffers follow its context: perplexity's
    /// activations are made again for more threads (and serve fewer), the
    /// cached generator for another thread count (it runs on its own context).
    @Test func evaluationBuffersFollowTheThreads() {
        let (model, network, _) = Self.tiny()
        defer { withExtendedLifetime(model) {} }
        let buffers = EvaluationBuffers()
        let one = ComputeContext(threads: 1), three = ComputeContext(threads: 3)
        let first = buffers.perplexity(network, tokens: 20, context: one)
        #expect(buffers.perplexity(network, tokens: 20, context: one) === first, "reused for as many threads")
        let more = buffers.perplexity(network, tokens: 20, context: three)
        #expect(more !== first && more.threads == 3)
        #expect(buffers.perplexity(network, tokens: 20, context: one) === more, "activations for more threads serve fewer")
        let generator = buffers.generator(network, batch: 2, length: 10, context: one)
        #expect(buffers.generator(network, batch: 2, length: 10, context: one) === generator)
        let other = buffers.generator(network, batch: 2, length: 10, context: three)
        #expect(other !== generator && other.context.threads == 3)
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
