// `factsweep similarity`: the evaluation's score for two texts.
import ArgumentParser
import Core
import Foundation
import Worker

struct SimilarityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similarity",
        abstract: "Print the cosine similarity of two texts' all-MiniLM-L6-v2 embeddings (the study's accuracy measure).")

    @Option(name: .long, help: "Sentence embedder directory (default: the embedded all-MiniLM-L6-v2).")
    var embedder: String?

    @Option(name: .long, help: "Threads.")
    var threads = 1

    @Argument(help: "The first text.")
    var a: String

    @Argument(help: "The second text.")
    var b: String

    func validate() throws {
        try checkThreadCount(threads, "--threads")
    }

    func run() throws {
        let url = try DefaultPaths.resolve(embedder, default: DefaultPaths.embedder, what: "sentence embedder")
        let model = try SentenceEmbedder.load(url)
        print(String(format: "%.6f", model.cosineSimilarity(a, b, context: ComputeContext.forProcess(threads: threads))))
    }
}
