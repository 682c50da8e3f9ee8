// OpenMPPlaces: the CPUs libgomp binds threads to, handed back to `factsweep`'s
// first thread before it starts any process (see CKernels' affinity.h).
import CKernels

public enum OpenMPPlaces {
    /// When OMP_PROC_BIND has libgomp bind threads, sets the calling thread's
    /// CPU mask to the union of libgomp's places and returns how many CPUs
    /// that is (0 when libgomp binds nothing, -1 when the kernel refused).
    /// libgomp bound the process's first thread to its first place when it
    /// loaded, and a process started from that thread (execv, posix_spawn)
    /// inherits its mask: its libgomp built its places from one CPU and ran
    /// every thread on it, every epoch on one core (docs/benchmarks.md,
    /// "Issue 13, twenty-fifth stop").
    @discardableResult
    public static func widenCallingThread() -> Int { Int(factsweep_widen_to_openmp_places()) }
}
