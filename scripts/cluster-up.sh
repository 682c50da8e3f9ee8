#!/usr/bin/env bash
# Starts a FactSweep cluster described by cluster.json: the coordinator on this
# host, and on every host of "hosts" its workers (over ssh for remote hosts).
# Assumes the same checkout, at the same path, built with `swift build -c
# release`, on every host, and a checkpoint directory that every host can
# reach (a shared filesystem) when full fine-tuning trials move between hosts.
# With cluster.json's "security" keys (docs/security.md): keys/coordinator.key
# and the allow-list here, each worker host's own key and coordinator.pub there.
#
#   scripts/cluster-up.sh SPEC [CLUSTER_JSON]      (default CLUSTER_JSON: cluster.json)
#   scripts/cluster-down.sh [CLUSTER_JSON]
#
# Every process it starts is recorded in RUN_DIRECTORY/cluster.pids as
# "ROLE HOST PID START" (HOST: localhost for this host; START: the process's
# start time as `ps -o lstart=` prints it), so that cluster-down.sh stops
# exactly these processes and no other sweep's. $FACTSWEEP names the factsweep
# binary (default .build/release/factsweep), $FACTSWEEP_SSH the ssh command
# (default ssh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
spec="${1:?usage: scripts/cluster-up.sh SPEC [cluster.json]}"
cluster="${2:-$root/cluster.json}"
cluster="$(cd "$(dirname "$cluster")" && pwd)/$(basename "$cluster")"
bin="${FACTSWEEP:-$root/.build/release/factsweep}"
ssh="${FACTSWEEP_SSH:-ssh}"
[ -x "$bin" ] || { echo "build first: swift build -c release" >&2; exit 1; }

settings="$(python3 "$root/scripts/cluster-settings.py" "$cluster")"
{ read -r run_dir; read -r connect; } <<<"$settings"
pids="$run_dir/cluster.pids"
[ -f "$pids" ] && { echo "$pids exists: stop the running cluster first (scripts/cluster-down.sh $cluster)" >&2; exit 1; }
mkdir -p "$run_dir/logs"

is_local() { [ "$1" = localhost ] || [ "$1" = 127.0.0.1 ] || [ "$1" = "$(hostname)" ]; }
# CURVE keys (docs/security.md): the coordinator refuses a non-loopback bind without them; make them first.
while read -r file; do
    [ -z "$file" ] || [ -f "$file" ] || { echo "missing $file (cluster.json security): see 'factsweep keys --help' and docs/security.md" >&2; exit 1; }
done < <(python3 "$root/scripts/cluster-settings.py" "$cluster" --security-files)

"$bin" coordinator "$spec" --cluster "$cluster" >"$run_dir/logs/coordinator.log" 2>&1 &
echo "coordinator localhost $! $(ps -o lstart= -p $!)" >"$pids"
echo "coordinator started (log: $run_dir/logs/coordinator.log)"

while read -r host workers threads cache; do
    budget=()
    [ "$cache" = - ] || budget=(--model-cache-mib "$cache")
    for ((w = 0; w < workers; w++)); do
        name="$host-$w"
        cmd="$(printf '%q ' "$bin" worker --connect "$connect" --threads "$threads" --id "$name" --cluster "$cluster" \
            ${budget[@]+"${budget[@]}"})"
        # Prints "PID START" of the worker, which nohup execs into.
        start="cd $(printf %q "$root") && { nohup $cmd >$(printf %q "$run_dir/logs/worker-$name.log") 2>&1 </dev/null & "
        start+='pid=$!; echo "$pid $(ps -o lstart= -p $pid)"; }'
        if is_local "$host"; then
            started="$(bash -c "$start" </dev/null)"
            echo "worker localhost $started" >>"$pids"
        else
            started="$("$ssh" -o BatchMode=yes "$host" "$start" </dev/null)"
            echo "worker $host $started" >>"$pids"
        fi
        echo "worker $name started on $host (pid ${started%% *})"
    done
done < <(tail -n +3 <<<"$settings")
echo "watch it with: $bin status $run_dir"
