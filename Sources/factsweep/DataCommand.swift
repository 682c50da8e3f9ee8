// `factsweep data`: dataset tools.
import ArgumentParser
import Core
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Dataset tools.", subcommands: [SynthCommand.self])

    struct SynthCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "synth",
            abstract: "Write seeded fictional biographies (six facts per person) as JSON Lines to standard output or --out.")

        @Option(name: .long, help: "Number of people.")
        var people = 1

        @Option(name: .long, help: "Seed; the same seed gives the same people.")
        var seed: UInt64 = 0

        @Option(name: .long, help: "File to write (default: standard output).")
        var out: String?

        func validate() throws {
            guard (1...100_000).contains(people) else { throw ValidationError("--people must be between 1 and 100000") }
        }

        func run() throws {
            let dataset = FactDataset(facts: BiographySynthesizer(seed: seed).facts(people: people))
            let text = try dataset.jsonLines()
            if let out {
                try text.write(to: URL(fileURLWithPath: out), atomically: true, encoding: .utf8)
            } else {
                print(text, terminator: "")
            }
        }
    }
}
