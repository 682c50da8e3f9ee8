// The `factsweep` command: subcommands, each in its own file.
import ArgumentParser
import Foundation

@main
struct FactSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "factsweep",
        abstract: "Fine-tuning studies at scale: train, evaluate and sweep Llama-architecture models on CPU.",
        subcommands: [TrainCommand.self, PlanCommand.self, RunCommand.self, CoordinatorCommand.self, StatusCommand.self, ServeCommand.self, ReportCommand.self, WorkerCommand.self, GenerateCommand.self, TokenizeCommand.self, SimilarityCommand.self, DataCommand.self, ExportCommand.self, BenchCommand.self, SlurmCommand.self, KeysCommand.self, RetryCommand.self, CancelCommand.self])

    static func main() {
        LibraryEnvironment.ensure()
        main(nil)
    }
}
