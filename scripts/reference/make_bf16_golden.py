#!/usr/bin/env python3
"""Golden file for FactSweep's bf16 precision: the committed tiny-tied Llama trained under
torch.autocast("cpu", dtype=torch.bfloat16), fully and with the peft-lora adapter.

bf16 in FactSweep means what PyTorch's CPU autocast means: every matrix product takes bf16
inputs and accumulates in float32; weights, gradients, AdamW states, norms, softmax and the
loss stay float32. The same inputs and settings as the float32 goldens (tiny-tied/ from
make_llama_golden.py, peft-lora/ from make_peft_golden.py) are replayed here with the forward
pass and the loss inside autocast, so that the Swift test can compare its bf16 run with
PyTorch's bf16 run *and* see how far PyTorch's bf16 run is from PyTorch's float32 run (the
float32 goldens) — the scale its tolerances are stated against.

Writes Tests/CoreTests/Golden/bf16-autocast/golden.safetensors:

  full.logits        F32 [B,T,V]  first forward (autocast returns bf16 logits; widened)
  full.loss          F32 [1]
  full.grad.<name>   F32          gradient of every parameter at the initial point
  full.step_losses   F32 [10]     loss before each of 10 AdamW steps (tiny-tied's settings)
  lora.loss          F32 [1]      the same for peft-lora (adapter_init.safetensors loaded)
  lora.grad.<key>    F32
  lora.step_losses   F32 [10]

Run with the venv described in README.md: python scripts/reference/make_bf16_golden.py
"""
from __future__ import annotations

from pathlib import Path

import peft
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from safetensors_io import save_sorted

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "Tests" / "CoreTests" / "Golden"
STEPS = 10
# make_llama_golden.py's and make_peft_golden.py's optimizer settings.
FULL = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
LORA = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
CLIP = 1.0


def load(name: str):
    model = AutoModelForCausalLM.from_pretrained(GOLDEN / name, dtype=torch.float32, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    model.train()
    return model


def batch(golden: str):
    g = load_file(GOLDEN / golden / "golden.safetensors")
    return g["input_ids"].long(), g["targets"].long()


def autocast_loss(model, ids, targets):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids).logits  # no attention_mask: plain causal attention
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)
    return logits, loss


def train(prefix: str, model, params: dict[str, torch.nn.Parameter], ids, targets, settings) -> dict[str, torch.Tensor]:
    opt = torch.optim.AdamW(list(params.values()), **settings)
    tensors, losses = {}, []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits, loss = autocast_loss(model, ids, targets)
        assert loss.dtype == torch.float32  # autocast runs cross_entropy in float32
        loss.backward()
        if step == 0:
            if prefix == "full":
                tensors[f"{prefix}.logits"] = logits.detach().float().clone()
            tensors[f"{prefix}.loss"] = loss.detach().reshape(1).clone()
            for name, p in params.items():
                assert p.grad.dtype == torch.float32
                tensors[f"{prefix}.grad.{name}"] = p.grad.detach().clone()
        torch.nn.utils.clip_grad_norm_(list(params.values()), CLIP)
        losses.append(loss.item())
        opt.step()
    tensors[f"{prefix}.step_losses"] = torch.tensor(losses, dtype=torch.float32)
    return tensors


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tensors: dict[str, torch.Tensor] = {}

    model = load("tiny-tied")
    ids, targets = batch("tiny-tied")
    tensors.update(train("full", model, dict(model.named_parameters()), ids, targets, FULL))

    model = load("tiny-tied")
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")  # peft-lora's
    model = get_peft_model(model, cfg)
    init = load_file(GOLDEN / "peft-lora" / "adapter_init.safetensors")
    set_peft_model_state_dict(model, init)
    by_name = {n.replace(".default", ""): p for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(by_name) == sorted(init), (sorted(by_name), sorted(init))
    ids, targets = batch("peft-lora")
    tensors.update(train("lora", model, dict(sorted(by_name.items())), ids, targets, LORA))

    out = GOLDEN / "bf16-autocast"
    out.mkdir(exist_ok=True)
    save_sorted(tensors, out / "golden.safetensors", metadata={
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "autocast": "cpu bfloat16"})
    print(f"wrote {out / 'golden.safetensors'}: full loss {tensors['full.loss'].item():.6f}, "
          f"lora loss {tensors['lora.loss'].item():.6f}")


if __name__ == "__main__":
    main()
