#!/usr/bin/env bash
# libFuzzer on the readers of files a user or a peer hands FactSweep: the sweep
# spec (Coordinator/Spec), the dataset JSONL, the GGUF header, the safetensors
# header and tokenizer.json (Core). Builds Trial, Core and the spec reader with
# coverage instrumentation (swiftc -sanitize=fuzzer,address, the toolchain's
# libclang_rt.fuzzer), then runs each target for RUNS executions over a seed
# corpus taken from the tests' fixtures (examples/, data/, Tests/CoreTests/Golden).
# Prints each target's final statistics (executions, coverage); a crash leaves
# crash-* in the target's work directory and fails this script. Leak detection
# is off (also at exit): LeakSanitizer reports swift-foundation's own leak of a 4 kB buffer in
# Data(contentsOf:) of an empty file, which is not a reader's fault.
#
#   scripts/fuzz/decoders.sh [RUNS] [TARGET…]   (default 2000 each: CI; 200000 for a long run)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-2000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec dataset gguf safetensors tokenizer)
work="${FUZZ_DIR:-$root/.build-fuzz}/decoders"
mkdir -p "$work"
command -v swiftc >/dev/null || { echo "swiftc is not installed: the fuzz targets cannot be built" >&2; exit 1; }
flags=(-O -parse-as-library -package-name factsweep-fuzz -sanitize=fuzzer,address -I "$work"
       -I "$root/Sources/CBLAS" -I "$root/Sources/CDNNL" -I "$root/Sources/CKernels/include")
module() {  # NAME SOURCES…
    local name="$1"; shift
    swiftc "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$work/$name.swiftmodule" \
        -emit-library -static -o "$work/lib$name.a" "$@"
}
# Rebuilt only when a source is newer than the binary.
binary="$work/decoders"
if [ ! -x "$binary" ] || [ -n "$(find "$root/Sources/Trial" "$root/Sources/Core" "$root/Sources/CKernels" "$root/Sources/Coordinator/Spec" \
        "$root/scripts/fuzz/DecodersTarget.swift" -newer "$binary" \( -name '*.swift' -o -name '*.c' -o -name '*.h' \) | head -1)" ]; then
    # Core's C kernels, with Package.swift's flags.
    objects=()
    for file in "$root"/Sources/CKernels/*.c; do
        objects+=("$work/CKernels-$(basename "$file" .c).o")
        clang -O3 -fno-math-errno -ffp-contract=off -fveclib=libmvec -I "$root/Sources/CKernels/include" -c "$file" -o "${objects[-1]}"
    done
    rm -f "$work/libCKernels.a"
    ar rcs "$work/libCKernels.a" "${objects[@]}"
    module Trial $(find "$root/Sources/Trial" -name '*.swift')
    module Core $(find "$root/Sources/Core" -name '*.swift')
    module Spec $(find "$root/Sources/Coordinator/Spec" -name '*.swift')
    swiftc "${flags[@]}" "$root/scripts/fuzz/DecodersTarget.swift" -L "$work" -lSpec -lCore -lTrial -lCKernels -lmvec -lopenblas -ldnnl -lgomp \
        -o "$binary" 2> >(grep -v "Cannot export local symbol" >&2)
fi
seed() {  # TARGET FILES…  (each cut to 64 kB, the longest input)
    local dir="$work/$1/corpus"; shift
    mkdir -p "$dir"
    for file in "$@"; do head -c 65536 "$file" > "$dir/$(basename "$file")"; done
}
seed spec "$root"/examples/*.json
seed dataset "$root"/data/*.jsonl
seed gguf "$root"/Tests/CoreTests/Golden/quant/*.ggufdata
seed safetensors $(find "$root/Tests/CoreTests/Golden" -name '*.safetensors' -size -64k)
seed tokenizer "$root"/Tests/CoreTests/Golden/tokenizer/*.json
status=0
for target in "${targets[@]}"; do
    echo "== $target: $runs runs"
    cd "$work/$target"
    if ! ASAN_OPTIONS=detect_leaks=0 FACTSWEEP_FUZZ_TARGET="$target" "$binary" -runs="$runs" -max_len=65536 -detect_leaks=0 -print_final_stats=1 corpus \
            > output.log 2>&1; then
        status=1
        echo "CRASH in $target: $(ls crash-* 2>/dev/null | head -1) (log: $work/$target/output.log)"
        tail -40 output.log
    fi
    grep -aE "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)" output.log || true
done
exit $status
