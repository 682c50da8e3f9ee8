// LibraryEnvironment: settings two libraries read once, when they are loaded —
// before `main` — so `factsweep` sets them and re-executes itself.
// - OMP_WAIT_POLICY=passive: oneDNN (Debian's build, on libgomp) runs the
//   products of --precision bf16 and FACTSWEEP_MATMUL=onednn; libgomp's
//   threads spin after each product by default, and on few cores they take
//   the time our own threads need for the work between products (a bf16 LoRA
//   epoch took 30 s instead of 5 s).
// - OPENBLAS_CORETYPE, when OpenBLAS fell back to kernels older than the CPU
//   runs (`OpenBLASCore`).
// A value already in the environment stands: the user's choice.
import Core
import Foundation

enum LibraryEnvironment {
    /// Sets what is missing and re-executes the process once; if the
    /// re-execution fails the process goes on with the libraries' defaults.
    static func ensure() {
        var changed = false
        if getenv("OMP_WAIT_POLICY") == nil {
            setenv("OMP_WAIT_POLICY", "passive", 1)
            changed = true
        }
        if getenv("OPENBLAS_CORETYPE") == nil, let core = OpenBLASCore.recommended {
            setenv("OPENBLAS_CORETYPE", core, 1)
            changed = true
        }
        if changed { execv("/proc/self/exe", CommandLine.unsafeArgv) }
    }
}
