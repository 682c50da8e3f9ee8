// OpenMPWaitPolicy: oneDNN (Debian's build, on libgomp) runs the products of
// --precision bf16 and FACTSWEEP_MATMUL=onednn; libgomp's threads spin after
// each product by default, and on few cores they take the time our own
// threads need for the work between products (a bf16 LoRA epoch took 30 s
// instead of 5 s). libgomp reads OMP_WAIT_POLICY once, when it is loaded —
// before `main` — so `factsweep` re-executes itself with the policy set.
import Foundation

enum OpenMPWaitPolicy {
    /// Re-executes the process with OMP_WAIT_POLICY=passive unless the
    /// environment already sets a policy (the user's choice stands). If the
    /// re-execution fails the process goes on with libgomp's default.
    static func ensurePassive() {
        guard getenv("OMP_WAIT_POLICY") == nil else { return }
        setenv("OMP_WAIT_POLICY", "passive", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
