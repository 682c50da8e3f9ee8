// GGUFQuantTests: dequantisation of every supported ggml type against gguf-py,
// and metadata of every GGUF value type, from the golden files written by
// scripts/reference/make_quant_golden.py.
import Foundation
import Testing
@testable import Core
import Trial

@Suite struct GGUFQuantTests {
    static let tensorNames = ["f32", "f16", "bf16", "q4_0", "q4_1", "q8_0", "q6_k"]

    @Test(arguments: tensorNames)
    func dequantisesLikeGGUFPy(name: String) throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        let expected = try SafetensorsFile(url: Golden.url("quant/expected.safetensors"))
        let info = try #require(gguf.tensor(name))
        #expect(info.shape == expected.tensor(name)?.shape)
        let got = try gguf.floats(gguf: name)
        let want = try expected.floats(name)
        let diff = maxAbsDifference(got, want)
        #expect(diff <= 1e-6, "\(name) (\(info.type)): max |swift - gguf-py| = \(diff)")
    }

    @Test func typesAreTheOnesTheScriptWrote() throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        let types = Self.tensorNames.map { gguf.tensor($0)?.type }
        #expect(types == [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q6_K])
    }

    /// The parallel path (large tensors split across cores) must give the
    /// same values as the serial one: the golden rows tiled 400 times.
    @Test(arguments: tensorNames)
    func parallelConversionMatchesSerial(name: String) throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        let info = try #require(gguf.tensor(name))
        let copies = 400
        let rowLength = info.dimensions[0], rows = info.elementCount / rowLength
        let tiled: [UInt8] = (0..<copies).flatMap { _ in Array(gguf.data(of: info)) }
        let want = try gguf.floats(gguf: name)
        var got = [Float](repeating: .nan, count: info.elementCount * copies)
        #expect(got.count >= 1 << 16, "tile enough to take the parallel path")
        tiled.withUnsafeBytes { src in
            got.withUnsafeMutableBufferPointer { dst in
                Dequantize.rows(
                    of: info.type, from: src.baseAddress!, rowCount: rows * copies, rowLength: rowLength,
                    into: dst.baseAddress!)
            }
        }
        for copy in [0, copies / 2, copies - 1] {
            let slice = Array(got[(copy * want.count)..<((copy + 1) * want.count)])
            #expect(slice == want, "copy \(copy) of \(name)")
        }
    }

    @Test func metadataOfEveryValueType() throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        let m = gguf.metadata
        #expect(gguf.version == 3)
        #expect(gguf.alignment == 32 && gguf.dataOffset % 32 == 0)
        #expect(m.string("general.architecture") == "factsweep-test")
        #expect(m["test.uint8"] == .uint8(200))
        #expect(m["test.int8"] == .int8(-100))
        #expect(m["test.uint16"] == .uint16(60000))
        #expect(m["test.int16"] == .int16(-30000))
        #expect(m["test.uint32"] == .uint32(4_000_000_000))
        #expect(m["test.int32"] == .int32(-2_000_000_000))
        #expect(m["test.float32"] == .float32(0.125))
        #expect(m["test.bool"] == .bool(true))
        #expect(m["test.string"] == .string("héllo ▁world"))
        #expect(m["test.uint64"] == .uint64(1 << 40 + 1))
        #expect(m["test.int64"] == .int64(-(1 << 40)))
        #expect(m["test.float64"] == .float64(-2.5))
        #expect(m.stringArray("test.strings") == ["a", "βγ", "", "<|im_start|>"])
        #expect(m.intArray("test.ints") == [1, -2, 3])
        #expect(m.floatArray("test.floats") == [0.5, -1.5])
        // Accessors convert integer widths and refuse mismatched types.
        #expect(m.int("test.uint32") == 4_000_000_000 && m.int("test.int8") == -100)
        #expect(m.float("test.float64") == -2.5)
        #expect(m.int("test.string") == nil && m.stringArray("test.ints") == nil)
        expectLoadError(mentioning: "quant-types.ggufdata", "test.string", "string") {
            _ = try m.required("test.string", m.int)
        }
    }

    @Test func unsupportedArchitectureIsRefused() throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        expectLoadError(mentioning: "quant-types.ggufdata", "general.architecture", "factsweep-test") {
            _ = try LlamaConfiguration(gguf: gguf)
        }
    }

    /// The unpermute must invert llama.cpp's `permute`: within a head, GGUF
    /// row 2i + j holds Hugging Face row j * headDim/2 + i.
    @Test func unpermuteInvertsLlamaCppPermute() {
        let headDimension = 8, heads = 3
        // llama.cpp: reshape(heads, 2, hd/2).swapaxes(1, 2) => GGUF row for each HF row.
        var permuted = [Int](repeating: -1, count: heads * headDimension)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<headDimension / 2 {
                    permuted[h * headDimension + 2 * i + j] = h * headDimension + j * headDimension / 2 + i
                }
            }
        }
        let restored = (0..<permuted.count).map {
            permuted[GGUFTensorSource.ggufRow(forHuggingFaceRow: $0, headDimension: headDimension)]
        }
        #expect(restored == Array(0..<permuted.count))
    }
}
