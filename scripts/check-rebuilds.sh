#!/usr/bin/env bash
# CI, after the test command: the README's two commands do not rebuild each
# other. Runs the test command's build, then the study's (either may compile
# here, e.g. the study's first build), then each once more: neither may
# compile or link anything now, since no source changed in between. Otherwise
# exits 1, naming the build and what it compiled. SwiftPM prints a "Compiling
# plugin" line for its plugin tools (swift-argument-parser's) on every build,
# even one that does nothing; those lines are not counted.
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
    compiled=$(grep -E '^\[[0-9]+/[0-9]+\] (Compiling|Linking) ' "$log" | grep -v '\] Compiling plugin ' || true)
}

echo "check-rebuilds: the test command's build, then the study's (they may compile here)"
run_build scripts/test.sh --build-only
run_build scripts/study.sh --build-only
failed=0
for build in "scripts/test.sh --build-only" "scripts/study.sh --build-only"; do
    run_build $build
    if [ -n "$compiled" ]; then
        echo "check-rebuilds: '$build' run again compiled or linked $(wc -l <<<"$compiled") times; no source changed, so it should be none:" >&2
        head -20 <<<"$compiled" >&2
        failed=1
    else
        echo "check-rebuilds: '$build' run again compiled nothing"
    fi
done
exit "$failed"
