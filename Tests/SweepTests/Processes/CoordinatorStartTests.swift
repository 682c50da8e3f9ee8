// A real coordinator's start on a sweep large enough to take a while: it says
// what it is doing before the long check and insert, and how long they took,
// then listens; a restart on the filled run says the same. A small sweep
// prints none of it.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct CoordinatorStartTests {
    static func start(_ spec: URL, run: URL, log: URL) throws -> FactSweepChild {
        // A port the system picks: none taken by another test or an outgoing connection.
        try FactSweepChild(["coordinator", spec.path, "--bind", "tcp://127.0.0.1:*", "--run-dir", run.path], log: log)
    }

    /// Whether `texts` occur in `output` in this order.
    static func inOrder(_ output: String, _ texts: [String]) -> Bool {
        var rest = Substring(output)
        for text in texts {
            guard let range = rest.range(of: text) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }

    @Test func aLargeSweepSaysWhatItsStartIsDoing() throws {
        let dir = try TemporaryDirectory()
        let seeds = (0..<10_000).map(String.init).joined(separator: ", ")
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "large", """
            "defaults": {"epochs": 1, "eval_every": 0, "checkpoint_every": 1},
            "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": [\(seeds)]}
            """)
        let run = dir.url.appendingPathComponent("run")
        for (attempt, new) in [("first", 10_000), ("restart", 0)] {
            let coordinator = try Self.start(spec, run: run, log: dir.file("\(attempt).log"))
            defer { coordinator.stop() }
            #expect(coordinator.waitForOutput("listening on", seconds: 60), "\(attempt): \(coordinator.output)")
            let database = run.appendingPathComponent("run.db").path
            #expect(Self.inOrder(coordinator.output, [
                "sweep large: checking \(database) and adding its 10000 trials …\n",
                "sweep large: checked and added in ",
                "sweep large: 10000 trials (\(new) new)",
                "listening on",
            ]), "\(attempt): \(coordinator.output)")
        }
    }

    @Test func aSmallSweepStartsWithoutProgressLines() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "small", """
            "defaults": {"epochs": 1, "eval_every": 0, "checkpoint_every": 1},
            "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": [0, 1]}
            """)
        let coordinator = try Self.start(spec, run: dir.url.appendingPathComponent("run"), log: dir.file("small.log"))
        defer { coordinator.stop() }
        #expect(coordinator.waitForOutput("listening on", seconds: 30), "\(coordinator.output)")
        #expect(!coordinator.output.contains("checking") && !coordinator.output.contains("read from"), "\(coordinator.output)")
    }
}
