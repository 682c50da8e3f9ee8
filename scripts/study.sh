#!/usr/bin/env bash
# The main job: set-up, release build, then a short full fine-tuning run of the
# embedded default model (SmolLM2-135M-Instruct) on data/biography.jsonl.
# Extra arguments go to `factsweep train` (e.g. --epochs 10 --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
exec .build/release/factsweep train --method full --epochs 5 "$@"
