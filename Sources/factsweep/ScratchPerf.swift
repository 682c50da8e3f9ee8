import ArgumentParser
import Core
import Foundation

struct ScratchPerf: ParsableCommand {
    @Option var threads = 1
    @Option var batch = 1
    @Option var seq = 70
    @Option var labelled = 15
    func run() throws {
        let ctx = ComputeContext(threads: threads)
        print("sgemm peak", SgemmPeak.measure(context: ctx))
        let cfg = LlamaConfiguration(vocabularySize: 49152, hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3, rmsNormEps: 1e-5, ropeTheta: 100000, tieWordEmbeddings: true)
        let model = LlamaModel(config: cfg)
        model.randomize(seed: 1)
        let ft = FullFineTuning(model: model, optimizer: AdamWSettings(), maxBatch: batch, maxSeq: seq, context: ctx)
        var tokens = [Int32](repeating: 5, count: batch*seq); var targets = [Int32](repeating: -100, count: batch*seq)
        for b in 0..<batch { for t in (seq-labelled)..<seq { targets[b*seq+t] = Int32(t) } ; for t in 0..<seq { tokens[b*seq+t] = Int32((t*31+b) % 49152) } }
        let tb = TokenBatch(batchSize: batch, seqLen: seq, tokens: tokens, targets: targets)
        for i in 0..<4 {
            let t0 = Date()
            let l = model.forward(tb, ft.activations, context: ctx)
            let t1 = Date()
            model.backward(tb, ft.activations, grads: ft.gradientWeights, context: ctx)
            let t2 = Date()
            _ = ft.optimizer.update(params: FloatPointer(model.parameters.base), grads: FloatPointer(ft.gradients.base), lr: 1e-5, context: ctx)
            let t3 = Date()
            print(i, l, "fwd", t1.timeIntervalSince(t0), "bwd", t2.timeIntervalSince(t1), "adam", t3.timeIntervalSince(t2))
        }
    }
}
