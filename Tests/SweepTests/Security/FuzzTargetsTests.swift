// The fuzz targets' short run, as part of the test command: libFuzzer on the
// protocol decoder and on the readers of files a user or a peer hands FactSweep
// (sweep spec, dataset JSONL, GGUF, safetensors, tokenizer.json), a few
// hundred executions each from the fixtures' seeds. A crash fails the test with
// the target's output; so does a missing swiftc or libFuzzer runtime (the
// scripts exit non-zero) — a target that did not run is not a pass. The first
// run builds the instrumented modules into .build-fuzz (minutes); later runs
// reuse them. Long runs and their figures: docs/security.md, "Fuzzing".
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct FuzzTargetsTests {
    /// Runs `script ARGUMENTS` from the repository root; its combined output.
    static func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + arguments
        process.currentDirectoryURL = TestPaths.repositoryRoot
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // The fuzz build and run take a few minutes on a loaded machine; a hang fails the test instead.
        guard process.waitOrKill(seconds: 1200) else {
            return (-1, "timed out after 1200 s\n" + ((try? String(contentsOf: log, encoding: .utf8)) ?? ""))
        }
        return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    @Test func protocolDecoderSurvivesAShortFuzzRun() throws {
        let result = try Self.run("scripts/fuzz/protocol-decode.sh", ["2000"])
        #expect(result.status == 0 && result.output.contains("DONE"), "\(result.output.suffix(4000))")
    }

    @Test func fileReadersSurviveAShortFuzzRun() throws {
        let result = try Self.run("scripts/fuzz/decoders.sh", ["300"])
        #expect(result.status == 0, "\(result.output.suffix(4000))")
        // Each target's section: "== NAME: 300 runs", then libFuzzer's statistics. A corpus carried over from
        // longer runs may hold more than 300 inputs, all of which run first: at least 300.
        let sections = result.output.components(separatedBy: "== ").dropFirst()
        for target in ["spec", "dataset", "gguf", "safetensors", "tokenizer"] {
            let section = sections.first { $0.hasPrefix("\(target): 300 runs") }
            let executed = section?.components(separatedBy: "stat::number_of_executed_units:").dropFirst().first
                .flatMap { Int($0.prefix { $0 != "\n" }.trimmingCharacters(in: .whitespaces)) }
            #expect((executed ?? 0) >= 300, "\(target) did not run its executions\n\(result.output.suffix(4000))")
        }
    }
}
