#!/usr/bin/env bash
# Stops what scripts/cluster-up.sh started, and nothing else: the processes
# recorded in RUN_DIRECTORY/cluster.pids, each only while the pid still names
# the process that was started (same start time). Workers get SIGTERM first
# (they checkpoint and release their trials), then the coordinator.
# $FACTSWEEP_SSH names the ssh command (default ssh).
#
#   scripts/cluster-down.sh [CLUSTER_JSON]      (default: cluster.json)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cluster="${1:-$root/cluster.json}"
ssh="${FACTSWEEP_SSH:-ssh}"
settings="$(python3 "$root/scripts/cluster-settings.py" "$cluster")"
run_dir="${settings%%$'\n'*}"
pids="$run_dir/cluster.pids"
[ -f "$pids" ] || { echo "no $pids: nothing started from here" >&2; exit 0; }

# Sends SIGTERM to PID on HOST if it is still the process started at START.
stop() {
    local role=$1 host=$2 pid=$3 start=$4
    [ -n "$start" ] || { echo "$role pid $pid on $host had exited when it was started"; return; }
    local command="[ \"\$(ps -o lstart= -p $pid)\" = $(printf %q "$start") ] && kill -TERM $pid"
    if [ "$host" = localhost ]; then
        bash -c "$command" </dev/null && return
    else
        "$ssh" -o BatchMode=yes "$host" "$command" </dev/null && return
    fi
    echo "$role pid $pid on $host had already exited"
}

# Workers first, so that they can still report to the coordinator as they stop.
for stopping in worker coordinator; do
    while read -r role host pid start; do
        if [ "$role" = "$stopping" ]; then stop "$role" "$host" "$pid" "$start"; fi
    done <"$pids"
    if [ "$stopping" = worker ]; then sleep 5; fi
done
rm -f "$pids"
echo "cluster stopped"
