#!/usr/bin/env bash
# How the live dashboard copes with a large run: a run directory of TRIALS
# trials (two conditions over a grid of seeds, added by a real `factsweep
# coordinator`), each with EPOCHS recorded epochs written straight into run.db,
# served by `factsweep serve`; then the time and size of `/api/state` polls —
# the first, one with nothing committed since, ones after another connection
# committed, and a filtered one — and the server's resident memory
# (docs/benchmarks.md, "Live dashboard at 100,000 trials").
#
# Usage: scripts/bench-dashboard.sh [TRIALS] [EPOCHS]   (defaults 100000, 10; an odd TRIALS is made even)
# Needs: a release build (.build/release/factsweep, or FACTSWEEP_BINARY), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${FACTSWEEP_BINARY:-$PWD/.build/release/factsweep}
trials=${1:-100000}
epochs=${2:-10}
out=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$out"' EXIT

echo "never opened" > "$out/placeholder.gguf"
python3 - "$out" "$trials" "$epochs" "$PWD/data/biography.jsonl" > "$out/spec.json" <<'PY'
import json, sys
out, trials, epochs, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(json.dumps({"name": "dashboard", "model": f"{out}/placeholder.gguf", "data": data,
                  "defaults": {"epochs": epochs, "eval_every": 1, "checkpoint_every": 1},
                  "conditions": [{"name": "lora", "method": "lora"}, {"name": "ia3", "method": "ia3"}],
                  "grid": {"seed": list(range((trials + 1) // 2))}}))
PY

# The coordinator adds the trials, then stops before any worker connects.
"$binary" coordinator "$out/spec.json" --bind "tcp://127.0.0.1:*" --run-dir "$out/run" > "$out/coordinator.log" 2>&1 &
pid=$!
until grep -q "listening on" "$out/coordinator.log"; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$out/coordinator.log" >&2; exit 1; fi
    sleep 0.2
done
kill -INT "$pid"; wait "$pid" || true; pid=

# Every trial done, with EPOCHS epochs of made-up metrics, as one worker's attempts.
python3 - "$out/run/run.db" "$epochs" <<'PY'
import random, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); epochs = int(sys.argv[2]); random.seed(1)
t = "2026-12-07 00:00:00.000"
db.execute("INSERT INTO workers (id, host, pid, threads, protocol_version, connected_at, last_seen, status) "
           "VALUES ('w1', 'bench', 1, 2, 'FSW1', ?, ?, 'lost')", (t, t))
keys = [row[0] for row in db.execute("SELECT key FROM trials ORDER BY rowid")]
db.executemany("INSERT INTO attempts (attempt_id, trial_key, worker_id, started_at, ended_at, lease_expires_at, outcome) "
               "VALUES (?, ?, 'w1', ?, ?, ?, 'done')", [(i + 1, k, t, t, t) for i, k in enumerate(keys)])
db.executemany("INSERT INTO epoch_metrics (trial_key, epoch, loss, tokens, train_seconds, epoch_seconds, accuracy, recorded_at, attempt_id) "
               "VALUES (?, ?, ?, 100, ?, ?, ?, ?, ?)",
               ((k, e, 2.0 / e + random.random() * 0.1, e * 1.0, 1.2, min(1.0, e / epochs + random.random() * 0.1), t, i + 1)
                for i, k in enumerate(keys) for e in range(1, epochs + 1)))
db.execute("UPDATE trials SET status = 'done', last_epoch = epochs, epoch_high_water = epochs, attempts = 1, "
           "current_attempt_id = (SELECT attempt_id FROM attempts a WHERE a.trial_key = trials.key)")
db.commit()
PY

"$binary" serve "$out/run" --port 0 > "$out/serve.log" 2>&1 &
pid=$!
until grep -q "^dashboard: " "$out/serve.log"; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$out/serve.log" >&2; exit 1; fi
    sleep 0.2
done
url=$(sed -n 's/^dashboard: //p' "$out/serve.log")
poll() { curl -s -o /dev/null -w "%{time_total} s, %{size_download} bytes" "${url}api/state$1"; }
commit() { python3 -c "import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); d.execute(\"UPDATE workers SET last_seen = strftime('%Y-%m-%d %H:%M:%f', 'now')\"); d.commit()" "$out/run/run.db"; }

echo "live dashboard, $trials trials × $epochs epochs ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "first poll:                  $(poll "")"
echo "nothing committed since:     $(poll "")"
for i in 1 2 3; do commit; echo "after another commit ($i):    $(poll "")"; done
echo "filtered (\"ia3 done\"):       $(poll "?filter=ia3%20done")"
echo "server resident memory:      $(( $(ps -o rss= -p "$pid") / 1024 )) MiB"
