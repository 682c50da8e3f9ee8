// `factsweep bench --products`: each matmul engine's GFLOP/s at the study's
// product shapes (SmolLM2-135M: hidden 576, MLP 1536, vocabulary 49152; one
// example ≈ 70 rows, a batch of 8 ≈ 512), measured in one process so that the
// engines are compared under the same load.
import Core
import Foundation

extension TrainingBenchCommand {
    /// M×K×N of `linearForward`: M rows through an [N, K] weight.
    static let productShapes: [(m: Int, k: Int, n: Int)] = [
        (2048, 2048, 2048), (512, 576, 1536), (70, 576, 1536), (70, 576, 49152), (70, 1536, 576),
    ]

    func runProductBench() throws {
        let context = ComputeContext.forProcess(threads: options.threads)
        let chosen = MatmulEngine.current, chosenBF16 = MatmulEngine.currentBF16
        defer {
            MatmulEngine.current = chosen
            MatmulEngine.currentBF16 = chosenBF16
        }
        let measured = engines.compactMap(MatmulEngine.init(name:))
        // One table per precision asked for: bf16 products as training runs
        // them (inputs rounded to bf16, f32 accumulation), on each engine.
        for p in precision {
            MatmulEngine.current = chosen
            MatmulEngine.currentBF16 = chosenBF16
            print("\(p == precision.first ? "" : "\n")matmul engines at \(context.threads) threads, \(p) products, GFLOP/s (best of 16; default engine: \(p == .bf16 ? chosenBF16 : chosen))")
            if p == .bf16, let notice = MatmulEngine.bf16Notice { print("(default engine: \(notice))") }
            if p == .bf16, measured.contains(.openBLAS) { print("(openblas: sgemm over bf16-rounded inputs, Debian's OpenBLAS having no bf16 product)") }
            // The cores' own ceiling first: no product on the vector units can pass it (VectorPeak).
            let bf16Kernels = p == .bf16 && MatmulEngine.hasBF16Kernels
            if let vector = VectorPeak.measure(bf16: bf16Kernels, context: context), let instruction = VectorPeak.instruction(bf16: bf16Kernels) {
                print("the cores' vector multiply-adds (\(instruction), \(context.threads) threads): \(String(format: "%.1f", vector)) GFLOP/s")
            }
            print("M×K×N".padding(toLength: 18, withPad: " ", startingAt: 0)
                  + measured.map { $0.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
            for shape in Self.productShapes {
                var line = "\(shape.m)×\(shape.k)×\(shape.n)".padding(toLength: 18, withPad: " ", startingAt: 0)
                for engine in measured {
                    MatmulEngine.current = engine
                    MatmulEngine.currentBF16 = engine
                    let rate = ProductPrecision.run(p) {
                        SgemmPeak.measure(m: shape.m, k: shape.k, n: shape.n, repeats: shape.m >= 2048 ? 4 : 16, context: context)
                    }
                    line += String(format: "%-10.1f", rate)
                }
                print(line)
            }
        }
        MatmulEngine.current = chosen
        MatmulEngine.currentBF16 = chosenBF16
        print("\nthe tables below are f32 products")
        runDecodingProductBench(context: context)
        runColumnSplitBench(context: context)
        runPackedBench(context: context)
    }

    /// The backward's products at SmolLM2's and Llama-3.2-1B's widths whose
    /// plain B oneDNN's AVX2 sgemm would read in place (rows a multiple of
    /// 1 KiB apart), whole against split (`OneDNNMatmul.columnSplit`), in turn.
    func runColumnSplitBench(context: ComputeContext) {
        let shapes = [(70, 576, 1536), (70, 2048, 2048), (70, 512, 2048), (70, 8192, 2048), (70, 2048, 8192)]
        print("\nbackward products with a plain B, oneDNN whole and split into C's first columns and the rest, GFLOP/s (B streamed from memory; alternated, best of 8 each)")
        print("this process splits them: \(MatmulEngine.splitsOneDNNColumns ? "yes" : "no") (oneDNN's instruction set: \(MatmulEngine.oneDNNInstructionSet ?? "none"))")
        print("M×K×N".padding(toLength: 18, withPad: " ", startingAt: 0) + "whole     split     split/whole")
        for (m, k, n) in shapes {
            guard let rates = SgemmPeak.columnSplitRates(m: m, k: k, n: n, context: context) else { continue }
            print("\(m)×\(k)×\(n)".padding(toLength: 18, withPad: " ", startingAt: 0)
                  + String(format: "%-10.1f%-10.1f%.2f×", rates.whole, rates.split, rates.split / rates.whole))
        }
    }
}

extension TrainingBenchCommand {
    /// A frozen f32 weight's products read as stored against read from the
    /// packed copy adapter networks keep of it (`LlamaModel.packsFrozenBases`),
    /// forward and backward, at batch 1's and batch 8's rows: what the copies'
    /// memory buys on this CPU. A row names the product, not the projection:
    /// x·Wᵀ at M×576×1536 is gate or up (W is [1536, 576]), dY·W at the same
    /// M×K×N is down's backward (W is [576, 1536]).
    func runPackedBench(context: ComputeContext) {
        print("\nfrozen f32 weights' products on oneDNN, read as stored and from their packed copy, GFLOP/s (weights streamed from memory; alternated, best of 8 each)")
        print("M×K×N".padding(toLength: 18, withPad: " ", startingAt: 0) + "direction  as stored  packed    packed/stored  copy")
        for m in [62, 373] {
            for (k, n) in [(576, 1536), (1536, 576), (576, 576)] {
                for transB in [true, false] {
                    guard let rates = SgemmPeak.packedRates(m: m, k: k, n: n, transB: transB, context: context) else { continue }
                    let copy = rates.inPlace ? "none: the stored layout, read in place"
                        : rates.copyBytes == 0 ? "none made (reuse off, or oneDNN refused the copy)"
                        : String(format: "%.2f× the weight's bytes", Double(rates.copyBytes) / Double(4 * k * n))
                    print("\(m)×\(k)×\(n)".padding(toLength: 18, withPad: " ", startingAt: 0)
                          + (transB ? "x·Wᵀ       " : "dY·W       ")
                          + String(format: "%-11.1f%-10.1f", rates.plain, rates.packed)
                          + String(format: "%.2f×", rates.packed / rates.plain).padding(toLength: 15, withPad: " ", startingAt: 0) + copy)
                }
            }
        }
    }
}

extension TrainingBenchCommand {
    /// Decoding's products: M rows through each of a pool of weights larger
    /// than the last-level cache, so that every product reads its weight from
    /// memory as a decoding pass does; the few-rows kernel against `gemm` on
    /// each engine, to show where one stops paying (`decodingFewRowsLimit`).
    func runDecodingProductBench(context: ComputeContext) {
        let chosen = MatmulEngine.current
        defer { MatmulEngine.current = chosen }
        let measured = engines.compactMap(MatmulEngine.init(name:))
        print("\ndecoding products, weights streamed from memory (a 512 MiB pool), GFLOP/s (best of 4 sweeps)")
        print("M×K×N".padding(toLength: 18, withPad: " ", startingAt: 0) + "few-rows  "
              + measured.map { $0.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
        for (k, n) in [(576, 1536), (1536, 576)] {
            let copies = max(2, (512 << 20) / (4 * n * k))
            let weights = FloatArena(capacity: copies * n * k)
            var rng = SeededGenerator(seed: 5)
            for i in 0..<(copies * n * k) { weights.base[i] = rng.nextUniform() - 0.5 }
            for m in [1, 4, 8, 16, 24, 32, 48, 64, 96] {
                let io = FloatArena(capacity: m * k + m * n)
                for i in 0..<(m * k) { io.base[i] = rng.nextUniform() - 0.5 }
                func rate(_ product: (UnsafePointer<Float>) -> Void) -> Double {
                    var best = Double.infinity
                    for _ in 0..<4 {
                        let start = DispatchTime.now().uptimeNanoseconds
                        for c in 0..<copies { product(weights.base + c * n * k) }
                        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                    }
                    return 2 * Double(m * n * k * copies) / best / 1e9
                }
                var line = "\(m)×\(k)×\(n)".padding(toLength: 18, withPad: " ", startingAt: 0)
                line += String(format: "%-10.1f", rate { w in
                    linearForward(io.base + m * k, io.base, w, n: m, inDim: k, outDim: n, context: context, fewRows: .max)
                })
                for engine in measured {
                    MatmulEngine.current = engine
                    line += String(format: "%-10.1f", rate { w in
                        linearForward(io.base + m * k, io.base, w, n: m, inDim: k, outDim: n, context: context, fewRows: 0)
                    })
                }
                print(line)
            }
        }
    }
}
