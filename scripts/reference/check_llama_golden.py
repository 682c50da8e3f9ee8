#!/usr/bin/env python3
"""Independent check of the tiny golden files: a from-scratch float64 Llama forward
(no transformers) from config.json + model.safetensors must reproduce the golden
logits and loss. It also spells out the conventions the Swift core must follow:
rotate-half RoPE, llama3 frequency rescaling, GQA head sharing (query head h reads
kv head h // (heads / kv_heads)), RMSNorm in float, SiLU-gated MLP.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

GOLDEN = Path(__file__).resolve().parents[2] / "Tests" / "CoreTests" / "Golden"


def inv_freq(cfg: dict, head_dim: int) -> torch.Tensor:
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta") or rope.get("rope_theta", 10000.0)
    f = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if rope.get("rope_type", rope.get("type", "default")) == "llama3":
        factor, lo, hi = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * f / factor + smooth * f
        f = torch.where(wavelen > old / lo, f / factor, torch.where(wavelen < old / hi, f, mid))
    return f


def forward(cfg: dict, w: dict, ids: torch.Tensor) -> torch.Tensor:
    w = {k: v.double() for k, v in w.items()}
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim") or D // H
    eps = cfg["rms_norm_eps"]
    B, T = ids.shape

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g

    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq(cfg, hd)[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(x):  # x [B, heads, T, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][ids.long()]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def main() -> int:
    worst = 0.0
    for d in sorted(p for p in GOLDEN.iterdir() if (p / "golden.safetensors").exists()):
        cfg = json.loads((d / "config.json").read_text())
        g = load_file(d / "golden.safetensors")
        logits = forward(cfg, load_file(d / "model.safetensors"), g["input_ids"])
        V = logits.shape[-1]
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), g["targets"].long().view(-1), ignore_index=-100)
        dl = (logits - g["logits"].double()).abs().max().item()
        dloss = abs(loss.item() - g["loss"].item())
        worst = max(worst, dl)
        print(f"{d.name}: max |logits - golden| = {dl:.3e}, |loss - golden| = {dloss:.3e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
