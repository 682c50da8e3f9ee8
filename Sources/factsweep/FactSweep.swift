// The `factsweep` command: subcommands, each in its own file.
import ArgumentParser
import Core
import Foundation

@main
struct FactSweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "factsweep",
        abstract: "Fine-tuning studies at scale: train, evaluate and sweep Llama-architecture models on CPU.",
        subcommands: [TrainCommand.self, PlanCommand.self, RunCommand.self, CoordinatorCommand.self, StatusCommand.self, ServeCommand.self, ReportCommand.self, WorkerCommand.self, GenerateCommand.self, TokenizeCommand.self, SimilarityCommand.self, DataCommand.self, ExportCommand.self, BenchCommand.self, SlurmCommand.self, KeysCommand.self, RetryCommand.self, CancelCommand.self])

    static func main() {
        // Before the re-execution: a process that cannot run as asked stops here, saying why.
        if let problem = MatmulEngine.environmentProblem {
            FileHandle.standardError.write(Data("factsweep: error: \(problem)\n".utf8))
            Foundation.exit(64)
        }
        LibraryEnvironment.ensure()
        main(nil)
    }
}
