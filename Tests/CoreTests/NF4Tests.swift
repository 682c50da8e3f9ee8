// NF4Tests: QLoRA's NF4 base-weight storage against bitsandbytes, from
// Golden/nf4/nf4.safetensors (scripts/reference/make_nf4_golden.py), plus the
// error bound, and the tile kernel's ranges and threads.
import Foundation
import Testing
import TestSupport
@testable import Core

@Suite struct NF4Tests {
    static let cases = ["main", "odd", "zerotail"]

    static func golden() throws -> SafetensorsFile {
        try SafetensorsFile(url: Golden.url("nf4/nf4.safetensors"))
    }

    /// Bytes of a U8 tensor.
    static func bytes(_ file: SafetensorsFile, _ name: String) throws -> [UInt8] {
        try file.ints(name).map { UInt8($0) }
    }

    /// The case's stored quantisation, assembled through the public initialiser.
    static func stored(_ file: SafetensorsFile, _ name: String) throws -> NF4Tensor {
        let shape = try #require(file.tensor("\(name).input")?.shape)
        return try NF4Tensor(
            rows: shape[0], columns: shape[1], packed: bytes(file, "\(name).weight"),
            quantizedAbsmax: bytes(file, "\(name).absmax"), absmaxScales: file.floats("\(name).nested_absmax"),
            absmaxOffset: file.floats("\(name).nested_offset")[0])
    }

    static func dequantizeAll(_ tensor: NF4Tensor) -> [Float] {
        var out = [Float](repeating: .nan, count: tensor.count)
        out.withUnsafeMutableBufferPointer { tensor.dequantizeRows(0..<tensor.rows, into: $0.baseAddress!) }
        return out
    }

    @Test func codeBooksAreBitsandbytes() throws {
        let file = try Self.golden()
        #expect(NF4Code.values.map(\.bitPattern) == (try file.floats("quant_map")).map(\.bitPattern))
        #expect(DynamicMap.values.map(\.bitPattern) == (try file.floats("nested_quant_map")).map(\.bitPattern))
    }

    /// The nested 8-bit quantiser alone, where its lookup table departs from
    /// the nearest code: codes and block absmax bit-exact.
    @Test func nestedQuantiserMatchesTheCPULibrary() throws {
        let file = try Self.golden()
        let (codes, absmax) = DynamicMap.quantizeBlockwise(try file.floats("blockwise.input"))
        #expect(codes == (try Self.bytes(file, "blockwise.codes")))
        #expect(absmax.map(\.bitPattern) == (try file.floats("blockwise.absmax")).map(\.bitPattern))
    }

    /// torch's Float32 sum and mean, bit for bit, across the counts where its
    /// vector, round-robin, cascade-level and tail paths change.
    @Test func sumsInTorchsOrder() throws {
        let file = try Self.golden()
        let counts = try file.ints("sums.count")
        let probe = (0..<(counts.max() ?? 0)).map { Float($0 &* 2_654_435_761 % (1 << 32) % 100_003) / 977 }
        let sums = try file.floats("sums.value"), means = try file.floats("sums.mean")
        for (n, (sum, mean)) in zip(counts, zip(sums, means)) {
            probe[..<n].withUnsafeBufferPointer { values in
                #expect(TorchFloatSum.sum(values).bitPattern == sum.bitPattern, "sum of \(n)")
                #expect(TorchFloatSum.mean(values).bitPattern == mean.bitPattern, "mean of \(n)")
            }
        }
    }

    /// Both stages, given torch's absmax mean: every byte and Float bit-exact.
    @Test(arguments: cases)
    func quantisesLikeBitsandbytes(name: String) throws {
        let file = try Self.golden()
        let shape = try #require(file.tensor("\(name).input")?.shape)
        let input = try file.floats("\(name).input")
        let context = ComputeContext(threads: 2)
        let stage1 = try input.withUnsafeBufferPointer { try NF4Tensor.quantizeCodes($0, context: context) }
        #expect(stage1.packed == (try Self.bytes(file, "\(name).weight")))
        #expect(stage1.absmax.map(\.bitPattern) == (try file.floats("\(name).absmax_fp32")).map(\.bitPattern))

        let torchMean = try file.floats("\(name).nested_offset")[0]
        let tensor = try input.withUnsafeBufferPointer {
            try NF4Tensor(quantizing: $0, rows: shape[0], columns: shape[1], absmaxOffset: torchMean, context: context)
        }
        #expect(tensor.packed == stage1.packed)
        #expect(tensor.quantizedAbsmax == (try Self.bytes(file, "\(name).absmax")))
        #expect(tensor.absmaxScales.map(\.bitPattern) == (try file.floats("\(name).nested_absmax")).map(\.bitPattern))
    }

