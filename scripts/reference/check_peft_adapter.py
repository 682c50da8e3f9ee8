#!/usr/bin/env python3
"""Check that a PEFT adapter (or merged model) exported by FactSweep gives FactSweep's logits.

Two modes:

  check_peft_adapter.py --base BASE --adapter ADAPTER_DIR --expected EXPECTED.safetensors
  check_peft_adapter.py --merged MERGED_DIR --expected EXPECTED.safetensors [--base BASE]

BASE            a Hugging Face model directory, or a GGUF file (loaded by transformers with
                gguf_file=, dequantised to float32).
ADAPTER_DIR     a PEFT adapter directory (adapter_config.json + adapter_model.safetensors), as
                `factsweep export` writes it. Loaded with PeftModel.from_pretrained; the script
                then checks that every tensor of adapter_model.safetensors was loaded into the
                model unchanged and that the model has no adapter tensor the file lacks (PEFT
                only warns about wrong key names, and an adapter whose keys are all wrong is
                silently a no-op).
MERGED_DIR      a full model directory (config.json, model.safetensors or a sharded index,
                tokenizer.json) loaded with plain transformers. With --base as well, the
                difference between the base and merged logits is printed (the adapter's effect).
EXPECTED        safetensors with input_ids I32 (or I64) [T] and logits F32 [V]: FactSweep's
                logits at the last position of that prompt, with the adapter applied.

The model runs in float32 with eager attention and no attention mask on input_ids[None, :]. The
script prints the max |difference| (and where), the top-k ids on both sides and their agreement,
and for --adapter the adapter's own effect (max |adapted - base|, via disable_adapter()).

--nf4 quantises the base as make_peft_golden.py's peft-qlora does (bitsandbytes NF4, blocksize 64,
double quantisation, float32 compute; every Linear but lm_head), for adapters trained by QLoRA.
The bitsandbytes layers are kept in training mode (dropouts elsewhere stay off) because in eval
mode bitsandbytes' CPU path repacks the weights for a bfloat16 kernel on AVX512-BF16 machines, and
dequantisation uses bitsandbytes' PyTorch reference instead of its CPU kernel (bnb_reference.py).

Exit status: 0 when max |difference| <= tolerance; 1 when it is larger; 2 for unusable inputs
(missing files, wrong shapes, adapter tensors that did not load).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    pass


def load_expected(path: Path):
    import torch
    from safetensors.torch import load_file

    if not path.is_file():
        raise BadInput(f"expected file not found: {path}")
    t = load_file(str(path))
    for k in ("input_ids", "logits"):
        if k not in t:
            raise BadInput(f"{path}: no tensor '{k}' (has {sorted(t)})")
    ids, logits = t["input_ids"], t["logits"]
    if ids.dim() != 1 or ids.numel() == 0 or ids.dtype not in (torch.int32, torch.int64):
        raise BadInput(f"{path}: input_ids must be I32/I64 [T], T > 0; got {ids.dtype} {list(ids.shape)}")
    if logits.dim() != 1 or logits.dtype != torch.float32:
        raise BadInput(f"{path}: logits must be F32 [V]; got {logits.dtype} {list(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise BadInput(f"{path}: logits contain non-finite values")
    return ids.long(), logits


def load_causal_lm(source: Path, nf4: bool = False):
    """A transformers causal LM from a model directory or a GGUF file, in float32."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    if source.is_file():
        if source.suffix.lower() != ".gguf":
            raise BadInput(f"{source}: a file base must be a .gguf file")
        directory, kwargs["gguf_file"] = source.parent, source.name
    elif source.is_dir():
        if not (source / "config.json").is_file():
            raise BadInput(f"{source}: no config.json")
        directory = source
    else:
        raise BadInput(f"not found: {source}")
    if nf4:
        from transformers import BitsAndBytesConfig

        from bnb_reference import use_reference_dequantize
        use_reference_dequantize()  # bitsandbytes' CPU kernel is wrong when in_features % 64 != 0
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = "cpu"
    model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    model.eval()
    if nf4:
        import bitsandbytes as bnb
        n = 0
        for m in model.modules():
            if isinstance(m, bnb.nn.Linear4bit):
                m.train()  # the float32 dequantise-then-matmul path (see the module docstring)
                n += 1
        if n == 0:
            raise BadInput("--nf4: no layer was quantised")
    if not nf4 and any(p.dtype != torch.float32 for p in model.parameters()):
        raise BadInput(f"{source}: parameters are not all float32")
    return model


