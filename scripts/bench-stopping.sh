#!/usr/bin/env bash
# Stopping rules against the full grid, in one run: examples/beyond-the-paper.json
# (45 trials × 60 epochs), examples/beyond-the-paper-median.json and
# examples/beyond-the-paper-asha.json (the same trials under the median and the
# asha rule on the loss) on simulated workers, then, side by side, the
# trial-epochs each trained and the best learning rate per condition (lowest
# mean final loss over its trials that ran to the end).
#
# Usage: scripts/bench-stopping.sh [SECONDS_PER_EPOCH] [WORKERS]   (defaults 0.01, 4)
# Needs: a release build (.build/release/factsweep) and sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
epoch_seconds=${1:-0.01}
workers=${2:-4}
binary=.build/release/factsweep
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for run in grid median asha; do
    spec=examples/beyond-the-paper.json
    [ "$run" != grid ] && spec=examples/beyond-the-paper-$run.json
    "$binary" run "$spec" --workers "$workers" --threads-per-worker 1 --simulate "$epoch_seconds" --heartbeat 0.2 \
        --run-dir "$out/$run" > "$out/$run.log" 2>&1 || { cat "$out/$run.log"; exit 1; }
done

best_lr="WITH f AS (SELECT t.condition AS c, t.lr AS lr, AVG(e.loss) AS loss, COUNT(*) AS n
                   FROM trials t JOIN epoch_metrics e ON e.trial_key = t.key AND e.epoch = t.epochs
                   WHERE t.status = 'done' GROUP BY t.condition, t.lr)
         SELECT c, GROUP_CONCAT(lr, ' = ') FROM f f1
         WHERE loss = (SELECT MIN(loss) FROM f f2 WHERE f2.c = f1.c) GROUP BY c ORDER BY c"
echo "| | full grid | median rule | asha rule |"
echo "|---|---|---|---|"
for query in "SELECT COUNT(*) FROM trials" \
             "SELECT SUM(last_epoch) FROM trials" \
             "SELECT COUNT(*) FROM trials WHERE status = 'done'" \
             "SELECT COUNT(*) FROM trials WHERE status = 'stopped'" \
             "SELECT COUNT(*) FROM attempts WHERE resumed_from_epoch > 0"; do
    label=$(case "$query" in
        *last_epoch*) echo "trial-epochs trained";; *done*) echo "trials done";; *stopped*) echo "trials stopped";;
        *resumed*) echo "attempts resumed from a checkpoint";; *) echo "trials";; esac)
    echo "| $label | $(sqlite3 "$out/grid/run.db" "$query") | $(sqlite3 "$out/median/run.db" "$query") | $(sqlite3 "$out/asha/run.db" "$query") |"
done
while IFS='|' read -r condition lr; do
    median_lr=$(sqlite3 "$out/median/run.db" "$best_lr" | awk -F'|' -v c="$condition" '$1 == c { print $2 }')
    asha_lr=$(sqlite3 "$out/asha/run.db" "$best_lr" | awk -F'|' -v c="$condition" '$1 == c { print $2 }')
    echo "| best lr, $condition | $lr | $median_lr | $asha_lr |"
done < <(sqlite3 "$out/grid/run.db" "$best_lr")