    /// With our own absmax mean (torch's order of additions): every byte matches.
    @Test(arguments: cases)
    func ownMeanMatchesTorch(name: String) throws {
        let file = try Self.golden()
        let shape = try #require(file.tensor("\(name).input")?.shape)
        let input = try file.floats("\(name).input")
        let tensor = try input.withUnsafeBufferPointer {
            try NF4Tensor(quantizing: $0, rows: shape[0], columns: shape[1], context: ComputeContext(threads: 2))
        }
        #expect(tensor.absmaxOffset.bitPattern == (try file.floats("\(name).nested_offset"))[0].bitPattern)
        #expect(tensor.packed == (try Self.bytes(file, "\(name).weight")))
        #expect(tensor.quantizedAbsmax == (try Self.bytes(file, "\(name).absmax")))
        #expect(tensor.absmaxScales.map(\.bitPattern) == (try file.floats("\(name).nested_absmax")).map(\.bitPattern))
    }

    /// Dequantisation of bitsandbytes' own bytes: scales and values bit-exact.
    @Test(arguments: cases)
    func dequantisesLikeBitsandbytes(name: String) throws {
        let file = try Self.golden()
        let tensor = try Self.stored(file, name)
        let scales = (0..<tensor.blockCount).map { tensor.blockScale($0) }
        #expect(scales.map(\.bitPattern) == (try file.floats("\(name).absmax_dequantized")).map(\.bitPattern))
        let got = Self.dequantizeAll(tensor)
        let want = try file.floats("\(name).dequantized")
        #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "max |swift - bnb| = \(maxAbsDifference(got, want))")
    }

    @Test func byteCountIsPackedCodesAndScales() throws {
        let tensor = try Self.stored(try Self.golden(), "main")  // [130, 128]: 260 blocks, 2 groups
        #expect(tensor.blockCount == 260)
        #expect(tensor.byteCount == 130 * 128 / 2 + 260 + 2 * 4 + 4)
    }

    /// Any element range and any row split gives the same values as one pass.
    @Test(arguments: cases)
    func rangesAndThreadsAgree(name: String) throws {
        let tensor = try Self.stored(try Self.golden(), name)
        let whole = Self.dequantizeAll(tensor)
        let n = tensor.count
        for range in [0..<n, 1..<n, 3..<(n - 2), 63..<129, (n / 2)..<(n / 2 + 1), 5..<5] where range.upperBound <= n {
            var part = [Float](repeating: .nan, count: range.count)
            part.withUnsafeMutableBufferPointer { tensor.dequantize(range, into: $0.baseAddress!) }
            #expect(part == Array(whole[range]), "elements \(range)")
        }
        for threads in [1, 2, 3] {
            let rows = (tensor.rows / 3)..<tensor.rows
            var part = [Float](repeating: .nan, count: rows.count * tensor.columns)
            part.withUnsafeMutableBufferPointer {
                tensor.dequantizeRows(rows, into: $0.baseAddress!, context: ComputeContext(threads: threads))
            }
            #expect(part == Array(whole[(rows.lowerBound * tensor.columns)...]), "\(threads) threads")
        }
    }

