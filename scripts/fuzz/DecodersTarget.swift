// libFuzzer targets for the readers of files a user or a peer hands FactSweep
// (scripts/fuzz/decoders.sh): the sweep spec, the dataset JSONL, the GGUF
// header, the safetensors header and tokenizer.json. One binary; the target is
// chosen by FACTSWEEP_FUZZ_TARGET. Each reader must answer any input with a
// value or a thrown error: a trap, an overflow or an out-of-bounds read is a
// crash for libFuzzer (and AddressSanitizer).
import Core
import Foundation
import Spec

/// The readers that take a file read it from here; one file per process, rewritten for each input.
let scratch: URL = {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("factsweep-fuzz-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}()

let target = ProcessInfo.processInfo.environment["FACTSWEEP_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(UnsafeBufferPointer(start: bytes, count: size))
    func file(_ name: String) -> URL {
        let url = scratch.appendingPathComponent(name)
        try? data.write(to: url)
        return url
    }
    switch target {
    case "spec":
        _ = try? SweepPlan(json: data, file: "spec.json", baseDirectory: scratch)
    case "dataset":
        _ = try? FactDataset.parse(data, origin: "facts.jsonl")
    case "gguf":
        if let gguf = try? GGUFFile(url: file("model.gguf")) {
            // What the header describes must be readable without leaving the file.
            for tensor in gguf.tensors { _ = gguf.data(of: tensor) }
        }
    case "safetensors":
        if let safetensors = try? SafetensorsFile(url: file("model.safetensors")) {
            for tensor in safetensors.tensors { _ = safetensors.data(of: tensor) }
        }
    case "tokenizer":
        if let tokenizer = try? Tokenizer(tokenizerJSON: file("tokenizer.json")) {
            _ = tokenizer.decode(tokenizer.encode("Ada Lovelace was born in 1815.", addSpecialTokens: true))
        }
    default:
        FileHandle.standardError.write(Data("FACTSWEEP_FUZZ_TARGET must be spec, dataset, gguf, safetensors or tokenizer\n".utf8))
        exit(2)
    }
    return 0
}
