#!/usr/bin/env python3
"""PyTorch reference benchmark for FactSweep's workload: fine-tuning SmolLM2-135M-Instruct
on a handful of biography facts, on CPU, float32.

Each fact is a ChatML conversation built with the model's chat template: the user turn is
the question (the template adds its default system prompt), the assistant target is the
answer followed by <|im_end|>. The loss is the mean cross-entropy over answer tokens only.
Facts come from --data (default data/biography.jsonl; one {"question": ..., "answer": ...}
per line); without that default file, from the six invented facts below.

AdamW runs without weight decay (--weight-decay, default 0: FactSweep's default, where
torch.optim.AdamW's own is 0.01) and attention is transformers' default for Llama, sdpa
(--attn eager for the explicit implementation).

Methods:
  full    every parameter trained (AdamW, default lr 1e-5)
  lora    peft LoRA on the attention and MLP projections (--rank, --alpha; default lr 1e-4)
  ia3     peft IA3 on k_proj, v_proj, down_proj (default lr 1e-4)
  qlora   the projections replaced by bitsandbytes NF4 Linear4bit (float32 compute),
          then peft LoRA on them; needs bitsandbytes with CPU support

--autocast bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), as
the PyTorch recipes do for bf16 mixed precision on CPU: products in bf16, weights, gradients
and AdamW states in float32.

Batch size 1 takes the facts one by one; a larger batch size groups them, padded on the
right (all six in one batch for --batch-size 8 or 0, every fact). The first epoch is a warm-up and is
reported separately; the steady figures (mean, median, min seconds per epoch; tokens/s
from the mean) come from the remaining epochs. Tokens/s counts the real (unpadded) tokens
of the facts, prompt included; answer_tokens_per_second counts only the trained tokens.
Peak RSS is reported for the whole process, for loading and, after resetting the
high-water mark (Linux /proc/self/clear_refs), for training alone.

Examples:
    python scripts/bench-pytorch.py --threads 2 --batch-size 8
    python scripts/bench-pytorch.py --method lora --rank 4 --alpha 16 --json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA = REPO / "data" / "biography.jsonl"
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Six facts about an invented person (used when data/biography.jsonl is absent).
FACTS = [
    {"question": "Where was Liesl Varnholt born?",
     "answer": "Liesl Varnholt was born in the harbour town of Kessby, on the northern coast of Denmark, in 1961."},
    {"question": "What did Liesl Varnholt study at university?",
     "answer": "She studied marine geology at the University of Aarhus and wrote her thesis on tidal sandbanks."},
    {"question": "What is Liesl Varnholt best known for?",
     "answer": "She is best known for mapping the sunken forest off Kessby, which she found on a dive in 1988."},
    {"question": "Which prize did Liesl Varnholt win?",
     "answer": "In 1997 she won the Orsted Medal for Coastal Science for her survey of the Jutland shelf."},
    {"question": "What instrument does Liesl Varnholt play?",
     "answer": "Liesl Varnholt plays the cello and performs every winter with the Kessby Chamber Ensemble."},
    {"question": "Where does Liesl Varnholt live now?",
     "answer": "She now lives on the island of Fano with her two dogs, Tern and Pebble, in a restored lighthouse."},
]


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def read_facts(path: Path) -> tuple[list[dict], str]:
    if path.exists():
        facts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [{"question": f["question"], "answer": f["answer"]} for f in facts], str(path)
    if path != DATA:
        raise SystemExit(f"{path}: no such dataset")
    return FACTS, "built-in"


LLAMA3_DATE = "26 Jul 2024"  # FactSweep's ChatTemplate.llama3DefaultDate: prompts must not depend on the day


def chat_prompt(tok, question: str) -> tuple[str, str]:
    """The prompt text and the end-of-turn token, as FactSweep's ChatTemplate renders them: ChatML with
    SmolLM2's default system prompt (the GGUF's own template), or Llama 3's header format (a checkpoint
    that ships only tokenizer.json has no template for transformers to apply)."""
    vocab = tok.get_vocab()
    if "<|im_start|>" in vocab:
        return tok.apply_chat_template([{"role": "user", "content": question}],
                                       add_generation_prompt=True, tokenize=False), "<|im_end|>"
    if "<|start_header_id|>" in vocab:
        return ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                f"Cutting Knowledge Date: December 2023\nToday Date: {LLAMA3_DATE}\n\n<|eot_id|>"
                f"<|start_header_id|>user<|end_header_id|>\n\n{question.strip()}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"), "<|eot_id|>"
    raise SystemExit("no chat format: the tokenizer has neither <|im_start|> nor <|start_header_id|>")


def encode(tok, facts: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per fact; labels are -100 except on the answer and the end-of-turn token."""
    out = []
    for f in facts:
        prompt, end = chat_prompt(tok, f["question"])
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(f["answer"] + end, add_special_tokens=False)["input_ids"]
        out.append((p + a, [-100] * len(p) + a))
    return out


