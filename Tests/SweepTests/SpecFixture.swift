// SpecFixture: a temporary spec directory with stand-ins for the files a spec
// names (a model directory holding one .gguf, a facts file, an embedder
// directory, held-out text), so that spec tests need no real model.
@testable import Coordinator
import Foundation
import TestSupport

struct SpecFixture {
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory()
        let files = FileManager.default
        for name in ["model", "model2", "embedder"] {
            try files.createDirectory(at: directory.file(name), withIntermediateDirectories: true)
        }
        for name in ["model/tiny.gguf", "model2/other.gguf", "facts.jsonl", "facts2.jsonl", "heldout.txt"] {
            try Data().write(to: directory.file(name))
        }
    }

    /// A spec document around `conditions`, `defaults` and `grid` (JSON text).
    /// `sampling`, when given, is the `sampling` member's JSON.
    func spec(conditions: String, defaults: String = "{}", grid: String = "{}", model: String = "model", data: String = "facts.jsonl",
              sampling: String? = nil) -> String {
        #"{"name": "t", "model": "\#(model)", "data": "\#(data)", "defaults": \#(defaults), "conditions": \#(conditions), "grid": \#(grid)"#
            + (sampling.map { #", "sampling": \#($0)}"# } ?? "}")
    }

    func plan(_ json: String) throws(SpecError) -> SweepPlan {
        try SweepPlan(json: Data(json.utf8), file: "spec.json", baseDirectory: directory.url)
    }

    /// The problems of an invalid spec; none when it plans.
    func problems(_ json: String) -> [SpecProblem] {
        do throws(SpecError) { _ = try plan(json); return [] } catch { return error.problems }
    }
}
