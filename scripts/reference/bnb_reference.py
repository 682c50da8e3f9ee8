"""bitsandbytes NF4 on the CPU, dequantised with bitsandbytes' reference semantics.

bitsandbytes quantises a weight in blocks of `blocksize` consecutive values of the row-major
flattened matrix (its PyTorch default backend, its CUDA kernels and FactSweep all do). The CPU
backend of bitsandbytes 0.50.2 dequantises with a C kernel that instead takes
floor(in_features / blocksize) blocks per row: when in_features is not a multiple of the
blocksize (the tiny Llamas' down_proj: in_features 96, blocksize 64) rows after the first use
the wrong absmax, so the CPU forward pass does not compute the weights bitsandbytes quantised.
When in_features is a multiple of the blocksize the two agree bit for bit.

use_reference_dequantize() re-registers bitsandbytes::dequantize_4bit for the CPU with the
flat-block PyTorch implementation bitsandbytes' CPU backend itself falls back to for odd shapes
(bitsandbytes.backends.default.ops._dequantize_4bit_compute, run eagerly).
"""
from __future__ import annotations

import torch


def reference_dequantize_4bit(A, absmax, blocksize, quant_type, shape, dtype):
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code

    compute = getattr(_dequantize_4bit_compute, "__wrapped__", _dequantize_4bit_compute)  # not torch.compile'd
    if A.dtype != torch.uint8:
        A = A.view(torch.uint8)
    code = _get_4bit_code(quant_type, A.device)
    return compute(A.reshape(-1), absmax.float(), code, blocksize, shape, dtype)


def cpu_kernel_differs(packed: torch.Tensor, quant_state) -> float:
    """max |CPU kernel - reference| for one quantised weight (call before use_reference_dequantize)."""
    import bitsandbytes.functional as BF

    absmax = quant_state.absmax
    if quant_state.nested:
        absmax = BF.dequantize_blockwise(quant_state.absmax, quant_state.state2) + quant_state.offset
    kernel = torch.ops.bitsandbytes.dequantize_4bit.default(
        packed, absmax, quant_state.blocksize, quant_state.quant_type, quant_state.shape, torch.float32)
    ref = reference_dequantize_4bit(packed, absmax, quant_state.blocksize, quant_state.quant_type,
                                    quant_state.shape, torch.float32)
    return (kernel - ref).abs().max().item()


_installed = False


def use_reference_dequantize() -> None:
    global _installed
    if _installed:
        return
    import bitsandbytes  # noqa: F401  (defines the op)

    torch.library.register_kernel("bitsandbytes::dequantize_4bit", "cpu")(reference_dequantize_4bit)
    _installed = True