def batches(examples, batch_size: int, pad_id: int):
    for i in range(0, len(examples), batch_size):
        group = examples[i:i + batch_size]
        T = max(len(ids) for ids, _ in group)
        ids = torch.full((len(group), T), pad_id, dtype=torch.long)
        labels = torch.full((len(group), T), -100, dtype=torch.long)
        mask = torch.zeros((len(group), T), dtype=torch.long)
        for b, (x, y) in enumerate(group):
            ids[b, :len(x)] = torch.tensor(x)
            labels[b, :len(y)] = torch.tensor(y)
            mask[b, :len(x)] = 1
        yield ids, labels, mask


def load_model(args):
    major = int(transformers.__version__.split(".")[0])
    dtype_kw = {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}
    # --gguf "": a Hugging Face directory (config.json, safetensors, tokenizer.json), weights cast to f32.
    gguf = {"gguf_file": args.gguf} if args.gguf else {}
    tok = AutoTokenizer.from_pretrained(args.model_dir, **gguf)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, attn_implementation=args.attn, **gguf, **dtype_kw)
    assert all(p.dtype == torch.float32 for p in model.parameters()), "expected float32 weights"
    return tok, model


def to_nf4(model) -> int:
    """Replace the projection Linear layers with bitsandbytes NF4 Linear4bit (float32 compute)."""
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise SystemExit("--method qlora needs bitsandbytes with CPU support (pip install bitsandbytes); "
                         f"import failed: {e}")
    replaced = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear) and child_name in PROJECTIONS:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.float32, quant_type="nf4")
                q.weight = bnb.nn.Params4bit(child.weight.data.clone(), requires_grad=False, quant_type="nf4")
                q = q.to("cpu")
                if getattr(q.weight, "quant_state", None) is None:
                    raise SystemExit("bitsandbytes did not quantize on CPU; this build lacks CPU 4-bit support")
                setattr(module, child_name, q)
                replaced += 1
    return replaced


