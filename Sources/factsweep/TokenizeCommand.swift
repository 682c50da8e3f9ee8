// `factsweep tokenize`: token ids of a text as a JSON array.
import ArgumentParser
import Core
import Worker

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of TEXT as a JSON array (no special tokens added; special tokens typed in TEXT are matched).")

    @Option(name: .long, help: "A GGUF file or a model directory with tokenizer.json (weights not needed).")
    var model: String?

    @Argument(help: "The text to tokenize.")
    var text: String

    func run() throws {
        let url = try DefaultPaths.resolve(model, default: DefaultPaths.model, what: "model")
        let tokenizer = try TokenizerLocation.load(url)
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
    }
}
