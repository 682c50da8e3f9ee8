// `factsweep retry`: failed or cancelled trials back to pending, with a fresh retry budget.
import ArgumentParser
import Coordinator

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Put failed or cancelled trials of RUN back to pending with a fresh retry budget (a running coordinator picks them up).")

    @Argument(help: "The run directory (holding run.db).")
    var runDirectory: String

    @Argument(help: "Trial keys, or unique starts of them.")
    var keys: [String] = []

    @Flag(name: .long, help: "Every failed trial.")
    var failed = false

    func validate() throws {
        guard failed || !keys.isEmpty else { throw ValidationError("name trial keys, or --failed") }
    }

    func run() throws {
        try UserRequest.perform(ControlRequest(action: .retry, keys: keys, failed: failed), runDirectory: runDirectory)
    }
}
