#!/usr/bin/env bash
# libFuzzer on the protocol's decoder (Message.decode): builds swift-log, Trial
# and Protocol with coverage instrumentation (swiftc -sanitize=fuzzer,address,
# the toolchain's libclang_rt.fuzzer), then runs the target for RUNS executions
# over a seed corpus of every message type, encoded (scripts/fuzz/seeds.swift).
# A crash leaves crash-* in the work directory and fails this script.
#
#   scripts/fuzz/protocol-decode.sh [RUNS]    (default 20000: CI; 5000000 for a long run)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-20000}"
work="${FUZZ_DIR:-$root/.build-fuzz}"
mkdir -p "$work/corpus"
flags=(-O -parse-as-library -package-name factsweep-fuzz -sanitize=fuzzer,address -I "$work" -I "$root/Sources/CZMQ")
# swift-log from either build's checkouts (scripts/test.sh builds in .build-tests).
log=""
for scratch in .build .build-tests; do
    [ -d "$root/$scratch/checkouts/swift-log/Sources/Logging" ] && log="$root/$scratch/checkouts/swift-log/Sources/Logging" && break
done
[ -n "$log" ] || { echo "swift-log is not checked out: run swift build first" >&2; exit 1; }
module() {  # NAME SOURCES…
    local name="$1"; shift
    swiftc "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$work/$name.swiftmodule" \
        -emit-library -static -o "$work/lib$name.a" "$@"
}
# Rebuilt only when a source is newer than the binary.
if [ ! -x "$work/protocol-decode" ] || [ -n "$(find "$root/Sources/Trial" "$root/Sources/Protocol" \
        "$root/scripts/fuzz/ProtocolDecodeTarget.swift" -newer "$work/protocol-decode" -name '*.swift' | head -1)" ]; then
    module Logging $(find "$log" -name '*.swift')
    module Trial $(find "$root/Sources/Trial" -name '*.swift')
    module Protocol $(find "$root/Sources/Protocol" -name '*.swift')
    swiftc "${flags[@]}" "$root/scripts/fuzz/ProtocolDecodeTarget.swift" -L "$work" -lProtocol -lTrial -lLogging -lzmq \
        -o "$work/protocol-decode" 2> >(grep -v "Cannot export local symbol" >&2)
fi
"$work/protocol-decode" -write_seeds="$work/corpus" -runs=0 >/dev/null 2>&1 || true
cd "$work"
"$work/protocol-decode" -runs="$runs" -max_len=4096 -print_final_stats=1 "$work/corpus"
