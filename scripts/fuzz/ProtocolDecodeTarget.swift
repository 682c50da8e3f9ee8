// libFuzzer target: Message.decode on arbitrary input (scripts/fuzz/protocol-decode.sh).
// The input is split into three frames at its first two 0xFF bytes, as header,
// type code and JSON body; `-write_seeds=DIR` writes one seed per message type.
import Foundation
import Protocol
import Trial

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let frames = Data(UnsafeBufferPointer(start: data, count: size)).split(separator: 0xFF, maxSplits: 2, omittingEmptySubsequences: false).map { Data($0) }
    // Rejections are values; anything else (a trap, an overflow) is a crash for libFuzzer.
    if let message = try? Message.decode(frames, maxFrameBytes: 1 << 16) {
        // What decodes must encode again.
        _ = try? Message.encode(message)
    }
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee[$0].map { String(cString: $0) } }
    guard let option = arguments.first(where: { $0.hasPrefix("-write_seeds=") }) else { return 0 }
    let directory = URL(fileURLWithPath: String(option.dropFirst("-write_seeds=".count)))
    // A whole assign as the coordinator sends it, so that its decoding (and the unknown-member check) is reached.
    var training = TrainingSettings(method: .lora)
    training.precision = .bf16
    let assign = (try? Message.encode(.assign(.init(trial: "t", attempt: 1, config: TrialConfig(
        model: "m.gguf", data: "d.jsonl", training: training, evalEpochs: [0]))))) ?? []
    try? Data(assign.joined(separator: [0xFF])).write(to: directory.appendingPathComponent("assign"))
    let seeds: [String: [String]] = [
        "hello": ["factsweep/4", "\u{01}", #"{"worker_id":"w","session":"s","host":"h","pid":1,"threads":1,"protocol_version":4,"models":[],"held":[{"trial":"t","attempt":1,"last_epoch":0}]}"#],
        "ready": ["factsweep/4", "\u{02}", #"{"free_slots":1,"models":["m"],"model_storages":[{"model":"m","storage":"nf4"}]}"#],
        "progress": ["factsweep/4", "\u{03}", #"{"message_id":1,"trial":"t","attempt":1,"report":{"epoch":1,"loss":0.5,"epoch_seconds":1,"train_seconds":1}}"#],
        "failed": ["factsweep/4", "\u{06}", #"{"message_id":2,"trial":"t","attempt":1,"reason":"r","retryable":true}"#],
        "ack": ["factsweep/4", "\u{11}", #"{"message_ids":[1,2]}"#],
        "drop": ["factsweep/4", "\u{13}", #"{"trial":"t","attempt":1,"reason":"r"}"#],
    ]
    for (name, frames) in seeds {
        try? Data(frames.joined(separator: "\u{FF}").utf8).write(to: directory.appendingPathComponent(name))
    }
    exit(0)
}
