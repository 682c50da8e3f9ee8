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
import unicodedata


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


MAX_THREADS = 4096


def whole(value, least, most=2**63 - 1):
    """value as an int when it is a JSON number with a whole value from least to most (2^63 − 1 unless
    told), else None: the coordinator's JSON decoder reads 2.0 as 2 and refuses 2.5, true and 2^63, and
    the two readers of cluster.json must take the same files."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    value = int(value)
    return value if least <= value <= most else None


def main(path):
    try:
        with open(path) as f:
            cluster = json.load(f)
        run_directory = cluster["run_directory"]
        lines = [os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), run_directory)),
                 cluster["coordinator"]["connect"]]
        for host in cluster["hosts"]:
            name = host["host"]
            # null is absent, as for model_cache_mib and as the coordinator reads both.
            workers = whole(host["workers"], 0)
            # At most MAX_THREADS, as a worker's hello may declare (Message.maxThreads).
            threads = whole(1 if host.get("threads_per_worker") is None else host["threads_per_worker"], 1, MAX_THREADS)
            if not isinstance(name, str) or not name or any(c.isspace() or unicodedata.category(c) == "Cc" for c in name):
                raise ValueError(f"host {name!r} is not a host name")
            if workers is None or threads is None:
                raise ValueError(f"host {name}: workers must be an integer ≥ 0 and threads_per_worker from 1 to {MAX_THREADS}")
            cache = None if host.get("model_cache_mib") is None else whole(host["model_cache_mib"], 0)
            if host.get("model_cache_mib") is not None and cache is None:
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
