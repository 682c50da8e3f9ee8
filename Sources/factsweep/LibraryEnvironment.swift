// LibraryEnvironment: settings two libraries read once, when they are loaded —
// before `main` — so `factsweep` sets them and re-executes itself.
// - GOMP_SPINCOUNT: how long libgomp's threads spin after a parallel region
//   before they sleep. The core's loops and oneDNN's products run on one
//   libgomp team (`ComputeContext.parallelFor`), so a thread spinning between
//   them takes no core another thread needs, and skipping the wake-up made
//   training up to 26% faster (docs/benchmarks.md, "Issue 13, eleventh stop").
//   With OpenBLAS products (`FACTSWEEP_MATMUL=openblas`) OpenBLAS's own
//   threads need that core: there the count is 0, libgomp's threads sleep at
//   once (a spinning team made an OpenBLAS epoch twice as slow). The count
//   follows the f32 engine (a worker runs trials of both precisions), which
//   bf16 products share: on oneDNN, with or without bf16 kernels
//   (`MatmulEngine.currentBF16`).
// - OPENBLAS_CORETYPE, when OpenBLAS fell back to kernels older than the CPU
//   runs (`OpenBLASCore`).
// A value already in the environment stands (OMP_WAIT_POLICY too: the user's
// choice of how libgomp waits; OMP_PROC_BIND too, except that the first
// thread, which libgomp binds to one CPU as it loads, gets back every CPU of
// libgomp's places, so that the processes it starts see them all).
import Core
import Foundation

enum LibraryEnvironment {
    /// Sets what is missing and re-executes the process once; if the
    /// re-execution fails the process goes on with the libraries' defaults.
    static func ensure() {
        var added: [String] = []
        if getenv("GOMP_SPINCOUNT") == nil && getenv("OMP_WAIT_POLICY") == nil {
            let forced = getenv(MatmulEngine.environmentKey).flatMap { MatmulEngine(name: String(cString: $0)) }
            setenv("GOMP_SPINCOUNT", spinCount(engine: forced ?? .oneDNN), 1)
            added.append("GOMP_SPINCOUNT")
        }
        if getenv("OPENBLAS_CORETYPE") == nil, let core = OpenBLASCore.recommended {
            setenv("OPENBLAS_CORETYPE", core, 1)
            added.append("OPENBLAS_CORETYPE")
        }
        // A process started from this thread (the re-execution below, a
        // bench child, a sweep's workers) starts with its CPU mask: give back
        // the CPUs libgomp bound it away from as it loaded (OMP_PROC_BIND),
        // or the new libgomp would see one CPU and put every thread on it.
        // The team's other threads stay bound to their places.
        OpenMPPlaces.widenCallingThread()
        if !added.isEmpty {
            setenv(settingsKey, added.joined(separator: ","), 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
        }
    }

    /// Names the variables `ensure` added, so that other programs `factsweep`
    /// starts (the PyTorch reference of `bench`, on its own libgomp) run with
    /// their libraries' defaults, not with settings chosen for FactSweep.
    static let settingsKey = "FACTSWEEP_LIBRARY_SETTINGS"

    /// The variables `ensure` added, in this process or the `factsweep` that started it.
    private static var added: Set<String> {
        Set(ProcessInfo.processInfo.environment[settingsKey]?.split(separator: ",").map(String.init) ?? [])
    }

    /// This process's environment without what `ensure` added.
    static var environmentForOtherPrograms: [String: String] {
        let added = added
        return ProcessInfo.processInfo.environment.filter { name, _ in name != settingsKey && !added.contains(name) }
    }

    /// How this process's libgomp threads wait, as its environment says (for
    /// the bench's rows: the setting is part of what a figure was taken with).
    static var openMPWait: String {
        let environment = ProcessInfo.processInfo.environment
        let settings: [String] = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"].compactMap { name in environment[name].map { "\(name)=\($0)" } }
        return settings.isEmpty ? "libgomp's default" : settings.joined(separator: " ")
    }

    /// What a `factsweep` child whose f32 products run on `engine` needs set
    /// over this process's environment: its spin count, unless the user chose
    /// how libgomp waits (then their choice stands for every child).
    static func childSettings(engine: MatmulEngine) -> [String: String] {
        let environment = ProcessInfo.processInfo.environment, added = added
        let userChose = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"].contains { environment[$0] != nil && !added.contains($0) }
        return userChose ? [:] : ["GOMP_SPINCOUNT": spinCount(engine: engine)]
    }

    /// libgomp's spin count for a process whose f32 products run on `engine`:
    /// about 0.3 ms of spinning on oneDNN, none beside OpenBLAS's threads.
    static func spinCount(engine: MatmulEngine) -> String {
        switch engine {
        case .oneDNN: "30000"
        case .openBLAS: "0"
        }
    }
}
