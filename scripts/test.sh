#!/usr/bin/env bash
# The test command: set-up (system packages, models), then every test in a
# release build. Numeric tests are unusably slow unoptimised (a SmolLM2 forward
# pass takes seconds in debug), so tests build with -c release and
# -enable-testing so that @testable imports still work.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
swift build -c release --build-tests -Xswiftc -enable-testing
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
