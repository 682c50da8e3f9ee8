// StoredTensor: where a tensor's bytes lie in its file, the one thing the
// GGUF and safetensors readers share for refusing tensors that overlap.
import Trial

/// A tensor's place in its file.
protocol StoredTensor {
    var name: String { get }
    var offset: Int { get }
    var byteCount: Int { get }
}

extension GGUFTensorInfo: StoredTensor {}
extension SafetensorsTensorInfo: StoredTensor {}

/// Refuses two tensors sharing bytes, naming both and their byte ranges: each
/// is converted into memory of its own, so many entries spanning the whole file
/// would need many times its size. Writers (llama.cpp, safetensors) put each
/// tensor after the one before; an empty tensor (safetensors allows them) has
/// no bytes to share.
func refuseOverlappingData(_ tensors: [some StoredTensor], file: String) throws {
    let sorted = tensors.filter { $0.byteCount > 0 }.sorted { ($0.offset, $0.name) < ($1.offset, $1.name) }
    for (previous, tensor) in zip(sorted, sorted.dropFirst()) where tensor.offset < previous.offset + previous.byteCount {
        throw LoadError.malformed(
            file: file,
            reason: "tensors \(previous.name) and \(tensor.name) overlap (bytes \(previous.offset)..<\(previous.offset + previous.byteCount) "
                + "and \(tensor.offset)..<\(tensor.offset + tensor.byteCount))")
    }
}
