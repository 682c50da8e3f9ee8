// `factsweep cancel`: trials that have not ended become cancelled; a running one is stopped by its worker.
import ArgumentParser
import Coordinator

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel trials of RUN that have not ended; a running coordinator tells their workers to stop them.")

    @Argument(help: "The run directory (holding run.db).")
    var runDirectory: String

    @Argument(help: "Trial keys, or unique starts of them.")
    var keys: [String]

    func validate() throws {
        guard !keys.isEmpty else { throw ValidationError("name at least one trial key") }
    }

    func run() throws {
        try UserRequest.perform(ControlRequest(action: .cancel, keys: keys), runDirectory: runDirectory)
    }
}
