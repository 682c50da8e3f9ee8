// Options shared by several commands: the model to load; simulated trials;
// the protocol's heartbeat and lease.
import ArgumentParser
import Core
import Foundation
import Protocol
import Trial
import Worker

/// Refuses a thread count outside what a worker's hello may declare (`Message.threadCounts`), naming the option.
func checkThreadCount(_ value: Int, _ option: String) throws {
    guard Message.threadCounts.contains(value) else { throw ValidationError("\(option) must be 1 to \(Message.maxThreads)") }
}

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A GGUF file or a Hugging Face model directory (default: the embedded SmolLM2-135M-Instruct).")
    var model: String?

    @Option(name: .long, help: "Threads for BLAS and the other ops (workers on one host split the cores).")
    var threads: Int = Message.threads(fromCores: ProcessInfo.processInfo.activeProcessorCount)

    func validate() throws {
        try checkThreadCount(threads, "--threads")
    }

    var modelURL: URL {
        get throws { try DefaultPaths.resolve(model, default: DefaultPaths.model, what: "model") }
    }

    func loadModel(storage: LinearStorage = .float32) throws -> LanguageModel {
        try LanguageModel.load(modelURL, storage: storage, context: ComputeContext(threads: threads))
    }
}

/// `--simulate SECONDS`: workers run simulated trials (SimulatedTrainer) instead of training, for benchmarks.
struct SimulationOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Simulate trials: each epoch sleeps SECONDS and reports synthetic metrics; no model is loaded (benchmarks).",
        valueName: "seconds"))
    var simulate: Double?

    @Option(name: .long, help: ArgumentHelp(
        "With --simulate: each evaluation sleeps SECONDS more (a slow evaluation; tests and benchmarks).", valueName: "seconds"))
    var simulateEvaluation: Double = 0

    @Option(name: .long, help: ArgumentHelp(
        "With --simulate: the training loop hangs for good at epoch N (a stuck trainer; tests and benchmarks).", valueName: "epoch"))
    var simulateStallEpoch: Int?

    func validate() throws {
        if let simulate { guard simulate >= 0, simulate.isFinite else { throw ValidationError("--simulate takes seconds ≥ 0") } }
        guard simulateEvaluation >= 0, simulateEvaluation.isFinite else { throw ValidationError("--simulate-evaluation takes seconds ≥ 0") }
        if let simulateStallEpoch { guard simulateStallEpoch >= 1 else { throw ValidationError("--simulate-stall-epoch must be at least 1") } }
        if simulate == nil, simulateEvaluation > 0 || simulateStallEpoch != nil {
            throw ValidationError("--simulate-evaluation and --simulate-stall-epoch need --simulate")
        }
    }

    /// The simulated trainer these options ask for; nil without `--simulate`.
    var trainer: SimulatedTrainer? {
        simulate.map { SimulatedTrainer(epochSeconds: $0, evaluationSeconds: simulateEvaluation, stallEpoch: simulateStallEpoch) }
    }

    /// The same options for a worker process started by this one.
    var workerArguments: [String] {
        guard let simulate else { return [] }
        return ["--simulate", "\(simulate)", "--simulate-evaluation", "\(simulateEvaluation)"]
            + (simulateStallEpoch.map { ["--simulate-stall-epoch", "\($0)"] } ?? [])
    }
}

/// `--heartbeat` and `--lease`: the timing of a sweep started by `run` or `slurm`.
struct TimingOptions: ParsableArguments {
    @Option(name: .long, help: "Heartbeat interval in seconds.")
    var heartbeat: Double = 1

    @Option(name: .long, help: "Seconds a running trial may go without progress before it is requeued.")
    var lease: Double = 120

    @Option(name: .long, help: "Seconds before a trial's next attempt after one that counted against its retry limit (doubling per counted attempt).")
    var retryBackoff: Double = 5

    func validate() throws {
        guard heartbeat > 0, lease > heartbeat else { throw ValidationError("--lease must exceed --heartbeat, both positive") }
        guard retryBackoff > 0 else { throw ValidationError("--retry-backoff must be positive") }
    }

    /// The default timing with this heartbeat interval and lease.
    var timing: ProtocolTiming {
        var timing = ProtocolTiming()
        timing.heartbeatInterval = .milliseconds(Int64(heartbeat * 1000))
        timing.leaseExpiry = .milliseconds(Int64(lease * 1000))
        timing.retryBackoffInitial = .milliseconds(Int64(retryBackoff * 1000))
        return timing
    }
}

/// The worker's model cache budget, for `worker` and for the workers `run` and `slurm` start.
struct ModelCacheOptions: ParsableArguments {
    @Option(name: .long, help: "MiB, per worker, of models no trial holds that stay loaded for later trials; the least recently used go first (default: a sixth of each worker's memory limit — its cgroup's or Slurm job's, else the host's — times its share of the cores).")
    var modelCacheMib: Int?

    func validate() throws {
        if let modelCacheMib { guard modelCacheMib >= 0 else { throw ValidationError("--model-cache-mib must be 0 or more") } }
    }

    /// The budget in bytes and where it comes from, for a worker training on `threads` threads.
    func budget(threads: Int) -> (bytes: Int, source: String) {
        modelCacheMib.map { (min($0, Int.max >> 20) << 20, "--model-cache-mib") } ?? ModelCache.defaultIdleBudget(threads: threads)
    }

    /// The same option for a worker process started by this one; none when not given, so that each
    /// worker takes the default from its own limits.
    var workerArguments: [String] { modelCacheMib.map { ["--model-cache-mib", "\($0)"] } ?? [] }
}
