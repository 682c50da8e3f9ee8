#!/usr/bin/env python3
"""NF4 golden file: bitsandbytes' 4-bit NormalFloat quantisation of fixed-seed fp32 matrices.

Writes Tests/CoreTests/Golden/nf4/nf4.safetensors. For each case (prefix `main.`,
`odd.`, `zerotail.`) it holds what `bitsandbytes.functional.quantize_4bit(W,
blocksize=64, quant_type="nf4", compress_statistics=True)` makes of an fp32 CPU
tensor W, named as bitsandbytes serialises a QuantState:

  input              F32 [rows, cols]   W
  weight             U8  [(n+1)/2]      packed codes, first element in the high nibble
  absmax             U8  [blocks]       per-64-block absmax, 8-bit code (nested)
  nested_absmax      F32 [ceil(blocks/256)]  absmax of each 256-block of (absmax - offset)
  nested_offset      F32 [1]            mean of the fp32 absmax (torch's float mean)
  absmax_fp32        F32 [blocks]       the absmax before double quantisation
  absmax_dequantized F32 [blocks]       dequantize_blockwise(absmax, nested) + offset
  dequantized        F32 [rows, cols]   dequantize_4bit(weight, state)

plus `quant_map` (F32 [16], the NF4 code book) and `nested_quant_map` (F32 [256],
create_dynamic_map(signed=True)), which every case shares, and `blockwise.input`,
`.codes` (U8) and `.absmax`: `quantize_blockwise(input, blocksize=256)`, the nested
quantiser on its own, probed where its lookup table departs from the nearest code;
and `sums.count` (I32), `sums.value`, `sums.mean`: torch's Float32 sum and mean of the
first `count` values of `sum_probe` (the absmax mean's order of additions).

Cases: `main` [130, 128] has 260 blocks, so the nested absmax has one full 256-block
and a partial one; it has a block of zeros (absmax 0), scattered exact zeros, two
large outliers, a block whose values sit exactly on the NF4 bucket midpoints and one
float either side (the tie rule), and a block of values whose codes would change if
full blocks were scaled by division instead of by a reciprocal. `odd` [5, 37] has an
odd element count (a padding nibble), blocks that straddle rows and a short last
block, which bitsandbytes scales by division (again with values that tell).
`zerotail` [1, 70] ends in a short block of zeros, whose absmax bitsandbytes clamps
to 1e-38.

Every column count here is odd or a multiple of 64: bitsandbytes 0.50.2's AVX-512
CPU dequantize_4bit indexes absmax per row (row * (cols // 64) + col // 64) when
cols is a multiple of 16, which is wrong when cols is not also a multiple of 64, while its quantiser and its
portable and CUDA dequantisers use flattened blocks. This script checks `dequantized`
against a flattened-order recomputation and refuses to write on a mismatch.

With --smollm2 it also writes smollm2_down_proj.json: FNV-1a 64 hashes of what
bitsandbytes makes of layer 0's mlp.down_proj of models/smollm2-135m-instruct
(dequantised from the GGUF by gguf-py, as FactSweep's reader does bit for bit): the
packed codes, the absmax codes, the nested absmax, the dequantised matrix, and the
offset's bits. Hashes keep a real 576 x 1536 matrix's check to a few hundred bytes.

Run with the venv described in README.md (torch, bitsandbytes with its CPU library;
gguf for --smollm2):
    python scripts/reference/make_nf4_golden.py [--smollm2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import bitsandbytes
import bitsandbytes.functional as F

from safetensors_io import save_sorted

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "CoreTests" / "Golden" / "nf4"
BLOCK = 64


def nf4_midpoints() -> torch.Tensor:
    code = F.get_4bit_type("nf4", device="cpu")
    return (code[:-1] + code[1:]) / 2


def straddlers(absmax: float) -> torch.Tensor:
    """Values near absmax * midpoint whose code differs between x * (1 / absmax)
    and x / absmax: they show which of the two bitsandbytes uses where."""
    mid = nf4_midpoints()
    am = torch.tensor(absmax)
    near, up, down = [mid * am], mid * am, mid * am
    for _ in range(6):
        up, down = torch.nextafter(up, torch.tensor(10.0)), torch.nextafter(down, torch.tensor(-10.0))
        near += [up, down]
    x = torch.cat(near)
    differ = torch.bucketize(x * (1 / am), mid) != torch.bucketize(x / am, mid)
    assert differ.sum() >= 3, "no values to tell the two scalings apart"
    return torch.sort(x[differ]).values[:6]


def sample_main(gen: torch.Generator) -> torch.Tensor:
    rows, cols = 130, 128
    w = torch.randn(rows, cols, generator=gen) * (0.01 + 0.2 * torch.rand(rows, 1, generator=gen))
    flat = w.view(-1)
    flat[3 * BLOCK:4 * BLOCK] = 0  # a block of zeros: absmax 0
    flat[torch.randint(0, flat.numel(), (40,), generator=gen)] = 0
    w[7, 5] = 40.0  # outliers dominate their blocks and the absmax mean
    w[50, 100] = -35.0
    # Block 10: absmax 1, so the scaled values are the stored ones: every midpoint,
    # the float above and below it, and the negated midpoints.
    mid = nf4_midpoints()
    tie = flat[10 * BLOCK:11 * BLOCK]
    tie.zero_()
    tie[0] = 1.0
    tie[1:16] = mid
    tie[16:31] = torch.nextafter(mid, torch.tensor(2.0))
    tie[31:46] = torch.nextafter(mid, torch.tensor(-2.0))
    tie[46:61] = -mid
    # Block 11: full blocks scale by a reciprocal; these values would code differently by division.
    rounding = flat[11 * BLOCK:12 * BLOCK]
    rounding[0] = 3.0
    near = straddlers(3.0)
    rounding[1:1 + near.numel()] = near
    return w


def sample_odd(gen: torch.Generator) -> torch.Tensor:
    w = torch.randn(5, 37, generator=gen) * 0.05
    w[2, 3] = 0
    # The short last block (elements 128..184) is scaled by division; these values would code
    # differently by a reciprocal.
    tail = w.view(-1)[2 * BLOCK:]
    tail[0] = 3.0
    near = straddlers(3.0)
    tail[1:1 + near.numel()] = near
    return w


def sample_blockwise(gen: torch.Generator) -> torch.Tensor:
    """Input for the nested 8-bit quantiser alone: 7 blocks of 256 that start with
    1.0 (so values are not rescaled) followed by every midpoint of the dynamic map
    and three floats either side of each, where the CPU library's 65536-bin lookup
    often picks another code than the nearest; then two blocks of normal values
    and a short block of zeros."""
    code = F.create_dynamic_map(signed=True)
    mid = (code[:-1] + code[1:]) * 0.5
    near, up, down = [mid], mid, mid
    for _ in range(3):
        up, down = torch.nextafter(up, torch.tensor(2.0)), torch.nextafter(down, torch.tensor(-2.0))
        near += [up, down]
    probes = torch.cat(near).view(7, 255)
    blocks = torch.cat([torch.ones(7, 1), probes], dim=1).view(-1)
    return torch.cat([blocks, torch.randn(512, generator=gen) * 0.3, torch.zeros(100)])


SUM_COUNTS = [1, 3, 4, 7, 8, 9, 31, 32, 33, 64, 255, 260, 1000, 4099, 13824, 20000, 32767]


def sum_probe(count: int) -> torch.Tensor:
    """Values both sides can make without a file: (i * 2654435761 mod 2^32 mod 100003) / 977."""
    i = torch.arange(count, dtype=torch.int64)
    return ((i * 2654435761) % (1 << 32) % 100003).float() / 977.0


def flattened_dequantize(packed: torch.Tensor, absmax: torch.Tensor, n: int) -> torch.Tensor:
    """The NF4 dequantisation in flattened block order, from first principles."""
    code = F.get_4bit_type("nf4", device="cpu")
    b = packed.view(-1).to(torch.int64)
    codes = torch.stack([b >> 4, b & 15], dim=1).view(-1)[:n]
    scale = absmax.repeat_interleave(BLOCK)[:n]
    return code[codes] * scale


def quantize_case(name: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    w = w.contiguous().float()
    packed, state = F.quantize_4bit(w, blocksize=BLOCK, quant_type="nf4", compress_statistics=True)
    assert state.nested and state.state2.blocksize == 256 and state.dtype == torch.float32
    _, absmax_fp32 = torch.ops.bitsandbytes.quantize_4bit.default(w, BLOCK, "nf4", torch.uint8)
    absmax_dq = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    dequantized = F.dequantize_4bit(packed, state)
    expected = flattened_dequantize(packed, absmax_dq, w.numel()).view_as(w)
    if not torch.equal(dequantized, expected):
        raise SystemExit(f"{name}: dequantize_4bit disagrees with flattened block order "
                         f"(max {(dequantized - expected).abs().max():.3g}); see the docstring")
    error = (dequantized - w).abs().max() / w.abs().max()
    assert error < 0.2, f"{name}: quantisation error {error}"
    return {
        f"{name}.input": w,
        f"{name}.weight": packed.view(-1),
        f"{name}.absmax": state.absmax,
        f"{name}.nested_absmax": state.state2.absmax,
        f"{name}.nested_offset": state.offset.reshape(1).float(),
        f"{name}.absmax_fp32": absmax_fp32,
        f"{name}.absmax_dequantized": absmax_dq,
        f"{name}.dequantized": dequantized,
    }


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def smollm2_down_proj(out: Path) -> None:
    import json

    from gguf import GGUFReader
    from gguf.quants import dequantize

    gguf_path = REPO / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    info = next(t for t in GGUFReader(gguf_path).tensors if t.name == "blk.0.ffn_down.weight")
    rows, cols = int(info.shape[1]), int(info.shape[0])  # GGUF lists dimensions innermost first
    w = torch.from_numpy(dequantize(info.data, info.tensor_type).reshape(rows, cols).astype("float32"))
    packed, state = F.quantize_4bit(w, blocksize=BLOCK, quant_type="nf4", compress_statistics=True)
    dequantized = F.dequantize_4bit(packed, state)
    assert torch.equal(dequantized, flattened_dequantize(
        packed, F.dequantize_blockwise(state.absmax, state.state2) + state.offset, w.numel()).view_as(w))
    record = {
        "tensor": "model.layers.0.mlp.down_proj.weight",
        "shape": [rows, cols],
        "input_fnv1a64": fnv1a64(w.numpy().tobytes()),
        "weight_fnv1a64": fnv1a64(packed.numpy().tobytes()),
        "absmax_fnv1a64": fnv1a64(state.absmax.numpy().tobytes()),
        "nested_absmax_fnv1a64": fnv1a64(state.state2.absmax.numpy().tobytes()),
        "nested_offset_bits": int(state.offset.float().view(torch.int32).item()) & 0xFFFFFFFF,
        "dequantized_fnv1a64": fnv1a64(dequantized.numpy().tobytes()),
        "relative_rms_error": float((dequantized - w).pow(2).mean().sqrt() / w.pow(2).mean().sqrt()),
    }
    path = out / "smollm2_down_proj.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--smollm2", action="store_true", help="also hash bnb's NF4 of a real SmolLM2 matrix")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(20260914)
    odd = sample_odd(gen)
    zerotail = torch.cat([torch.randn(1, 64, generator=gen), torch.zeros(1, 6)], dim=1)

    tensors: dict[str, torch.Tensor] = {}
    for name, w in [("main", sample_main(gen)), ("odd", odd), ("zerotail", zerotail)]:
        tensors.update(quantize_case(name, w))
    _, state = F.quantize_4bit(odd, blocksize=BLOCK, quant_type="nf4", compress_statistics=True)
    blockwise = sample_blockwise(gen)
    codes, nested = F.quantize_blockwise(blockwise, blocksize=256)
    tensors.update({"blockwise.input": blockwise, "blockwise.codes": codes, "blockwise.absmax": nested.absmax})
    probe = sum_probe(max(SUM_COUNTS))
    tensors["sums.count"] = torch.tensor(SUM_COUNTS, dtype=torch.int32)
    tensors["sums.value"] = torch.stack([probe[:n].sum() for n in SUM_COUNTS])
    tensors["sums.mean"] = torch.stack([probe[:n].mean() for n in SUM_COUNTS])
    tensors["quant_map"] = state.code
    tensors["nested_quant_map"] = state.state2.code

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "nf4.safetensors"
    save_sorted(tensors, path, {
        "script": "scripts/reference/make_nf4_golden.py",
        "bitsandbytes": bitsandbytes.__version__,
        "torch": torch.__version__,
        "quantize": "quantize_4bit(W fp32 CPU, blocksize=64, quant_type=nf4, compress_statistics=True)",
    })
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    if args.smollm2:
        smollm2_down_proj(args.out)


if __name__ == "__main__":
    main()
