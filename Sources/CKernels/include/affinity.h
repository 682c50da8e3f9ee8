// affinity.h: undoing libgomp's binding of the initial thread before
// `factsweep` starts any process. With OMP_PROC_BIND set, libgomp binds the
// process's first thread to its first place when it loads; a process started
// from that thread (execv, posix_spawn) inherits that mask, and its libgomp
// then built its places from one CPU and put every thread on it
// (docs/benchmarks.md, "Issue 13, twenty-fifth stop").
#ifndef FACTSWEEP_AFFINITY_H
#define FACTSWEEP_AFFINITY_H

/// When libgomp binds threads (OMP_PROC_BIND), sets the calling thread's CPU
/// mask to the union of libgomp's places (the CPUs the process started
/// with, or those OMP_PLACES names) and returns how many CPUs that is; 0 when
/// libgomp binds nothing, -1 when the kernel refused the mask.
int factsweep_widen_to_openmp_places(void);

#endif