def load_tokenizer(source: Path):
    from transformers import AutoTokenizer

    if source.is_file():
        return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    return AutoTokenizer.from_pretrained(source)


def check_adapter_loaded(model, adapter_dir: Path) -> list[str]:
    """Problems with how adapter_model.safetensors went into the PEFT model (empty = fine)."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    in_file = load_file(str(adapter_dir / "adapter_model.safetensors"))
    in_model = get_peft_model_state_dict(model)
    problems = []
    for k in sorted(set(in_file) - set(in_model)):
        problems.append(f"not loaded (no such adapter tensor in the model): {k}")
    for k in sorted(set(in_model) - set(in_file)):
        problems.append(f"missing from the file (the model keeps PEFT's initial value): {k}")
    for k in sorted(set(in_file) & set(in_model)):
        a, b = in_file[k], in_model[k]
        if tuple(a.shape) != tuple(b.shape):
            problems.append(f"shape {list(a.shape)} in the file, {list(b.shape)} in the model: {k}")
        elif not torch.equal(a.to(b.dtype), b):
            problems.append(f"value differs after loading: {k}")
    return problems


def last_logits(model, ids, adapter_off: bool = False):
    import torch

    with torch.no_grad(), (model.disable_adapter() if adapter_off else contextlib.nullcontext()):
        out = model(input_ids=ids[None, :]).logits
    return out[0, -1].float()


def describe(ids: list[int], tokenizer) -> list:
    if tokenizer is None:
        return ids
    return [[i, tokenizer.decode([i])] for i in ids]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, help="Hugging Face model directory or GGUF file")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--adapter", type=Path, help="PEFT adapter directory (adapter_config.json, adapter_model.safetensors)")
    mode.add_argument("--merged", type=Path, help="merged model directory (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--expected", type=Path, required=True, help="safetensors with input_ids [T] and logits [V]")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |logit difference| (default 1e-3)")
    ap.add_argument("--top-k", type=int, default=5, help="how many top ids to compare (default 5)")
    ap.add_argument("--nf4", action="store_true", help="quantise the base to bitsandbytes NF4 as for QLoRA (--adapter only)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        report = run(args)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    ok = report["max_abs_diff"] <= args.tolerance
    report["result"] = "PASS" if ok else "FAIL"
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report, args.tolerance)
    return EXIT_OK if ok else EXIT_MISMATCH


def run(args) -> dict:
    import torch

    if args.adapter and args.base is None:
        raise BadInput("--adapter needs --base")
    if args.nf4 and not args.adapter:
        raise BadInput("--nf4 applies to --adapter only")
    ids, expected = load_expected(args.expected)
    report: dict = {"expected": str(args.expected), "tokens": ids.numel(), "vocab": expected.numel()}

    if args.adapter:
        from peft import PeftModel

        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if not (args.adapter / name).is_file():
                raise BadInput(f"{args.adapter}: no {name}")
        config = json.loads((args.adapter / "adapter_config.json").read_text())
        report.update(mode="adapter", base=str(args.base), adapter=str(args.adapter),
                      peft_type=config.get("peft_type"), nf4=args.nf4)
        base = load_causal_lm(args.base, nf4=args.nf4)
        model = PeftModel.from_pretrained(base, str(args.adapter), is_trainable=False)
        model.eval()
        if args.nf4:  # from_pretrained/eval reset the bnb layers' mode
            import bitsandbytes as bnb
            for m in model.modules():
                if isinstance(m, bnb.nn.Linear4bit):
                    m.train()
        problems = check_adapter_loaded(model, args.adapter)
        if problems:
            raise BadInput("adapter_model.safetensors did not load cleanly:\n  " + "\n  ".join(problems))
        tokenizer_source = args.base
    else:
        for name in ("config.json", "tokenizer.json"):
            if not (args.merged / name).is_file():
                raise BadInput(f"{args.merged}: no {name}")
        if not ((args.merged / "model.safetensors").is_file()
                or (args.merged / "model.safetensors.index.json").is_file()):
            raise BadInput(f"{args.merged}: no model.safetensors (or model.safetensors.index.json)")
        report.update(mode="merged", merged=str(args.merged))
        model = load_causal_lm(args.merged)
        tokenizer_source = args.merged

    vocab = model.get_output_embeddings().weight.shape[0]
    if expected.numel() != vocab:
        raise BadInput(f"expected logits have V={expected.numel()}, the model's vocabulary is {vocab}")
    if ids.min() < 0 or ids.max() >= model.config.vocab_size:
        raise BadInput(f"input_ids outside [0, {model.config.vocab_size})")

    actual = last_logits(model, ids)
    if args.adapter:
        report["adapter_effect_max_abs"] = (actual - last_logits(model, ids, adapter_off=True)).abs().max().item()
    elif args.base is not None:
        base = load_causal_lm(args.base)
        report["adapter_effect_max_abs"] = (actual - last_logits(base, ids)).abs().max().item()

    try:
        tokenizer = load_tokenizer(tokenizer_source)
    except Exception as e:  # decoding the top ids is a convenience only
        if args.merged:
            raise BadInput(f"{args.merged}: tokenizer does not load: {e}")
        tokenizer = None

    diff = (actual - expected).abs()
    at = int(diff.argmax())
    k = min(args.top_k, expected.numel())
    top_actual = actual.topk(k).indices.tolist()
    top_expected = expected.topk(k).indices.tolist()
    report.update(
        max_abs_diff=diff.max().item(),
        max_abs_diff_at=at,
        logits_at_max=[actual[at].item(), expected[at].item()],
        mean_abs_diff=diff.mean().item(),
        max_abs_expected=expected.abs().max().item(),
        top_k=k,
        top_transformers=describe(top_actual, tokenizer),
        top_expected=describe(top_expected, tokenizer),
        top1_agrees=top_actual[0] == top_expected[0],
        topk_same_order=top_actual == top_expected,
        topk_overlap=len(set(top_actual) & set(top_expected)),
    )
    return report


def print_report(r: dict, tolerance: float) -> None:
    if r["mode"] == "adapter":
        print(f"base       {r['base']}{' (NF4)' if r['nf4'] else ''}")
        print(f"adapter    {r['adapter']} ({r['peft_type']}); all tensors loaded")
    else:
        print(f"merged     {r['merged']}")
    print(f"expected   {r['expected']}: {r['tokens']} tokens, V={r['vocab']}")
    if "adapter_effect_max_abs" in r:
        print(f"adapter effect on the logits (max |adapted - base|): {r['adapter_effect_max_abs']:.6g}")
    print(f"max |transformers - expected| = {r['max_abs_diff']:.6g} at id {r['max_abs_diff_at']} "
          f"({r['logits_at_max'][0]:.6g} vs {r['logits_at_max'][1]:.6g}); mean {r['mean_abs_diff']:.3g}; "
          f"largest |expected| {r['max_abs_expected']:.4g}")
    print(f"top-{r['top_k']} transformers: {r['top_transformers']}")
    print(f"top-{r['top_k']} expected:     {r['top_expected']}")
    print(f"top-1 agrees: {r['top1_agrees']}; same top-{r['top_k']} in order: {r['topk_same_order']}; "
          f"overlap {r['topk_overlap']}/{r['top_k']}")
    print(f"{r['result']} (tolerance {tolerance:g})")


if __name__ == "__main__":
    sys.exit(main())