    /// The C kernel's paths — AVX-512 (where the CPU has it), AVX2 and the
    /// plain C loop — write the same bits, in Float, in bf16 and in bf16
    /// values kept in Float32, over whole blocks and over ranges that start
    /// and end inside blocks, also where a damaged file's NaN offset makes
    /// every scale NaN.
    @Test(arguments: cases)
    func kernelPathsAgree(name: String) throws {
        try #require(CPUFeatures.hasAVX2, "the AVX2 path needs an AVX2 CPU (\(CPUFeatures.modelName))")
        let tensor = try Self.stored(try Self.golden(), name)
        let damaged = try NF4Tensor(
            rows: tensor.rows, columns: tensor.columns, packed: tensor.packed, quantizedAbsmax: tensor.quantizedAbsmax,
            absmaxScales: tensor.absmaxScales, absmaxOffset: .nan)
        let n = tensor.count
        try #require(n > NF4Tensor.blockSize)  // "zerotail": 70 values, one whole block and part of one
        for t in [tensor, damaged] {
            for range in [0..<n, 0..<(n / 64 * 64), 3..<(n - 5), min(n - 1, 70)..<min(n, 129)] {
                var plain = [Float](repeating: 1, count: range.count)
                t.dequantize(range, into: &plain, path: .portable)
                let plainBits = plain.map(bfloat16Bits)
                for path in [KernelPath.widest, .avx2] {
                    let label = "\(path), \(range), offset \(t.absmaxOffset)"
                    var floats = [Float](repeating: 1, count: range.count)
                    t.dequantize(range, into: &floats, path: path)
                    #expect(floats.map(\.bitPattern) == plain.map(\.bitPattern), "\(label)")
                    var bits = [UInt16](repeating: 1, count: range.count)
                    t.dequantizeBFloat16(range, into: &bits, path: path)
                    #expect(bits == plainBits, "\(label)")
                    var held = [Float](repeating: 1, count: range.count)
                    t.dequantizeBFloat16Floats(range, into: &held, path: path)
                    #expect(held.map(\.bitPattern) == plainBits.map { UInt32($0) << 16 }, "\(label)")
                }
                var portableBits = [UInt16](repeating: 1, count: range.count)
                t.dequantizeBFloat16(range, into: &portableBits, path: .portable)
                #expect(portableBits == plainBits)
                var portableHeld = [Float](repeating: 1, count: range.count)
                t.dequantizeBFloat16Floats(range, into: &portableHeld, path: .portable)
                #expect(portableHeld.map(\.bitPattern) == plainBits.map { UInt32($0) << 16 })
            }
        }
    }

