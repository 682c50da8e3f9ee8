#!/usr/bin/env bash
# Stopping rules against the full grid, in one run: examples/beyond-the-paper.json
# (45 trials × 60 epochs), examples/beyond-the-paper-median.json and
# examples/beyond-the-paper-asha.json (the same trials under the median and the
# asha rule on the loss) on simulated workers, then, side by side, the
# trial-epochs each trained and the best learning rate per condition (lowest
# mean final loss over its trials that ran to the end).
#
# With --real, the grid and the asha rule train for real on a subset of the same
# sweep: its lora-r8 and ia3 conditions (7 learning rates), seed 0, the first
# person of data/synthetic-4-people.jsonl (6 facts), 15 epochs evaluated and
# checkpointed every 5 (asha's grace period: its rungs are at 5 and 15). The
# wall time of each run is printed beside its trial-epochs.
#
# Usage: scripts/bench-stopping.sh [SECONDS_PER_EPOCH] [WORKERS]   (defaults 0.01, 4)
#        scripts/bench-stopping.sh --real [WORKERS]                (default 2, one thread each)
# Needs: a release build (.build/release/factsweep), sqlite3 and, for --real, jq
# and the models (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=.build/release/factsweep
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "${1:-}" = --real ]; then
    workers=${2:-2}
    runs=(grid asha)
    head -n 6 data/synthetic-4-people.jsonl > "$out/first-person.jsonl"
    subset='.data = $data | .model = $model
        | .conditions |= map(select(.name == "lora-r8" or .name == "ia3"))
        | .grid.seed = [0]
        | .defaults += {"epochs": 15, "eval_every": 5, "checkpoint_every": 5}
        | if .stopping then .stopping.grace_epochs = 5 else . end'
    for run in grid asha; do
        spec=examples/beyond-the-paper.json
        [ "$run" != grid ] && spec=examples/beyond-the-paper-$run.json
        jq --arg data "$out/first-person.jsonl" --arg model "$PWD/models/smollm2-135m-instruct" "$subset" "$spec" > "$out/$run.json"
        echo "$out/$run.json" > "$out/$run.spec"
    done
    options=(--workers "$workers" --threads-per-worker 1)
else
    epoch_seconds=${1:-0.01}
    workers=${2:-4}
    runs=(grid median asha)
    for run in grid median asha; do
        spec=examples/beyond-the-paper.json
        [ "$run" != grid ] && spec=examples/beyond-the-paper-$run.json
        echo "$spec" > "$out/$run.spec"
    done
    options=(--workers "$workers" --threads-per-worker 1 --simulate "$epoch_seconds" --heartbeat 0.2)
fi

for run in "${runs[@]}"; do
    echo "running the $run sweep…" >&2
    start=$(date +%s)
    "$binary" run "$(cat "$out/$run.spec")" "${options[@]}" --run-dir "$out/$run" > "$out/$run.log" 2>&1 || { cat "$out/$run.log"; exit 1; }
    echo $(( $(date +%s) - start )) > "$out/$run.seconds"
done

best_lr="WITH f AS (SELECT t.condition AS c, t.lr AS lr, AVG(e.loss) AS loss, COUNT(*) AS n
                   FROM trials t JOIN epoch_metrics e ON e.trial_key = t.key AND e.epoch = t.epochs
                   WHERE t.status = 'done' GROUP BY t.condition, t.lr)
         SELECT c, GROUP_CONCAT(lr, ' = ') FROM f f1
         WHERE loss = (SELECT MIN(loss) FROM f f2 WHERE f2.c = f1.c) GROUP BY c ORDER BY c"
title() { case "$1" in grid) echo "full grid";; *) echo "$1 rule";; esac; }
row() {  # row LABEL QUERY: the query's answer in each run's database
    local line="| $1 |"
    for run in "${runs[@]}"; do line+=" $(sqlite3 "$out/$run/run.db" "$2") |"; done
    echo "$line"
}
header="| |"; rule="|---|"
for run in "${runs[@]}"; do header+=" $(title "$run") |"; rule+="---|"; done
echo "$header"; echo "$rule"
row "trials" "SELECT COUNT(*) FROM trials"
row "trial-epochs trained" "SELECT SUM(last_epoch) FROM trials"
row "trials done" "SELECT COUNT(*) FROM trials WHERE status = 'done'"
row "trials stopped" "SELECT COUNT(*) FROM trials WHERE status = 'stopped'"
row "attempts resumed from a checkpoint" "SELECT COUNT(*) FROM attempts WHERE resumed_from_epoch > 0"
line="| wall time (s) |"
for run in "${runs[@]}"; do line+=" $(cat "$out/$run.seconds") |"; done
echo "$line"
while IFS='|' read -r condition lr; do
    line="| best lr, $condition | $lr |"
    for run in "${runs[@]:1}"; do
        line+=" $(sqlite3 "$out/$run/run.db" "$best_lr" | awk -F'|' -v c="$condition" '$1 == c { print $2 }') |"
    done
    echo "$line"
done < <(sqlite3 "$out/grid/run.db" "$best_lr")
