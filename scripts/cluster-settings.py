#!/usr/bin/env python3
"""Prints what scripts/cluster-up.sh and cluster-down.sh need from a
cluster.json (docs/cluster.md), one value per line, by plain key access:

    run directory (absolute; a relative one resolves against cluster.json's
                   folder, as the coordinator resolves it)
    coordinator.connect
    HOST WORKERS THREADS_PER_WORKER MODEL_CACHE_MIB
                                        one line per entry of "hosts" (the
                                        cache budget "-" when not given)

With --security-files: instead, the absolute paths of the coordinator's key
and allow-list named in "security" (docs/security.md), one per line.

Exits 1 with the file and the problem when a key is missing or mistyped.
"""
import json
import os
import sys


def security_files(path):
    try:
        with open(path) as f:
            security = json.load(f).get("security", {})
        folder = os.path.dirname(os.path.abspath(path))
        for key in ("coordinator_key", "allow_list"):
            if security.get(key):
                print(os.path.normpath(os.path.join(folder, security[key])))
    except (OSError, ValueError, AttributeError, TypeError) as error:
        sys.exit(f"{path}: security: {error} (see docs/security.md)")


def main(path):
    try:
        with open(path) as f:
            cluster = json.load(f)
        run_directory = cluster["run_directory"]
        lines = [os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), run_directory)),
                 cluster["coordinator"]["connect"]]
        for host in cluster["hosts"]:
            name, workers, threads = host["host"], host["workers"], host.get("threads_per_worker")
            # null is absent, as for model_cache_mib and as the coordinator reads both.
            threads = 1 if threads is None else threads
            if not isinstance(name, str) or not name or any(c.isspace() for c in name):
                raise ValueError(f"host {name!r} is not a host name")
            if (not isinstance(workers, int) or isinstance(workers, bool) or workers < 0
                    or not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
                raise ValueError(f"host {name}: workers must be an integer ≥ 0 and threads_per_worker ≥ 1")
            cache = host.get("model_cache_mib")
            if cache is not None and (not isinstance(cache, int) or isinstance(cache, bool) or cache < 0):
                raise ValueError(f"host {name}: model_cache_mib must be an integer ≥ 0")
            lines.append(f"{name} {workers} {threads} {'-' if cache is None else cache}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        sys.exit(f"{path}: {problem} (see docs/cluster.md)")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[2:] == ["--security-files"]:
        security_files(sys.argv[1])
    else:
        main(sys.argv[1])
