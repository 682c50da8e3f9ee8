#!/usr/bin/env python3
"""Write the dequantisation golden files for FactSweep's GGUF reader.

Writes two small files into OUT_DIR (default Tests/CoreTests/Golden/quant):

  quant-types.ggufdata  (a GGUF file, named so that it is not taken for model weights) one fixed-seed tensor per supported type (F32, F16, BF16,
                      Q4_0, Q4_1, Q8_0, Q6_K) plus metadata of every GGUF value
                      type, written by gguf-py's GGUFWriter;
  expected.safetensors  the same tensors as float32, dequantised by gguf-py
                      (`gguf.quants.dequantize`), which is the reference.

gguf-py cannot quantise Q6_K, so this script has a plain quantiser for it
(per-16 sub-block scales, no error search); the reference value is still gguf-py's
dequantisation of those bytes. The expected file is written by hand (8-byte
header length, JSON header, raw little-endian data) to need only numpy.

Needs: gguf, numpy (see requirements.txt).
Usage: make_quant_golden.py [OUT_DIR]
"""
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize

QK_K = 256


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Quantise rows of float32 (length a multiple of 256) to Q6_K blocks.

    Block layout (210 bytes): ql[128] low nibbles, qh[64] high bit pairs,
    scales[16] int8, d float16. Value i of a block uses sub-block scale i // 16;
    within each half of 128 values, value l + 32k (k = 0..3) keeps its low
    nibble in ql[l + 32 (k % 2)] (low nibble for k < 2, high for k >= 2) and its
    top two bits at bit 2k of qh[l].
    """
    rows, cols = x.shape
    blocks = x.reshape(-1, QK_K).astype(np.float32)
    n = blocks.shape[0]
    groups = blocks.reshape(n, 16, 16)
    group_scale = np.abs(groups).max(axis=-1) / 31  # q in [-31, 31]
    d = (group_scale.max(axis=-1) / 127).astype(np.float16)
    d32 = d.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32[:, None] == 0, 0, np.round(group_scale / d32[:, None])).clip(-128, 127).astype(np.int8)
        step = (d32[:, None] * sc.astype(np.float32))[:, :, None]
        q = np.where(step == 0, 0, np.round(groups / step)).clip(-32, 31).astype(np.int32) + 32
    q = q.reshape(n, 2, 4, 32)  # (block, half, k, l)
    low, high = (q & 0x0F).astype(np.uint8), (q >> 4).astype(np.uint8)
    ql = np.empty((n, 2, 2, 32), dtype=np.uint8)  # (block, half, k % 2, l)
    ql[:, :, 0] = low[:, :, 0] | (low[:, :, 2] << 4)
    ql[:, :, 1] = low[:, :, 1] | (low[:, :, 3] << 4)
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    out = np.concatenate(
        [ql.reshape(n, 128), qh.reshape(n, 64), sc.view(np.uint8), d.reshape(n, 1).view(np.uint8)], axis=1)
    return out.reshape(rows, cols // QK_K * 210)


def sample(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Normal values with a different scale and offset per row, so that the
    block scales and minimums differ; one block of zeros checks d = 0."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    x *= rng.uniform(0.01, 2.0, size=(rows, 1)).astype(np.float32)
    x += rng.uniform(-0.5, 0.5, size=(rows, 1)).astype(np.float32)
    x[0, :32] = 0
    return x


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, array in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    blob = json.dumps(header, sort_keys=True).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def main(out_dir: str) -> None:
    rng = np.random.default_rng(20240611)
    os.makedirs(out_dir, exist_ok=True)
    writer = GGUFWriter(os.path.join(out_dir, "quant-types.ggufdata"), "factsweep-test")
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4_000_000_000)
    writer.add_int32("test.int32", -2_000_000_000)
    writer.add_float32("test.float32", 0.125)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo ▁world")
    writer.add_uint64("test.uint64", 2**40 + 1)
    writer.add_int64("test.int64", -(2**40))
    writer.add_float64("test.float64", -2.5)
    writer.add_array("test.strings", ["a", "βγ", "", "<|im_start|>"])
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.floats", [0.5, -1.5])

    expected: dict[str, np.ndarray] = {}
    plain = {"f32": (T.F32, 4, 64), "f16": (T.F16, 4, 64), "bf16": (T.BF16, 4, 64)}
    for name, (qtype, rows, cols) in plain.items():
        x = sample(rng, rows, cols)
        stored = quantize(x, qtype)
        writer.add_tensor(name, stored, raw_dtype=qtype if qtype == T.BF16 else None)
        expected[name] = dequantize(stored.view(np.uint8) if qtype == T.BF16 else stored, qtype).reshape(rows, cols)
    for name, (qtype, rows, cols) in {"q4_0": (T.Q4_0, 4, 128), "q4_1": (T.Q4_1, 4, 128), "q8_0": (T.Q8_0, 4, 128),
                                      "q6_k": (T.Q6_K, 3, 512)}.items():
        x = sample(rng, rows, cols)
        stored = quantize_q6_k(x) if qtype == T.Q6_K else quantize(x, qtype)
        writer.add_tensor(name, stored, raw_dtype=qtype)
        y = dequantize(stored, qtype).reshape(rows, cols).astype(np.float32)
        # A quantiser bug would make a golden file of garbage; refuse it.
        error = np.abs(y - x).max() / np.abs(x).max()
        assert error < 0.15, f"{name}: quantisation error {error}"
        expected[name] = y

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    write_safetensors(os.path.join(out_dir, "expected.safetensors"), expected,
                      {"source": "gguf-py dequantize of quant.gguf", "script": "scripts/reference/make_quant_golden.py"})
    print(f"wrote {out_dir}/quant-types.ggufdata and expected.safetensors")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/CoreTests/Golden/quant")
