#!/usr/bin/env python3
"""Tests of check_peft_adapter.py on adapters and expected logits made here in Python.

Until `factsweep export` exists, this stands in for it: it writes PEFT adapter directories and
merged model directories, computes the "expected" last-position logits independently (the adapter
folded into the weights of a plain transformers model, in float64 for the tiny models), and runs
check_peft_adapter.py on them, expecting:

  tiny-tied + peft-lora final adapter (HF directory base)      exit 0
  same, one expected logit moved by 0.01                        exit 1
  same, adapter keys renamed (PEFT would ignore them)           exit 2
  tiny-tied + peft-ia3 initial adapter                          exit 0
  tiny-tied NF4 + peft-qlora final adapter, --nf4               exit 0
  same without --nf4 (fp32 base)                                exit 1
  SmolLM2 GGUF + random LoRA (q,v)                              exit 0   (skipped without models/)
  merged SmolLM2 directory (merge_and_unload + tokenizer.json)  exit 0, perturbed: exit 1

Everything is written to a temporary directory. Usage: test_check_peft_adapter.py [--skip-gguf]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOLDEN = REPO / "Tests" / "CoreTests" / "Golden"
GGUF = REPO / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECK = HERE / "check_peft_adapter.py"


def adapter_dir(out: Path, golden: str, prefix: str) -> Path:
    """A PEFT adapter directory from a golden: its adapter_config.json and the `prefix` tensors."""
    out.mkdir(parents=True)
    shutil.copy(GOLDEN / golden / "adapter_config.json", out / "adapter_config.json")
    if prefix == "init":
        tensors = load_file(str(GOLDEN / golden / "adapter_init.safetensors"))
    else:
        g = load_file(str(GOLDEN / golden / "golden.safetensors"))
        tensors = {k[len(prefix):]: v for k, v in g.items() if k.startswith(prefix)}
    save_file(tensors, str(out / "adapter_model.safetensors"), {"format": "pt"})
    return out


def folded_logits(base: str, adapter: dict[str, torch.Tensor], config: dict, ids: torch.Tensor,
                  weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Last-position logits with the adapter folded into the weights, float64, plain transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(GOLDEN / base, dtype=torch.float64, attn_implementation="eager")
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, w in (weights or {}).items():
            mods[name].weight.copy_(w.double())
        for key, t in adapter.items():
            t = t.double()
            name = key.removeprefix("base_model.model.")
            if key.endswith("lora_A.weight"):
                m = mods[name.removesuffix(".lora_A.weight")]
                b = adapter[key.replace("lora_A", "lora_B")].double()
                r, alpha = config["r"], config["lora_alpha"]
                scale = alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r
                m.weight += scale * (b @ t)
            elif key.endswith("ia3_l"):
                mods[name.removesuffix(".ia3_l")].weight.mul_(t)  # [out,1] rows, [1,in] columns
        logits = model(input_ids=ids[None, :]).logits
    return logits[0, -1].float()


def write_expected(path: Path, ids: torch.Tensor, logits: torch.Tensor) -> Path:
    save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits.contiguous()}, str(path))
    return path


def perturbed(path: Path, src: Path, at: int = 7, by: float = 0.01) -> Path:
    t = load_file(str(src))
    t["logits"] = t["logits"].clone()
    t["logits"][at] += by
    save_file(t, str(path))
    return path


def run(expect: int, *args) -> bool:
    cmd = [sys.executable, str(CHECK), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    ok = p.returncode == expect
    tail = p.stdout.strip().splitlines() + [l for l in p.stderr.splitlines() if l.startswith(("error", "  "))]
    shown = " ".join(str(a).replace(str(REPO) + "/", "") for a in args)
    print(f"[{'ok' if ok else 'FAILED'}] exit {p.returncode} (want {expect}): {shown}")
    for line in tail[-6:]:
        print("      " + line)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-gguf", action="store_true", help="skip the SmolLM2 GGUF and merged tests")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = load_file(str(GOLDEN / "peft-lora" / "golden.safetensors"))["input_ids"][0].long()

        # LoRA on an HF directory base.
        lora = adapter_dir(tmp / "lora", "peft-lora", "final.")
        cfg = json.loads((lora / "adapter_config.json").read_text())
        exp = write_expected(tmp / "lora.safetensors", ids,
                             folded_logits("tiny-tied", load_file(str(lora / "adapter_model.safetensors")), cfg, ids))
        results.append(run(0, "--base", GOLDEN / "tiny-tied", "--adapter", lora, "--expected", exp))
        results.append(run(1, "--base", GOLDEN / "tiny-tied", "--adapter", lora,
                           "--expected", perturbed(tmp / "lora-bad.safetensors", exp)))
        wrong = adapter_dir(tmp / "lora-wrong-keys", "peft-lora", "final.")
        t = load_file(str(wrong / "adapter_model.safetensors"))
        save_file({k.replace(".lora_A.", ".lora_a."): v for k, v in t.items()}, str(wrong / "adapter_model.safetensors"))
        results.append(run(2, "--base", GOLDEN / "tiny-tied", "--adapter", wrong, "--expected", exp))

        # IA³.
        ia3 = adapter_dir(tmp / "ia3", "peft-ia3", "init")
        exp = write_expected(tmp / "ia3.safetensors", ids,
                             folded_logits("tiny-tied", load_file(str(ia3 / "adapter_model.safetensors")), {}, ids))
        results.append(run(0, "--base", GOLDEN / "tiny-tied", "--adapter", ia3, "--expected", exp))

        # QLoRA: expected from the golden's NF4 codes, dequantised here (not by bitsandbytes).
        qlora = adapter_dir(tmp / "qlora", "peft-qlora", "final.")
        g = load_file(str(GOLDEN / "peft-qlora" / "golden.safetensors"))
        base_sd = load_file(str(GOLDEN / "tiny-tied" / "model.safetensors"))
        weights = {}
        for key in g:
            if key.startswith("nf4.") and key.endswith(".weight"):
                name = key[len("nf4."):-len(".weight")]
                packed = g[key].long()
                codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)
                absmax = g["nf4.nested_quant_map"][g[key + ".absmax"].long()]
                absmax = absmax * g[key + ".nested_absmax"].repeat_interleave(256)[: absmax.numel()]
                absmax = absmax + g[key + ".nested_offset"]
                w = g["nf4.quant_map"][codes] * absmax.repeat_interleave(64)
                weights[name] = w.reshape(base_sd[name + ".weight"].shape)
        cfg = json.loads((qlora / "adapter_config.json").read_text())
        exp = write_expected(tmp / "qlora.safetensors", ids,
                             folded_logits("tiny-tied", load_file(str(qlora / "adapter_model.safetensors")), cfg, ids,
                                           weights))
        results.append(run(0, "--base", GOLDEN / "tiny-tied", "--adapter", qlora, "--expected", exp, "--nf4"))
        results.append(run(1, "--base", GOLDEN / "tiny-tied", "--adapter", qlora, "--expected", exp))

        if args.skip_gguf or not GGUF.is_file():
            print(f"skipped the GGUF tests ({GGUF.relative_to(REPO)} not found or --skip-gguf)")
        else:
            results += gguf_tests(tmp)
    print(f"{sum(results)}/{len(results)} passed")
    return 0 if all(results) else 1


def gguf_tests(tmp: Path) -> list[bool]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(tmp / "smol-lora")
    merged = model.merge_and_unload().eval()
    ids = torch.tensor(tok("The capital of France is")["input_ids"])
    with torch.no_grad():
        logits = merged(input_ids=ids[None, :]).logits[0, -1].float()
    exp = write_expected(tmp / "smol.safetensors", ids, logits)
    # save_pretrained refuses a model loaded from GGUF; write the directory the way an exporter
    # would: config.json, model.safetensors (no tied lm_head copy), tokenizer files.
    out = tmp / "smol-merged"
    merged.config.save_pretrained(out)
    state = {k: v.contiguous() for k, v in merged.state_dict().items()}
    if merged.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), {"format": "pt"})
    tok.save_pretrained(out)
    return [
        run(0, "--base", GGUF, "--adapter", tmp / "smol-lora", "--expected", exp),
        run(0, "--merged", tmp / "smol-merged", "--expected", exp, "--base", GGUF),
        run(1, "--merged", tmp / "smol-merged", "--expected", perturbed(tmp / "smol-bad.safetensors", exp, by=0.05)),
    ]


if __name__ == "__main__":
    sys.exit(main())
