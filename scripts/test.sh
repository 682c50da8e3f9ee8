#!/usr/bin/env bash
# The test command: set-up (system packages, models), then every test in a
# release build. Numeric tests are unusably slow unoptimised (a SmolLM2 forward
# pass takes seconds in debug), so tests build with -c release and
# -enable-testing so that @testable imports still work.
#
# That build differs from scripts/study.sh's (no -enable-testing), so it has
# its own scratch path, .build-tests: sharing .build, each command would
# recompile everything the other had just built.
#
#   scripts/test.sh [swift test arguments, e.g. --filter SUITE]
#   scripts/test.sh --build-only      the build step alone (no set-up, no tests)
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=.build-tests
# The import check makes Package.swift the module graph: a target that imports
# a module it does not declare (the coordinator importing Core) fails to build.
build() {
    swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path "$scratch" \
        --explicit-target-dependency-import-check error
}
if [[ ${1:-} == --build-only ]]; then
    build
    exit
fi
# Each phase's end is stamped, and the test output is line-buffered (stdbuf,
# inherited by the test process): a log cut short — a CI timeout — then shows
# which phase took the time and which test was running, not a stale buffer.
stamp() { echo "test.sh: $1 at $(date -u +%H:%M:%S) UTC, ${SECONDS} s since the start"; }
scripts/setup.sh --tests
stamp "set-up done"
build
stamp "build done"
# The test process runs many tests at once, each calling thread with a
# libgomp team of its own: their threads sleep after each region rather than
# spin against each other (libgomp reads this when it loads, so it is set
# here; the `factsweep` processes the tests start inherit it). Speed is the
# benchmarks' business, with `factsweep`'s own setting (LibraryEnvironment).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
status=0
stdbuf -oL -eL swift test -c release -Xswiftc -enable-testing --scratch-path "$scratch" --skip-build "$@" || status=$?
stamp "tests done (exit $status)"
# A second pass over the core's tests as an AVX2-only host runs them: every
# machine here has AVX-512, so without it the code such a host runs (oneDNN's
# AVX2 matmul with its plain-row copies and column split, bf16 on f32
# kernels, the kernels' AVX2 paths, OpenBLAS's Haswell kernels) would go
# untested. FACTSWEEP_MAX_CPU_ISA=avx2 holds the kernels and oneDNN to AVX2
# (cpu.h). Skipped here, run in the pass above: the suites and tests whose
# subject exists only from AVX-512 on (bf16 kernels, blocked f32 copies and
# the plain rows they release). Only on a full run.
if [[ $# -eq 0 ]]; then
    avx512_only='decodingProductsReadTheCopy|everyRowCountReadsTheTrainingCopy|eachDirectionKeepsItsSlot'
    avx512_only+='|PlainRowsReleaseTests|perThreadBlockedProductsEqualTheSharedOnes'
    avx512_only+='|aFailedThreadsPanelsAreMultipliedOnTheCallingThread|theProfileTimesTheWidestShare'
    FACTSWEEP_MAX_CPU_ISA=avx2 OPENBLAS_CORETYPE=Haswell stdbuf -oL -eL swift test -c release -Xswiftc -enable-testing \
        --scratch-path "$scratch" --skip-build --filter 'CoreTests\.' --skip "$avx512_only" || status=$?
    stamp "AVX2 pass done (exit $status)"
fi
exit "$status"
