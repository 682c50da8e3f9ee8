#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started: workers get SIGTERM (they
# checkpoint and release their trials), then the coordinator.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cluster="${1:-$root/cluster.json}"
run_dir="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['run_directory'])" "$cluster")"
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
pids="$run_dir/cluster.pids"
[ -f "$pids" ] || { echo "no $pids: nothing started from here" >&2; exit 0; }
connect="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['coordinator']['connect'])" "$cluster")"
while read -r kind what; do
    case "$kind" in
        worker) kill -TERM "$what" 2>/dev/null || true ;;
        remote) ssh -o BatchMode=yes "$what" "pkill -TERM -f 'factsweep worker --connect $connect'" || true ;;
    esac
done <"$pids"
sleep 5
while read -r kind what; do
    [ "$kind" = coordinator ] && kill -TERM "$what" 2>/dev/null || true
done <"$pids"
rm -f "$pids"
echo "cluster stopped"
