#!/usr/bin/env python3
"""Golden files for the Swift Llama training core (the llm.c test_gpt2.c model).

For each tiny random Llama variant this writes, under Tests/CoreTests/Golden/<variant>/:

  config.json, model.safetensors   a real Hugging Face directory (save_pretrained, float32)
  golden.safetensors               inputs, logits, loss, gradients and 10 AdamW steps

Tensors in golden.safetensors (B=2, T=10, V=vocab_size):

  input_ids      I32 [B,T]   random ids in [1, V); row 1 ends with 3 pad tokens (id 0)
  targets        I32 [B,T]   label of logits[b,t] (already shifted), -100 where masked
  logits         F32 [B,T,V] forward pass with plain causal attention (no attention_mask:
                             pad positions are ordinary id-0 tokens; their targets are -100)
  loss           F32 [1]     F.cross_entropy(logits.view(-1,V), targets.view(-1), ignore_index=-100)
  grad.<name>    F32         d loss / d parameter for every parameter (tied models: only
                             model.embed_tokens.weight, which carries the combined gradient)
  step_losses    F32 [10]    loss before each AdamW step (step_losses[0] == loss)
  grad_norm      F32 [10]    total gradient norm before clipping at each step
  final.<name>   F32         parameters after the 10 steps

Each step: zero_grad, forward, loss, backward, clip_grad_norm_(params, clip), AdamW.step.
AdamW is torch.optim.AdamW(lr, betas, eps, weight_decay) over all parameters (all decayed).
The hyperparameters and versions are in the safetensors string metadata.

Run with the venv described in README.md: python scripts/reference/make_llama_golden.py
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from safetensors_io import save_sorted

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "Tests" / "CoreTests" / "Golden"

B, T = 2, 10
STEPS = 10
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP = 1e-3, 0.9, 0.999, 1e-8, 0.1, 1.0
PAD_ID = 0
PROMPT_LENGTHS = (3, 2)  # masked "prompt" positions at the start of each row
PADDING_ROW1 = 3  # right padding at the end of row 1

COMMON = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    hidden_act="silu",
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=PAD_ID,
    attention_bias=False,
    mlp_bias=False,
)

# name -> (config overrides, rope_theta, rope_scaling or None, seed)
VARIANTS = {
    "tiny-tied": (dict(tie_word_embeddings=True), 10000.0, None, 1001),
    "tiny-untied-llama3": (
        dict(tie_word_embeddings=False),
        500000.0,
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        1002,
    ),
    "tiny-headdim": (dict(tie_word_embeddings=True, head_dim=32), 10000.0, None, 1003),
}


def make_config(overrides: dict, theta: float, scaling: dict | None) -> LlamaConfig:
    kwargs = dict(COMMON, **overrides)
    params = inspect.signature(LlamaConfig.__init__).parameters
    if "rope_parameters" in params:  # transformers >= 5
        rope = {"rope_type": "default", "rope_theta": theta}
        if scaling is not None:
            rope = dict(scaling, rope_theta=theta)
        kwargs["rope_parameters"] = rope
    else:  # transformers 4.x
        kwargs["rope_theta"] = theta
        kwargs["rope_scaling"] = scaling
    return LlamaConfig(**kwargs)


def initialise(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Matrices ~ N(0, 0.1²); RMSNorm weights 1 + 0.1·N(0,1), so that their gradients matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def make_batch(vocab: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, vocab, (B, T), generator=gen, dtype=torch.int64)
    lengths = [T, T - PADDING_ROW1]
    targets = torch.full((B, T), -100, dtype=torch.int64)
    for b in range(B):
        n = lengths[b]
        ids[b, n:] = PAD_ID
        # logits[b,t] predicts ids[b,t+1]; the last real position has no label.
        for t in range(PROMPT_LENGTHS[b], n - 1):
            targets[b, t] = ids[b, t + 1]
    return ids, targets


def compute_loss(model, ids, targets):
    logits = model(input_ids=ids).logits  # no attention_mask: plain causal attention
    V = logits.shape[-1]
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)
    return logits, loss


def legacy_rope_keys(cfg: dict) -> dict:
    """rope_theta / rope_scaling as transformers 4.x reads them, from rope_parameters."""
    rp = cfg.get("rope_parameters")
    if not rp:
        return cfg
    rp = dict(rp)
    cfg["rope_theta"] = rp.pop("rope_theta", 10000.0)
    cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    return cfg


def write_variant(name: str, out_root: Path) -> dict:
    overrides, theta, scaling, seed = VARIANTS[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = make_config(overrides, theta, scaling)
    model = LlamaForCausalLM._from_config(config, attn_implementation="eager").float()
    assert model.config._attn_implementation == "eager"
    initialise(model, gen)
    model.train()  # dropout is 0 anyway

    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        save_kwargs["safe_serialization"] = True
    model.save_pretrained(out, **save_kwargs)
    (out / "generation_config.json").unlink(missing_ok=True)
    # transformers 5 writes rope_parameters only; add the 4.x keys too so that
    # transformers >= 4.45 (and any reader of either form) sees the same RoPE.
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    written_keys = sorted(cfg)
    cfg = legacy_rope_keys(cfg)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    ids, targets = make_batch(config.vocab_size, gen)
    params = [p for _, p in model.named_parameters()]
    names = [n for n, _ in model.named_parameters()]
    opt = torch.optim.AdamW(params, lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WEIGHT_DECAY)

    tensors: dict[str, torch.Tensor] = {
        "input_ids": ids.to(torch.int32),
        "targets": targets.to(torch.int32),
    }
    step_losses, grad_norms = [], []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits, loss = compute_loss(model, ids, targets)
        loss.backward()
        if step == 0:
            tensors["logits"] = logits.detach().clone()
            tensors["loss"] = loss.detach().reshape(1).clone()
            for n, p in zip(names, params):
                tensors[f"grad.{n}"] = p.grad.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        step_losses.append(loss.item())
        grad_norms.append(norm.item())
        opt.step()
    tensors["step_losses"] = torch.tensor(step_losses, dtype=torch.float32)
    tensors["grad_norm"] = torch.tensor(grad_norms, dtype=torch.float32)
    for n, p in zip(names, params):
        tensors[f"final.{n}"] = p.detach().clone()

    metadata = {
        "variant": name,
        "seed": str(seed),
        "lr": repr(LR),
        "beta1": repr(BETA1),
        "beta2": repr(BETA2),
        "eps": repr(EPS),
        "weight_decay": repr(WEIGHT_DECAY),
        "weight_decay_applies_to": "all parameters",
        "clip": repr(CLIP),
        "steps": str(STEPS),
        "pad_id": str(PAD_ID),
        "ignore_index": "-100",
        "attention_mask": "none (plain causal attention; pad positions are ordinary id-0 tokens)",
        "targets": "already shifted: targets[b,t] is the label of logits[b,t]",
        "loss": "mean cross-entropy over unmasked positions of the whole batch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_sorted(tensors, out / "golden.safetensors", metadata)

    check_reload(out, ids, tensors["logits"])
    return {
        "variant": name,
        "config_keys_written_by_transformers": written_keys,
        "loss": tensors["loss"].item(),
        "step_losses": step_losses,
        "grad_norm": grad_norms,
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir())},
    }


def check_reload(out: Path, ids: torch.Tensor, logits: torch.Tensor) -> None:
    """The written directory reproduces the logits, both as written and read as 4.x would."""
    m = LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").float().eval()
    with torch.no_grad():
        again = m(input_ids=ids).logits
    diff = (again - logits).abs().max().item()
    if diff != 0.0:
        raise SystemExit(f"{out.name}: reloaded model differs from the golden logits by {diff}")
    # 4.x view: only rope_theta / rope_scaling.
    cfg = json.loads((out / "config.json").read_text())
    legacy = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    rp = dict(legacy.get("rope_scaling") or {"rope_type": "default"}, rope_theta=legacy["rope_theta"])
    assert rp == {**(cfg["rope_parameters"])}, (rp, cfg["rope_parameters"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=GOLDEN, help="golden root (default Tests/CoreTests/Golden)")
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="only these variants")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    for name in args.variant or list(VARIANTS):
        info = write_variant(name, args.out)
        print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
