#!/usr/bin/env bash
# CI, after the test command: the README's two commands do not rebuild each
# other. Runs the test command's build, then the study's (either may compile
# here, e.g. the study's first build), then each once more: neither may
# compile or link anything now, since no source changed in between. Otherwise
# exits 1, naming the build and what it compiled. SwiftPM prints a "Compiling
# plugin" line for its plugin tools (swift-argument-parser's) on every build,
# even one that does nothing; those lines are not counted.
#
# Only the project's own modules (Sources/*) and its links count. A mismatch
# between the two commands' flags rebuilds those, so the check still catches
# it. Dependency modules are reported but not counted: SwiftPM was seen to
# recompile Hummingbird's two modules on a no-op build for some minutes after a
# fresh checkout, in either build directory and with no source changed
# (2026-12-01: twice in a row, then never again), which no project change can
# cause or fix.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp); trap 'rm -f "$log"' EXIT
# Runs a build step; sets $compiled to the compile and link steps it printed.
run_build() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "check-rebuilds: '$*' failed" >&2
        exit 1
    fi
    local steps
    steps=$(grep -E '^\[[0-9]+/[0-9]+\] (Compiling|Linking) ' "$log" | grep -v '\] Compiling plugin ' || true)
    compiled=$(grep -E "^\[[0-9]+/[0-9]+\] (Linking |Compiling ($own_modules) )" <<<"$steps" || true)
    dependencies=$(grep -vE "^\[[0-9]+/[0-9]+\] (Linking |Compiling ($own_modules) )" <<<"$steps" || true)
}
# The project's modules: a directory per target under Sources and Tests, and
# the test runner SwiftPM generates.
own_modules=$({ find Sources Tests -mindepth 1 -maxdepth 1 -type d -printf '%f\n'; echo FactSweepPackageDiscoveredTests; } | sort | paste -sd '|')

echo "check-rebuilds: the test command's build, then the study's (they may compile here)"
run_build scripts/test.sh --build-only
run_build scripts/study.sh --build-only
failed=0
for build in "scripts/test.sh --build-only" "scripts/study.sh --build-only"; do
    run_build $build
    if [ -n "$dependencies" ]; then
        echo "check-rebuilds: '$build' run again recompiled dependency modules (not counted, see the top of this script):" >&2
        head -5 <<<"$dependencies" >&2
    fi
    if [ -n "$compiled" ]; then
        echo "check-rebuilds: '$build' run again compiled or linked $(wc -l <<<"$compiled") times; no source changed, so it should be none:" >&2
        head -20 <<<"$compiled" >&2
        failed=1
    else
        echo "check-rebuilds: '$build' run again compiled nothing"
    fi
done
exit "$failed"
