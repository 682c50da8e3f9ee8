#!/usr/bin/env bash
# The main job: reproduce the study "Simple Fact Learning by SLMs" on the
# embedded default model — set-up, release build, the sweep
# examples/paper-quick.json (all five conditions) with 2 local workers, then
# the report. Arguments: an optional spec (default examples/paper-quick.json);
# FACTSWEEP_WORKERS overrides the number of workers.
#
# The build is the plain `swift build -c release` in .build (the test command
# builds in .build-tests), so re-running a finished study rebuilds nothing.
#
#   scripts/study.sh [SPEC]
#   scripts/study.sh --build-only     the build step alone (no set-up, no sweep)
set -euo pipefail
cd "$(dirname "$0")/.."
build() { swift build -c release; }
if [[ ${1:-} == --build-only ]]; then
    build
    exit
fi
spec="${1:-examples/paper-quick.json}"
scripts/setup.sh
build
name="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$spec")"
run_dir="runs/$name"
.build/release/factsweep run "$spec" --workers "${FACTSWEEP_WORKERS:-2}" --run-dir "$run_dir"
.build/release/factsweep report "$run_dir" --out "$run_dir/report"
echo
echo "report: $run_dir/report/report.html (and report.md, metrics.csv); results database: $run_dir/run.db"
