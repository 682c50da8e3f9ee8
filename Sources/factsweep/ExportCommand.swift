// `factsweep export`: a checkpointed trial as a PEFT adapter directory and/or a
// merged Hugging Face model directory.
import ArgumentParser
import Core
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a trained adapter as a PEFT directory, or the merged model as a Hugging Face directory.")

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "The checkpoint directory of the trial (train --out DIR --checkpoint-every C).")
    var checkpoint: String

    @Option(name: .long, help: "The directory to write.")
    var out: String

    @Flag(name: .long, help: "Write the merged full model (config.json, model.safetensors, tokenizer files) instead of the adapter.")
    var merged = false

    @Option(name: .long, help: "Also write probe.safetensors: input ids and last-position logits of this prompt with the trained model (for checking the export elsewhere).")
    var probe: String?

    func run() throws {
        let context = ComputeContext.forProcess(threads: options.threads)
        let kind = try TrainingCheckpoint.read(URL(fileURLWithPath: checkpoint)).0.settings.method.kind
        let lm = try options.loadModel(storage: kind == .qlora ? .nf4 : .float32)
        let probeIds = try probe.map { try lm.encode($0, addSpecialTokens: true) }
        let ft = try FineTuning(checkpoint: URL(fileURLWithPath: checkpoint), base: lm.model, maxSeq: max(8, probeIds?.count ?? 0), context: context)
        let outURL = URL(fileURLWithPath: out)
        if merged {
            try ft.exportMerged(to: outURL)
            try lm.writeTokenizerFiles(to: outURL)
        } else {
            try ft.exportAdapter(to: outURL, baseModel: lm.adapterBaseModel)
        }
        if let ids = probeIds {
            let batch = TokenBatch(batchSize: 1, seqLen: ids.count, tokens: ids, targets: Array(repeating: TokenBatch.ignore, count: ids.count))
            let logits = ft.network.logits(batch, outputRows: [ids.count - 1], ft.activations, context: context)
            var writer = SafetensorsWriter(metadata: ["prompt": probe ?? ""])
            try writer.add("input_ids", shape: [ids.count], ids)
            try writer.add("logits", shape: [logits.count], logits)
            try writer.write(to: outURL.appendingPathComponent("probe.safetensors"))
        }
        FileHandle.standardError.write(Data("wrote \(merged ? "merged model" : "\(ft.method.kind.rawValue) adapter") to \(outURL.path)\n".utf8))
    }
}
