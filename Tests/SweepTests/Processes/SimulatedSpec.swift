// SimulatedSpec: a sweep spec for simulated workers — a placeholder model the
// coordinator never opens, the biography facts, one LoRA condition over seeds.
import Foundation
import TestSupport

enum SimulatedSpec {
    /// Writes `dir/spec.json`: `seeds` trials of `epochs` epochs, checkpointed every epoch.
    static func write(in dir: URL, name: String, epochs: Int, seeds: Int,
                      data: URL = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl")) throws -> URL {
        let model = dir.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let spec = dir.appendingPathComponent("spec.json")
        try """
            {"name": "\(name)", "model": "\(model.path)", "data": "\(data.path)",
             "defaults": {"epochs": \(epochs), "eval_every": 0, "checkpoint_every": 1},
             "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": \(Array(0..<seeds))}}
            """.write(to: spec, atomically: true, encoding: .utf8)
        return spec
    }
}

enum SimulatedWorkers {
    /// `count` simulated `factsweep worker` processes (ids w0, w1, …) connected to `endpoint`, checkpointing
    /// into `dir/checkpoints`, logging to `dir/worker-N.log`.
    static func start(_ count: Int, endpoint: String, in dir: URL, epochSeconds: Double) throws -> [FactSweepChild] {
        try (0..<count).map { i in
            try FactSweepChild(["worker", "--connect", endpoint, "--id", "w\(i)", "--threads", "1", "--simulate", "\(epochSeconds)",
                                "--checkpoint-dir", dir.appendingPathComponent("checkpoints").path],
                               log: dir.appendingPathComponent("worker-\(i).log"))
        }
    }
}