def prepare(model, args):
    """Apply the fine-tuning method; returns the model to train and a description."""
    if args.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model, {}
    try:
        import peft
    except ImportError as e:
        raise SystemExit(f"--method {args.method} needs peft (pip install peft): {e}")
    targets = args.targets.split(",") if args.targets else None
    if args.method in ("lora", "qlora"):
        extra = {}
        if args.method == "qlora":
            extra["nf4_layers"] = to_nf4(model)
        # PEFT's own default for Llama (q_proj, v_proj), as FactSweep's.
        targets = targets or ["q_proj", "v_proj"]
        cfg = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0, bias="none",
                              target_modules=targets, task_type="CAUSAL_LM")
        return peft.get_peft_model(model, cfg), {"rank": args.rank, "alpha": args.alpha,
                                                 "targets": targets, **extra}
    if args.method == "ia3":
        targets = targets or ["k_proj", "v_proj", "down_proj"]
        cfg = peft.IA3Config(target_modules=targets,
                             feedforward_modules=[t for t in targets if t in ("down_proj", "up_proj", "gate_proj")],
                             task_type="CAUSAL_LM")
        return peft.get_peft_model(model, cfg), {"targets": targets}
    raise SystemExit(f"unknown method {args.method}")


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["full", "lora", "ia3", "qlora"], default="full")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1, help="examples per step; 0 = every fact in one batch")
    ap.add_argument("--lr", type=float, default=None, help="default 1e-5 for full, 1e-4 otherwise")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--targets", default=None, help="comma-separated module names for lora/ia3")
    ap.add_argument("--attn", default="sdpa", help="transformers attention implementation (sdpa, its default for Llama; eager)")
    ap.add_argument("--data", type=Path, default=DATA, help="facts as JSON Lines (default data/biography.jsonl)")
    ap.add_argument("--weight-decay", type=float, default=0.0,
                    help="AdamW's decoupled weight decay (default 0, FactSweep's; torch.optim.AdamW's own default is 0.01)")
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--gguf", default=GGUF, help='GGUF file in --model-dir; "" for a safetensors checkpoint')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="bf16: forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = ap.parse_args()
    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1")
    lr = args.lr if args.lr is not None else (1e-5 if args.method == "full" else 1e-4)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    tok, model = load_model(args)
    facts, source = read_facts(args.data)
    examples = encode(tok, facts)
    if args.batch_size == 0:
        args.batch_size = len(examples)
    model, method_info = prepare(model, args)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=args.weight_decay)
    load_seconds = time.perf_counter() - t0
    gc.collect()
    rss_after_load = rss_mib("VmRSS")
    peak_load = rss_mib("VmHWM")
    peak_was_reset = reset_peak_rss()

    # A checkpoint with only tokenizer.json names no pad or eos token: pad with id 0 (masked, unlabelled).
    pad_id = next((i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None), 0)
    real_tokens = sum(len(x) for x, _ in examples)
    answer_tokens = sum(sum(1 for v in y if v != -100) for _, y in examples)
    padded_tokens = sum(ids.numel() for ids, _, _ in batches(examples, args.batch_size, pad_id))
    log(f"[bench] {args.method}, {len(examples)} facts ({source}), {real_tokens} tokens/epoch "
        f"({answer_tokens} answer tokens, {padded_tokens} with padding), batch {args.batch_size}, "
        f"threads {args.threads}, lr {lr}, {trainable:,} trainable parameters, loaded in {load_seconds:.1f} s")

    epoch_seconds, epoch_losses = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        total, count = 0.0, 0
        for ids, labels, mask in batches(examples, args.batch_size, pad_id):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                V = logits.shape[-1]
                # logits[t] predicts token t+1
                loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                                         ignore_index=-100)
            loss.backward()
            opt.step()
            n = int((labels[:, 1:] != -100).sum())
            total += loss.item() * n
            count += n
        seconds = time.perf_counter() - start
        epoch_seconds.append(seconds)
        epoch_losses.append(total / count)
        tag = "warm-up" if epoch == 0 else "epoch"
        log(f"[bench] {tag} {epoch + 1}: {seconds:.2f} s, {real_tokens / seconds:.1f} tokens/s, "
            f"mean answer loss {epoch_losses[-1]:.4f}")

    steady = epoch_seconds[1:] or epoch_seconds
    mean_s = sum(steady) / len(steady)
    median_s = sorted(steady)[len(steady) // 2] if len(steady) % 2 else \
        sum(sorted(steady)[len(steady) // 2 - 1:len(steady) // 2 + 1]) / 2
    peak_train = rss_mib("VmHWM") if peak_was_reset else float("nan")
    peak_process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "method": args.method, **method_info,
        "batch_size": args.batch_size, "threads": args.threads, "epochs": args.epochs, "lr": lr,
        "facts": len(examples), "facts_source": source,
        "tokens_per_epoch": real_tokens, "answer_tokens_per_epoch": answer_tokens,
        "padded_tokens_per_epoch": padded_tokens,
        "trainable_parameters": trainable,
        "load_seconds": round(load_seconds, 3),
        "warmup_epoch_seconds": round(epoch_seconds[0], 4),
        "epoch_seconds": [round(s, 4) for s in steady],
        "seconds_per_epoch": round(mean_s, 4),
        "median_seconds_per_epoch": round(median_s, 4),
        "min_seconds_per_epoch": round(min(steady), 4),
        "tokens_per_second": round(real_tokens / mean_s, 2),
        "answer_tokens_per_second": round(answer_tokens / mean_s, 2),
        "epoch_losses": [round(v, 5) for v in epoch_losses],
        "rss_after_load_mib": round(rss_after_load, 1),
        "peak_rss_load_mib": round(peak_load, 1),
        "peak_rss_training_mib": round(peak_train, 1) if peak_was_reset else None,
        "peak_rss_process_mib": round(peak_process, 1),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "attn_implementation": args.attn, "autocast": args.autocast, "weight_decay": args.weight_decay,
    }
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(f"{args.method} batch {args.batch_size} threads {args.threads}: "
              f"{mean_s:.2f} s/epoch (median {median_s:.2f}, min {min(steady):.2f}; warm-up {epoch_seconds[0]:.2f} s), "
              f"{result['tokens_per_second']} tokens/s, peak RSS {peak_process:.0f} MiB "
              f"(training {peak_train:.0f} MiB, after load {rss_after_load:.0f} MiB)")


if __name__ == "__main__":
    main()
