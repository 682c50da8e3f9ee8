// `factsweep generate`: the greedy continuation of a prompt.
import ArgumentParser
import Core
import Foundation

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Print the greedy continuation of PROMPT (the continuation only).")

    @OptionGroup var options: ModelOptions

    @Flag(name: .long, help: "Wrap PROMPT in the model's chat template as the user turn; special tokens are not printed.")
    var chat = false

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens = 64

    @Argument(help: "The prompt.")
    var prompt: String

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
    }

    func run() throws {
        let context = ComputeContext.forProcess(threads: options.threads)
        let lm = try options.loadModel()
        let ids: [Int32]
        if chat {
            let text = lm.template.render(messages: [.user(prompt)], addGenerationPrompt: true)
            ids = try lm.encode(text, parseSpecial: true)
        } else {
            ids = try lm.encode(prompt, addSpecialTokens: true, parseSpecial: true)
        }
        guard ids.count + maxTokens <= lm.model.config.maxPositions else {
            throw CLIError("prompt of \(ids.count) tokens plus \(maxTokens) new ones exceeds the model's \(lm.model.config.maxPositions) positions")
        }
        let generator = CachedGenerator(network: lm.model.frozenNetwork(), maxBatch: 1, maxLength: ids.count + maxTokens, context: context)
        let generated = generator.generate(prompts: [ids], maxNewTokens: maxTokens, stopTokens: lm.stopTokens)[0]
        print(lm.tokenizer.decode(generated, skipSpecialTokens: chat))
    }
}