    /// Each weight is within half the widest NF4 gap of its block's absmax, plus
    /// the double quantisation's error in that absmax; zeros stay zero.
    @Test(arguments: [(64, 64, 1), (300, 96, 2), (17, 33, 3), (1, 5, 4)])
    func errorIsBoundedByTheBlockScale(rows: Int, columns: Int, seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        var weights = (0..<(rows * columns)).map { _ in generator.nextNormal() * 0.02 }
        weights[weights.count / 2] = 0
        weights[0] = 0.9  // an outlier block
        let tensor = try weights.withUnsafeBufferPointer {
            try NF4Tensor(quantizing: $0, rows: rows, columns: columns, context: ComputeContext(threads: 2))
        }
        let restored = Self.dequantizeAll(tensor)
        let widestHalfGap = zip(NF4Code.values, NF4Code.values.dropFirst()).map { ($1 - $0) / 2 }.max() ?? 0
        for block in 0..<tensor.blockCount {
            let span = (block * 64)..<min(block * 64 + 64, weights.count)
            let absmax = weights[span].map(abs).max() ?? 0
            let scale = tensor.blockScale(block)
            let groupScale = tensor.absmaxScales[block / 256]
            // The dynamic map's gaps are at most 0.0141 of the group scale.
            #expect(abs(scale - absmax) <= 0.0071 * groupScale + 2 * tensor.absmaxOffset.ulp, "block \(block)")
            for i in span {
                let bound = widestHalfGap * absmax + abs(scale - absmax) + 1e-6 * absmax
                #expect(abs(restored[i] - weights[i]) <= bound, "weight \(i)")
                if weights[i] == 0 { #expect(restored[i] == 0) }
            }
        }
    }

    @Test func refusesNonFiniteWeightsAndMisfitParts() throws {
        var weights = [Float](repeating: 0.5, count: 200)
        for bad: Float in [.nan, -.infinity] {
            weights[130] = bad
            do {
                _ = try weights.withUnsafeBufferPointer {
                    try NF4Tensor(quantizing: $0, rows: 2, columns: 100, context: ComputeContext(threads: 2))
                }
                Issue.record("weight \(bad) was accepted")
            } catch let QuantizationError.nonFinite(index, value) {
                #expect(index == 130 && value.bitPattern == bad.bitPattern)
            }
        }
        #expect(throws: QuantizationError.shapeMismatch(what: "weights of [3, 100]", expected: 300, found: 200)) {
            try weights.withUnsafeBufferPointer { _ = try NF4Tensor(quantizing: $0, rows: 3, columns: 100, context: ComputeContext(threads: 1)) }
        }
        #expect(throws: QuantizationError.shapeMismatch(what: "quantised absmax codes", expected: 4, found: 3)) {
            _ = try NF4Tensor(
                rows: 2, columns: 100, packed: .init(repeating: 0, count: 100), quantizedAbsmax: [0, 0, 0], absmaxScales: [1],
                absmaxOffset: 0)
        }
        #expect(throws: QuantizationError.emptyShape(rows: 0, columns: 4)) {
            _ = try NF4Tensor(rows: 0, columns: 4, packed: [], quantizedAbsmax: [], absmaxScales: [], absmaxOffset: 0)
        }
    }

    /// A real matrix (SmolLM2's layer-0 down_proj) against bitsandbytes, by the
    /// hashes in Golden/nf4/smollm2_down_proj.json: every stage bit-exact.
    @Test func smolLM2MatrixMatchesBitsandbytes() throws {
        struct Record: Decodable {
            let tensor: String
            let shape: [Int]
            let input_fnv1a64, weight_fnv1a64, absmax_fnv1a64, nested_absmax_fnv1a64, dequantized_fnv1a64: String
            let nested_offset_bits: UInt32
            let relative_rms_error: Double
        }
        let record = try JSONDecoder().decode(Record.self, from: Data(contentsOf: Golden.url("nf4/smollm2_down_proj.json")))
        let gguf = try GGUFFile(url: TestPaths.model("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
        let source = GGUFTensorSource(file: gguf, configuration: try LlamaConfiguration(gguf: gguf))
        #expect(source.shape(of: record.tensor) == record.shape)
        let weights = try source.floats(record.tensor)
        #expect(Self.fnv1a64(weights) == record.input_fnv1a64, "the GGUF reader's input differs from gguf-py's")

        let context = ComputeContext(threads: 2)
        let torchMean = Float(bitPattern: record.nested_offset_bits)
        let tensor = try weights.withUnsafeBufferPointer {
            try NF4Tensor(quantizing: $0, rows: record.shape[0], columns: record.shape[1], absmaxOffset: torchMean, context: context)
        }
        #expect(Self.fnv1a64(tensor.packed) == record.weight_fnv1a64)
        #expect(Self.fnv1a64(tensor.quantizedAbsmax) == record.absmax_fnv1a64)
        #expect(Self.fnv1a64(tensor.absmaxScales) == record.nested_absmax_fnv1a64)
        var restored = [Float](repeating: .nan, count: tensor.count)
        restored.withUnsafeMutableBufferPointer { tensor.dequantizeRows(0..<tensor.rows, into: $0.baseAddress!, context: context) }
        #expect(Self.fnv1a64(restored) == record.dequantized_fnv1a64)

        let own = try weights.withUnsafeBufferPointer {
            try NF4Tensor(quantizing: $0, rows: record.shape[0], columns: record.shape[1], context: context)
        }
        #expect(own.absmaxOffset.bitPattern == record.nested_offset_bits, "mean \(own.absmaxOffset) vs torch \(torchMean)")
        #expect(Self.fnv1a64(own.quantizedAbsmax) == record.absmax_fnv1a64)
        #expect(Double(own.byteCount) / Double(own.count) < 0.53)
    }

    /// FNV-1a 64 of the values' little-endian bytes, as the reference script hashes them.
    static func fnv1a64<T>(_ values: [T]) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        values.withUnsafeBytes { bytes in
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        }
        return String(hash, radix: 16).leftPadding(to: 16)
    }
}

extension String {
    fileprivate func leftPadding(to length: Int) -> String {
        String(repeating: "0", count: max(0, length - count)) + self
    }
}
