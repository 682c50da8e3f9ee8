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
        let chosen = MatmulEngine.current
        defer { MatmulEngine.current = chosen }
        let measured = engines.compactMap(MatmulEngine.init(name:))
        print("matmul engines at \(context.threads) threads, GFLOP/s (best of 16; default engine: \(chosen))")
        print("M×K×N".padding(toLength: 18, withPad: " ", startingAt: 0)
              + measured.map { $0.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
        for shape in Self.productShapes {
            var line = "\(shape.m)×\(shape.k)×\(shape.n)".padding(toLength: 18, withPad: " ", startingAt: 0)
            for engine in measured {
                MatmulEngine.current = engine
                let rate = SgemmPeak.measure(m: shape.m, k: shape.k, n: shape.n, repeats: shape.m >= 2048 ? 4 : 16, context: context)
                line += String(format: "%-10.1f", rate)
            }
            print(line)
        }
    }
}
