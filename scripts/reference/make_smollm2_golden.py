#!/usr/bin/env python3
"""SmolLM2-135M-Instruct reference outputs, computed by transformers from the project's GGUF.

Writes Tests/CoreTests/Golden/smollm2/:

  reference.json          per prompt: text, input ids, top-10 ids and logits at the last
                          position, max |logit|, the greedy 16-token continuation (ids,
                          text, where eos appeared, top-1/top-2 margins), plus the first
                          values of layer 0's q_proj/k_proj rows as transformers loads them
                          (checks the GGUF loader's un-permutation of Q and K)
  last_logits.safetensors F32 [4, vocab]: full last-position logits of the 4 prompts

The model is dequantized to float32 by transformers (gguf package). Greedy decoding here
is a plain loop: full forward over the whole sequence (no KV cache), argmax (first index on
ties), 16 tokens regardless of eos.

Run with the venv described in README.md, after scripts/setup.sh has fetched the model:
    python scripts/reference/make_smollm2_golden.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from safetensors_io import save_sorted

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = REPO / "Tests" / "CoreTests" / "Golden" / "smollm2"
NEW_TOKENS = 16
TOP_K = 10

PROMPTS = [
    {"kind": "plain", "text": "The capital of France is"},
    {"kind": "plain", "text": "Once upon a time, in a small village by the sea, there lived"},
    {"kind": "chat", "text": "What is the capital of France?"},
    {"kind": "chat", "text": "Who was Marie Curie? Give me a short biography."},
]


def load(model_dir: Path):
    major = int(transformers.__version__.split(".")[0])
    dtype_kw = {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}
    tok = AutoTokenizer.from_pretrained(model_dir, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=GGUF, attn_implementation="eager", **dtype_kw)
    # transformers marks GGUF models as "quantized" (so .float() is refused) although
    # the weights are dequantized: check they really are float32.
    assert all(t.dtype == torch.float32 for t in model.parameters())
    return tok, model.eval()


def encode(tok, prompt: dict) -> tuple[str, list[int]]:
    if prompt["kind"] == "chat":
        messages = [{"role": "user", "content": prompt["text"]}]
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        direct = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(direct, list):
            direct = direct["input_ids"]
        assert list(direct) == list(ids), "chat template tokenization disagrees with encoding its text"
        return text, list(ids)
    return prompt["text"], list(tok(prompt["text"])["input_ids"])


@torch.no_grad()
def last_logits(model, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, use_cache=False).logits[0, -1].float()


@torch.no_grad()
def greedy(model, ids: list[int], eos_ids: set[int]) -> tuple[list[int], list[int], list[float]]:
    seq, new, margins, eos_at = list(ids), [], [], []
    for i in range(NEW_TOKENS):
        logits = last_logits(model, seq)
        top2 = torch.topk(logits, 2)
        nxt = int(torch.argmax(logits))
        margins.append(float(top2.values[0] - top2.values[1]))
        if nxt in eos_ids:
            eos_at.append(i)
        seq.append(nxt)
        new.append(nxt)
    return new, eos_at, margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    tok, model = load(args.model_dir)
    eos_ids = {int(tok.eos_token_id)}
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    if gen_eos is not None:
        eos_ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])

    results, rows = [], []
    for p in PROMPTS:
        text, ids = encode(tok, p)
        logits = last_logits(model, ids)
        rows.append(logits)
        top = torch.topk(logits, TOP_K)
        new, eos_at, margins = greedy(model, ids, eos_ids)
        # Cross-check the plain loop against transformers' own greedy generate (KV cache)
        # up to the first eos, where generate stops.
        gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=NEW_TOKENS, do_sample=False, repetition_penalty=1.0,
                             pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        stop = eos_at[0] + 1 if eos_at else NEW_TOKENS
        generate_agrees = gen[:stop] == new[:stop]
        results.append({
            "kind": p["kind"],
            "prompt": p["text"],
            "text": text,
            "input_ids": ids,
            "top10_ids": top.indices.tolist(),
            "top10_logits": [float(v) for v in top.values],
            "max_abs_logit": float(logits.abs().max()),
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "greedy_text_until_eos": tok.decode(new[: eos_at[0]] if eos_at else new, skip_special_tokens=True),
            "eos_positions": eos_at,
            "greedy_top1_top2_margin": margins,
            "generate_agrees_until_eos": generate_agrees,
        })
        print(f"[{p['kind']}] {len(ids)} ids, max|logit| {results[-1]['max_abs_logit']:.4f}, "
              f"eos at {eos_at}, min margin {min(margins):.4f}, generate agrees: {generate_agrees}")
        print("   ", repr(results[-1]["greedy_text"]))

    sd = model.state_dict()
    weights = {}
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
        w = sd[name]
        weights[name] = {"shape": list(w.shape), "rows_0_2_first_8": [[float(v) for v in w[r, :8]] for r in range(3)]}

    ref = {
        "model": f"smollm2-135m-instruct/{GGUF}",
        "loaded_by": "transformers AutoModelForCausalLM.from_pretrained(gguf_file=..., float32), eager attention",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "vocab_size": int(logits.shape[0]),
        "eos_token_ids": sorted(eos_ids),
        "bos_token_id": tok.bos_token_id,
        "adds_bos": bool(tok("x")["input_ids"][0] == tok.bos_token_id),
        "greedy": "argmax over full-sequence forward without KV cache, 16 new tokens, eos not forced",
        "rms_norm_eps": model.config.rms_norm_eps,
        "prompts": results,
        "weights": weights,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    save_sorted({"logits": torch.stack(rows)}, args.out / "last_logits.safetensors",
                {"prompts": json.dumps([p["text"] for p in PROMPTS]), "torch": torch.__version__,
                 "transformers": transformers.__version__, "model": GGUF})


if __name__ == "__main__":
    main()
