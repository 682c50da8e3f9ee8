// The goldens on the engine this process does not run: the engine is chosen
// once per process (`MatmulEngine`, `FACTSWEEP_MATMUL`), so the golden suites
// run again in a child of this test binary with the other engine forced.
// The tests then check both engines on every run, whichever is the default.
import Foundation
import Testing
@testable import Core
import TestSupport

@Suite struct OtherEngineGoldenTests {
    /// The suites the child runs: transformers' and PEFT's goldens in f32,
    /// autocast's in bf16, SmolLM2 against transformers, and the engine
    /// tests, whose `defaultFollowsTheEnvironment` checks the child really
    /// runs the engine it was given.
    static let suites = ["LlamaGoldenTests", "PEFTGoldenTests", "BFloat16GoldenTests", "SmolLM2ReferenceTests", "MatmulEngineTests"]

    @Test func goldensHoldOnTheOtherEngine() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let other: MatmulEngine = MatmulEngine.current == .oneDNN ? .openBLAS : .oneDNN, name = other.rawValue
        var environment = ProcessInfo.processInfo.environment
        environment[MatmulEngine.environmentKey] = other.rawValue
        let binary = URL(fileURLWithPath: CommandLine.arguments[0])
        let r = try Command.run(binary, ["--testing-library", "swift-testing", "--filter", Self.suites.joined(separator: "|")],
                                environment: environment, directory: TestPaths.repositoryRoot)
        // swift-testing reports on standard error; the tests' own lines are on standard output.
        let log = r.stderr.split(separator: "\n")
        let summary = log.last { $0.contains("Test run with") }.map(String.init) ?? "no summary"
        let failures = log.filter { $0.contains("✘") }.prefix(20).joined(separator: "\n")
        #expect(r.status == 0 && failures.isEmpty, "on \(name): \(summary)\n\(failures)\n\(r.stderr.suffix(2000))")
        // Every suite ran and passed: a filter that matched nothing would also exit 0.
        for suite in Self.suites {
            #expect(r.stderr.contains("Suite \(suite) passed"), "on \(name): \(suite) did not pass")
        }
        print("goldens on \(name) in a child process: \(summary)")
    }
}
