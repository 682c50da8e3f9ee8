#!/usr/bin/env bash
# How long a coordinator takes to start on a large sweep: it reads the spec,
# adds the trials to run.db (or finds them there on a restart) and checks every
# trial that may still be handed out, before it binds. The sweep is one LoRA
# condition over a grid of TRIALS seeds (simulated trials: the model file is a
# placeholder, never opened); the time is from the start of `factsweep
# coordinator` to its "listening on" line, once on an empty run directory and
# RESTARTS times on the filled one (docs/benchmarks.md, "Starting a coordinator
# on 100,000 trials").
#
# Usage: scripts/bench-coordinator-start.sh [TRIALS] [RESTARTS]   (defaults 100000, 3)
# Needs: a release build (.build/release/factsweep) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$PWD/.build/release/factsweep
trials=${1:-100000}
restarts=${2:-3}
out=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$out"' EXIT

echo "never opened" > "$out/placeholder.gguf"
python3 - "$out" "$trials" "$PWD/data/biography.jsonl" > "$out/spec.json" <<'EOF'
import json, sys
out, trials, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps({"name": "start", "model": f"{out}/placeholder.gguf", "data": data,
                  "defaults": {"epochs": 1, "eval_every": 0, "checkpoint_every": 1},
                  "conditions": [{"name": "lora", "method": "lora"}],
                  "grid": {"seed": list(range(trials))}}))
EOF

# Seconds from the coordinator's start to its "listening on" line; then it is stopped.
start_once() {
    local log="$out/coordinator.log" begin end
    begin=$(date +%s.%N)
    # A port the system picks, so that no port in use can stop the start.
    "$binary" coordinator "$out/spec.json" --bind "tcp://127.0.0.1:*" --run-dir "$out/run" > "$log" 2>&1 &
    pid=$!
    until grep -q "listening on" "$log"; do
        if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "the coordinator exited before it listened" >&2; exit 1; fi
        sleep 0.05
    done
    end=$(date +%s.%N)
    kill -INT "$pid"; wait "$pid" || true; pid=
    python3 -c "print(f'{$end - $begin:.2f}')"
}

echo "coordinator start, $trials trials ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "first start (trials inserted): $(start_once) s"
for i in $(seq "$restarts"); do echo "restart $i (trials found):     $(start_once) s"; done
