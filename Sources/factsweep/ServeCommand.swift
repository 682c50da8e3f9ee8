// `factsweep serve`: the live dashboard of a run — curves, trials, workers,
// answers — in the browser, updating by itself while the sweep runs. Reads
// RUN/run.db read-only; `factsweep run --serve` starts the same server.
import ArgumentParser
import Dashboard
import Foundation
import Logging

/// `--port`, `--bind` and `--allow-non-loopback`, shared by `serve` and `run --serve`.
struct DashboardOptions: ParsableArguments {
    @Option(name: .long, help: "Dashboard port (0: any free port; the URL is printed).")
    var port = 8080

    @Option(name: .long, help: "Dashboard address; loopback only unless --allow-non-loopback (it has no authentication).")
    var bind = "127.0.0.1"

    @Flag(name: .long, help: "Serve the dashboard on a non-loopback --bind: anyone reaching it reads the run (docs/security.md).")
    var allowNonLoopback = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0…65535") }
        guard DashboardServer.isLoopback(bind) || allowNonLoopback else {
            throw ValidationError("--bind \(bind) is not a loopback address and the dashboard has no authentication; "
                                  + "add --allow-non-loopback to serve it there anyway (docs/security.md)")
        }
    }

    /// Starts the dashboard of the run database at `location` and says where it is on standard output.
    func start(_ location: String, logger: Logger) throws -> URL {
        let reader = try DashboardReader(location: location, logger: logger)
        let url = try DashboardServer.start(reader, host: bind, port: port, allowNonLoopback: allowNonLoopback, logger: logger)
        // Unbuffered: whoever started this process (a script, a test) learns the URL at once.
        FileHandle.standardOutput.write(Data("dashboard: \(url.absoluteString)\n".utf8))
        return url
    }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a run's live dashboard over HTTP (reads RUN/run.db read-only; safe while the sweep runs).",
        discussion: "Binds 127.0.0.1:8080 by default and prints the URL; Ctrl-C stops it. No authentication: see docs/security.md.")

    @Argument(help: "The run directory (or its run.db).")
    var runDirectory: String

    @OptionGroup var dashboard: DashboardOptions

    func run() throws {
        let stop = SignalWatch()
        _ = try dashboard.start(runDirectory, logger: Logger(label: "factsweep.serve"))
        while !stop.isSet { usleep(100_000) }
    }
}
