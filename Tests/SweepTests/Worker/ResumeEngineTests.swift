// A trial resumed on another engine than its checkpoint was made on (another
// host's default, a forced FACTSWEEP_MATMUL) runs, and says so: its later
// epochs sum in another order than an uninterrupted run's.
import Core
import Foundation
import Testing
import TestSupport
import Trial
@testable import Worker

@Suite struct ResumeEngineTests {
    @Test func aResumeOnAnotherEngineIsLogged() throws {
        let dir = try TemporaryDirectory()
        let logs = CapturedLogs()
        let runner = TrialRunner(cache: ModelCache(logger: logs.logger("cache")), context: ComputeContext(threads: 1),
                                 logger: logs.logger("runner"))
        let config = try TinyTrial.config(epochs: 4)
        var stopping = TrialEvents()
        stopping.shouldStop = { true }
        func warnings() -> [String] { logs.all.filter { $0.level == .warning && $0.message.contains("resumed on") }.map(\.message) }

        // Epoch 1, then epoch 2 resumed here: the same engine, nothing said.
        _ = try runner.run(config, directory: dir.url, resume: false, events: stopping)
        let here = MatmulEngine.productsName(for: .f32)
        #expect(try TrainingCheckpoint.read(dir.url).0.engine == here)
        _ = try runner.run(config, directory: dir.url, resume: true, events: stopping)
        #expect(warnings().isEmpty, "\(warnings())")

        // The checkpoint as another engine would have written it.
        let (saved, file) = try TrainingCheckpoint.read(dir.url)
        let parameters = FloatArena(capacity: try #require(file.shape(of: "parameters")?.first))
        let moments = FloatArena(capacity: try #require(file.shape(of: "adam_moments")?.first))
        try file.read("parameters", into: parameters.buffer)
        try file.read("adam_moments", into: moments.buffer)
        var elsewhere = saved
        elsewhere.engine = "another-engine"
        try TrainingCheckpoint.write(elsewhere, parameters: parameters, moments: moments, to: dir.url)
        let summary = try runner.run(config, directory: dir.url, resume: true, events: stopping)
        #expect(summary.epochs == 3)
        let said = warnings()
        #expect(said.count == 1 && said.first?.contains("made with products on another-engine, resumed on \(here)") == true, "\(said)")
        // The run is mixed from then on, and its checkpoints and its summary (stored with the trial) say so.
        #expect(try TrainingCheckpoint.read(dir.url).0.engine == "another-engine,\(here)")
        #expect(summary.engine == "another-engine,\(here)", "\(summary)")

        // A mixed run resumed again on its last stretch's engine is not another engine.
        let again = try runner.run(config, directory: dir.url, resume: true, events: TrialEvents())
        #expect(again.epochs == 4 && warnings().count == 1, "\(warnings())")
        #expect(again.engine == "another-engine,\(here)")
    }

    /// A run that never moved names its one engine in its summary.
    @Test func theSummaryNamesTheEngine() throws {
        let dir = try TemporaryDirectory()
        let runner = TrialRunner(cache: ModelCache(logger: CapturedLogs().logger("cache")), context: ComputeContext(threads: 1),
                                 logger: CapturedLogs().logger("runner"))
        let summary = try runner.run(try TinyTrial.config(epochs: 1), directory: dir.url, resume: false, events: TrialEvents())
        #expect(summary.engine == MatmulEngine.productsName(for: .f32), "\(summary)")
    }
}
