// VectorPeakTests: the cores' ceiling runs the instruction the CPU has, every
// one of its twelve a round, and counts the operations that instruction does.
import Testing
import TestSupport
@testable import Core

@Suite struct VectorPeakTests {
    @Test(arguments: [false, true]) func theWidestInstructionIsTimed(bf16: Bool) throws {
        let expected = try #require(CPUFeatures.vectorPeakInstruction(bf16: bf16), "no AVX2 on \(CPUFeatures.modelName): the project's machines have it")
        #expect(VectorPeak.instruction(bf16: bf16) == expected, "\(CPUFeatures.modelName)")
    }

    /// Each lane of accumulator i (0–11) starts at i and gains 0.5 × 0.25 per
    /// product: 16 lanes of zmm or 8 of ymm, two products a lane in bf16's dot
    /// products. The lanes' sum weighted by i + 1 (Σ(i + 1)i = 572, Σ(i + 1) =
    /// 78) shows that each of the twelve instructions of a round ran on its
    /// own accumulator with its operands; the count, 2 operations per
    /// product, is what an MFU against this peak divides by.
    @Test(arguments: [false, true]) func eachRoundRunsTwelveInstructionsAndCountsThem(bf16: Bool) throws {
        let instruction = try #require(CPUFeatures.vectorPeakInstruction(bf16: bf16))
        let lanes = instruction.hasSuffix("zmm") ? 16.0 : 8.0, products = instruction.hasPrefix("vdpbf16ps") ? 2.0 : 1.0
        for rounds in [1, 7, 1000] {
            let (operations, checksum) = VectorPeak.run(rounds: rounds, bf16: bf16)
            #expect(checksum == lanes * (572 + 78 * products * 0.125 * Double(rounds)), "\(instruction), \(rounds) rounds")
            #expect(operations == Double(rounds) * 12 * lanes * products * 2, "\(instruction), \(rounds) rounds")
        }
        #expect(VectorPeak.run(rounds: 0, bf16: bf16) == (0, 0))
    }

    /// Every thread of the context runs the loop once a window: a window's
    /// operations are the threads' count times one thread's, and the rate is
    /// finite and positive. (How fast is a benchmark's question, printed by
    /// `factsweep bench`; a timed unit test is noise.)
    @Test func everyThreadOfTheContextRunsTheLoop() throws {
        let one = VectorPeak.run(rounds: 10_000, bf16: false).operations
        for threads in [1, 2, 3] {
            let context = ComputeContext(threads: threads)
            let (flops, seconds) = VectorPeak.window(bf16: false, rounds: 10_000, context: context)
            #expect(flops == Double(threads) * one && seconds > 0, "\(flops) at \(threads) threads")
            let rate = try #require(VectorPeak.measure(bf16: false, rounds: 10_000, windows: 2, context: context))
            #expect(rate.isFinite && rate > 0, "\(rate) at \(threads) threads")
        }
        #expect(VectorPeak.measure(bf16: false, windows: 0, context: ComputeContext(threads: 1)) == nil)
    }
}
