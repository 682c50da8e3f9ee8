#!/usr/bin/env python3
"""Dump a small reference of SmolLM2's attention weights as Hugging Face sees them.

transformers' own GGUF loader (`from_pretrained(..., gguf_file=...)`) dequantises
the file and undoes llama.cpp's interleaved-RoPE row permutation of attn_q and
attn_k. Its result is the ground truth for FactSweep's GGUF reader: if our
unpermute is wrong, whole rows land in the wrong place and the row sums and
sampled rows written here no longer match.

Needs: transformers, torch, gguf, safetensors (see requirements.txt).
Usage: dump_gguf_reference.py MODEL.gguf OUT.safetensors
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

# Rows chosen to straddle head boundaries and both halves of a head, where a
# wrong (un)permutation moves rows.
Q_ROWS = [0, 1, 31, 32, 33, 63, 64, 575]
K_ROWS = [0, 1, 32, 63, 64, 191]


def main(gguf_path: str, out_path: str) -> None:
    directory, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    layer = model.model.layers[0].self_attn
    q = layer.q_proj.weight.detach().numpy().astype(np.float32)
    k = layer.k_proj.weight.detach().numpy().astype(np.float32)
    v = layer.v_proj.weight.detach().numpy().astype(np.float32)
    down = model.model.layers[0].mlp.down_proj.weight.detach().numpy().astype(np.float32)
    tensors = {
        "q_proj.rows": np.ascontiguousarray(q[Q_ROWS]),
        "q_proj.row_indices": np.array(Q_ROWS, dtype=np.int32),
        "q_proj.row_sums": q.sum(axis=1, dtype=np.float64).astype(np.float32),
        "k_proj.rows": np.ascontiguousarray(k[K_ROWS]),
        "k_proj.row_indices": np.array(K_ROWS, dtype=np.int32),
        "k_proj.row_sums": k.sum(axis=1, dtype=np.float64).astype(np.float32),
        # v and down are not permuted: a check that only q and k are touched.
        "v_proj.row_sums": v.sum(axis=1, dtype=np.float64).astype(np.float32),
        "down_proj.row_sums": down.sum(axis=1, dtype=np.float64).astype(np.float32),
    }
    save_file(tensors, out_path, metadata={"source": name, "layer": "0", "loader": "transformers gguf_file"})
    print(f"wrote {out_path}: q {q.shape}, k {k.shape}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
