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
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
spec="${1:?usage: scripts/cluster-up.sh SPEC [cluster.json]}"
cluster="${2:-$root/cluster.json}"
bin="$root/.build/release/factsweep"
[ -x "$bin" ] || { echo "build first: swift build -c release" >&2; exit 1; }

field() { python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'c': c}))" "$cluster" "$1"; }
run_dir="$(field 'c["run_directory"]')"
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
mkdir -p "$run_dir/logs"
connect="$(field 'c["coordinator"]["connect"]')"
# CURVE keys (docs/security.md): the coordinator refuses a non-loopback bind without them; make them first.
for k in coordinator_key allow_list; do
    file="$(field "c.get('security', {}).get('$k', '')")"
    [ -n "$file" ] || continue
    case "$file" in /*) ;; *) file="$(cd "$(dirname "$cluster")" && pwd)/$file" ;; esac
    [ -f "$file" ] || { echo "missing $file (security.$k): see 'factsweep keys --help' and docs/security.md" >&2; exit 1; }
done

"$bin" coordinator "$spec" --cluster "$cluster" >"$run_dir/logs/coordinator.log" 2>&1 &
echo "coordinator $!" >"$run_dir/cluster.pids"
echo "coordinator started (log: $run_dir/logs/coordinator.log)"

count="$(field 'len(c["hosts"])')"
for ((i = 0; i < count; i++)); do
    host="$(field "c['hosts'][$i]['host']")"
    workers="$(field "c['hosts'][$i]['workers']")"
    threads="$(field "c['hosts'][$i].get('threads_per_worker', 1)")"
    for ((w = 0; w < workers; w++)); do
        name="$host-$w"
        cmd="'$bin' worker --connect '$connect' --threads $threads --id '$name' --cluster '$cluster'"
        if [ "$host" = localhost ] || [ "$host" = 127.0.0.1 ] || [ "$host" = "$(hostname)" ]; then
            bash -c "$cmd" >"$run_dir/logs/worker-$name.log" 2>&1 &
            echo "worker $!" >>"$run_dir/cluster.pids"
        else
            ssh -o BatchMode=yes "$host" "cd '$root' && nohup $cmd >'$run_dir/logs/worker-$name.log' 2>&1 </dev/null &"
            echo "remote $host" >>"$run_dir/cluster.pids"
        fi
        echo "worker $name started on $host"
    done
done
echo "watch it with: $bin status $run_dir"
