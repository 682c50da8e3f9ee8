#!/usr/bin/env python3
"""A Llama checkpoint with random weights, for measuring speed and memory at a scale whose
real weights cannot be fetched here (Llama-3.2-1B: scripts/llama-3.2-1b-config.json).

Writes OUT/model.safetensors (bf16, as Meta ships Llama 3.2; ~2.5 GB for the 1B config),
OUT/config.json and, from --tokenizer, tokenizer.json, so that OUT loads like a real
Hugging Face checkpoint: `factsweep bench training --model OUT`, `factsweep train --model OUT`.
The weights follow transformers' initialisation (normal, std = initializer_range) from a
fixed seed; a model trained from them learns nothing meaningful, and the timings and
peak memory are what the figures are for.

Example:
    .venv/bin/python scripts/random-llama.py scripts/llama-3.2-1b-config.json \\
        --tokenizer models/llama-3.2-tokenizer/tokenizer.json --out models/llama-3.2-1b-random
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="a Hugging Face config.json of a Llama model")
    ap.add_argument("--tokenizer", type=Path, required=True, help="the model's tokenizer.json")
    ap.add_argument("--out", type=Path, required=True, help="directory to write (created)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_json_file(str(args.config))
    if config.model_type != "llama":
        print(f"{args.config}: model_type {config.model_type!r}, expected 'llama'", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True, max_shard_size="100GB")
    shutil.copyfile(args.tokenizer, args.out / "tokenizer.json")
    count = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {count:,} parameters, random (seed {args.seed}), bf16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
