#!/usr/bin/env python3
"""Golden files for FactSweep's adapter methods (LoRA, rsLoRA, IA³, QLoRA), made with PEFT.

The base models are the committed tiny random Llamas (Tests/CoreTests/Golden/tiny-tied and
tiny-untied-llama3, written by make_llama_golden.py), loaded with transformers in float32 with
eager attention. For each configuration this writes Tests/CoreTests/Golden/peft-<name>/:

  adapter_init.safetensors  the initial adapter, under PEFT's own key names (the keys
                            get_peft_model_state_dict / save_pretrained write), e.g.
                              base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight  [r, in]
                              base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight  [out, r]
                              base_model.model.model.layers.0.self_attn.k_proj.ia3_l          [out, 1]
                              base_model.model.model.layers.0.mlp.down_proj.ia3_l             [1, in]
                            Not PEFT's default init (B = 0, l = 1 would make most gradients
                            zero): every tensor is drawn from a seeded generator, in sorted key
                            order: LoRA A and B ~ 0.1·N(0,1), IA³ l = 1 + 0.1·N(0,1). The PEFT
                            model loads this file with set_peft_model_state_dict, and so should
                            the Swift side.
  adapter_config.json       the adapter config as PEFT's save_pretrained writes it (keys sorted,
                            list values that PEFT holds as sets sorted, base_model_name_or_path
                            set to the repo-relative base directory).
  golden.safetensors        inputs, loss, gradients and 10 AdamW steps over the adapter only.

Tensors in golden.safetensors (B=2, T=10, V=300; <key> is a PEFT adapter key as above):

  input_ids      I32 [B,T]   random ids in [1, V); row 1 ends with 3 pad tokens (id 0)
  targets        I32 [B,T]   label of logits[b,t] (already shifted), -100 where masked
                             (the same make_batch as make_llama_golden.py, with this config's seed)
  logits         F32 [B,T,V] first forward pass (plain causal attention, no attention_mask)
  loss           F32 [1]     F.cross_entropy(logits.view(-1,V), targets.view(-1), ignore_index=-100)
  grad.<key>     F32         d loss / d adapter tensor at the initial point (shape of the tensor)
  step_losses    F32 [10]    loss before each AdamW step (step_losses[0] == loss)
  grad_norm      F32 [10]    total adapter gradient norm before clipping at each step
  final.<key>    F32         adapter tensors after the 10 steps

peft-qlora adds the base weights as bitsandbytes quantised them (for checking FactSweep's NF4
quantiser bit for bit), for every quantised module <m> (e.g. model.layers.0.mlp.down_proj):

  nf4.<m>.weight                   U8  [out*in/2]  4-bit codes of the row-major flattened weight,
                                                   element 2i in the high nibble of byte i
  nf4.<m>.weight.absmax            U8  [out*in/64] 8-bit code of each 64-value block's absmax
  nf4.<m>.weight.nested_absmax     F32 [ceil(blocks/256)]  scale of each 256-block of absmax codes
  nf4.<m>.weight.nested_offset     F32 [1]         mean of the fp32 absmax, subtracted before the
                                                   8-bit quantisation
  nf4.quant_map                    F32 [16]        the NF4 code book
  nf4.nested_quant_map             F32 [256]       bitsandbytes' signed dynamic 8-bit map

  dequantised w[j] = quant_map[code(j)] · (nested_quant_map[absmax[j/64]] · nested_absmax[j/16384]
                     + nested_offset)   (j the flat index; every product and sum rounded to float32)

The QLoRA base is made by transformers' BitsAndBytesConfig(load_in_4bit=True, nf4, double quant,
float32 compute) on the CPU, quantising every Linear but lm_head from the float32 file values (the
script checks the codes against bitsandbytes.functional.quantize_4bit of those values, bit for
bit). bitsandbytes 0.50.2's CPU dequantisation kernel gets down_proj (in_features 96, not a
multiple of 64) wrong; the script replaces it by bitsandbytes' own PyTorch reference (see
bnb_reference.py) and checks the result against an fp32 LoRA model whose weights are the formula
above applied to the stored nf4.* tensors.

Each step: zero_grad, forward, loss, backward, clip_grad_norm_(adapter, 1.0), AdamW.step, with
torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0) over the adapter
tensors only (the base is frozen). LoRA dropout is 0. The model is in training mode throughout
(all Llama dropouts are 0; for QLoRA it keeps bitsandbytes on its float32 dequantise-then-matmul
path). Hyperparameters, resolved target modules and versions are in the string metadata.

Run with the venv described in README.md: python scripts/reference/make_peft_golden.py
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import peft
from peft import IA3Config, LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from bnb_reference import cpu_kernel_differs, use_reference_dequantize
from make_llama_golden import make_batch
from safetensors_io import save_sorted

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "Tests" / "CoreTests" / "Golden"

STEPS = 10
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, CLIP = 1e-2, 0.9, 0.999, 1e-8, 0.0, 1.0
INIT_STD = 0.1
NF4_BLOCKSIZE = 64
SIZE_LIMIT = 300 * 1024  # bytes per golden directory

# name -> settings. targets None = PEFT's default for model_type "llama".
CONFIGS = {
    "peft-lora": dict(base="tiny-tied", method="lora", r=4, alpha=8, targets=None, rslora=False,
                      nf4=False, seed=2001),
    "peft-lora-all": dict(base="tiny-untied-llama3", method="lora", r=2, alpha=4, targets="all-linear",
                          rslora=True, nf4=False, seed=2002),
    "peft-ia3": dict(base="tiny-tied", method="ia3", targets=None, nf4=False, seed=2003),
    "peft-qlora": dict(base="tiny-tied", method="lora", r=4, alpha=8, targets=None, rslora=False,
                       nf4=True, seed=2004),
}


def load_base(base: str, nf4: bool):
    kwargs = dict(dtype=torch.float32, attn_implementation="eager")
    if nf4:
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = "cpu"
    model = AutoModelForCausalLM.from_pretrained(GOLDEN / base, **kwargs)
    assert model.config._attn_implementation == "eager"
    return model


def peft_config(cfg: dict):
    if cfg["method"] == "lora":
        return LoraConfig(r=cfg["r"], lora_alpha=cfg["alpha"], target_modules=cfg["targets"],
                          use_rslora=cfg["rslora"], lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    if cfg["method"] == "ia3":
        return IA3Config(task_type="CAUSAL_LM")  # defaults for llama: k_proj, v_proj, down_proj (ff)
    raise ValueError(cfg["method"])


def adapter_keys(model) -> dict[str, torch.nn.Parameter]:
    """PEFT key (as get_peft_model_state_dict writes it) -> trainable parameter."""
    state = get_peft_model_state_dict(model)
    by_ptr = {p.data_ptr(): (n, p) for n, p in model.named_parameters() if p.requires_grad}
    out = {}
    for key, t in state.items():
        name, p = by_ptr.pop(t.data_ptr())
        assert name.replace(".default", "") == key, (name, key)
        assert p.shape == t.shape
        out[key] = p
    assert not by_ptr, f"trainable parameters outside the adapter: {sorted(n for n, _ in by_ptr.values())}"
    return dict(sorted(out.items()))


def initial_adapter(keys: dict[str, torch.nn.Parameter], gen: torch.Generator) -> dict[str, torch.Tensor]:
    init = {}
    for key, p in keys.items():  # sorted key order
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        init[key] = (1.0 + INIT_STD * noise) if key.endswith("ia3_l") else INIT_STD * noise
    return init


def load_adapter(model, init: dict[str, torch.Tensor]) -> None:
    result = set_peft_model_state_dict(model, init)
    unexpected = getattr(result, "unexpected_keys", [])
    assert not unexpected, unexpected
    now = get_peft_model_state_dict(model)
    assert sorted(now) == sorted(init)
    for k in init:
        assert torch.equal(now[k], init[k]), k


def compute_loss(model, ids, targets):
    logits = model(input_ids=ids).logits  # no attention_mask: plain causal attention
    V = logits.shape[-1]
    return logits, F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)


def train(model, keys, ids, targets) -> dict[str, torch.Tensor]:
    params = list(keys.values())
    opt = torch.optim.AdamW(params, lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WEIGHT_DECAY)
    tensors: dict[str, torch.Tensor] = {}
    step_losses, grad_norms = [], []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits, loss = compute_loss(model, ids, targets)
        loss.backward()
        if step == 0:
            tensors["logits"] = logits.detach().clone()
            tensors["loss"] = loss.detach().reshape(1).clone()
            for k, p in keys.items():
                assert p.grad is not None and p.grad.abs().max() > 0, f"no gradient for {k}"
                tensors[f"grad.{k}"] = p.grad.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        step_losses.append(loss.item())
        grad_norms.append(norm.item())
        opt.step()
    tensors["step_losses"] = torch.tensor(step_losses, dtype=torch.float32)
    tensors["grad_norm"] = torch.tensor(grad_norms, dtype=torch.float32)
    for k, p in keys.items():
        tensors[f"final.{k}"] = p.detach().clone()
    return tensors


def linear_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


# --- NF4 (QLoRA) -------------------------------------------------------------------------------

def nf4_state(base_model, base: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The quantised base weights, checked to be bitsandbytes' quantisation of the fp32 file values."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as BF

    fp32 = load_file(GOLDEN / base / "model.safetensors")
    tensors: dict[str, torch.Tensor] = {}
    quantised, other_sources_differ, cpu_kernel_wrong = [], [], []
    for name, m in base_model.named_modules():
        if not isinstance(m, bnb.nn.Linear4bit):
            continue
        w, qs = m.weight, m.weight.quant_state
        assert not getattr(qs, "packing_format_for_cpu", False), "weights repacked for the bf16 CPU kernel"
        assert (qs.quant_type, qs.blocksize, qs.nested, qs.dtype) == ("nf4", NF4_BLOCKSIZE, True, torch.float32)
        assert qs.state2.blocksize == 256 and m.compute_dtype == torch.float32
        assert tuple(qs.shape) == tuple(fp32[name + ".weight"].shape)

        def same(src: torch.Tensor) -> bool:
            packed, st = BF.quantize_4bit(src, blocksize=NF4_BLOCKSIZE, compress_statistics=True, quant_type="nf4")
            return (torch.equal(packed.flatten(), w.data.flatten()) and torch.equal(st.absmax, qs.absmax)
                    and torch.equal(st.state2.absmax, qs.state2.absmax) and torch.equal(st.offset, qs.offset))

        if cpu_kernel_differs(w.data, qs) != 0.0:
            cpu_kernel_wrong.append(name)
        source = fp32[name + ".weight"]
        assert same(source), f"{name}: bitsandbytes did not quantise the float32 file values"
        if not (same(source.to(torch.bfloat16)) and same(source.to(torch.float16))):
            other_sources_differ.append(name)
        quantised.append(name)
        tensors[f"nf4.{name}.weight"] = w.data.flatten().clone()
        tensors[f"nf4.{name}.weight.absmax"] = qs.absmax.clone()
        tensors[f"nf4.{name}.weight.nested_absmax"] = qs.state2.absmax.clone()
        tensors[f"nf4.{name}.weight.nested_offset"] = qs.offset.reshape(1).clone().float()
        tensors["nf4.quant_map"] = qs.code.clone()
        tensors["nf4.nested_quant_map"] = qs.state2.code.clone()
    # Linear4bit subclasses torch.nn.Linear: everything but lm_head must be quantised.
    unquantised = [n for n in linear_names(base_model) if n not in quantised]
    assert unquantised == ["lm_head"], unquantised
    info = {"quantised": quantised, "quantised_from": "float32 (bit-identical to quantize_4bit of the file values)",
            "bf16_or_fp16_source_would_differ_in": other_sources_differ,
            "bnb_cpu_dequantize_kernel_wrong_for": cpu_kernel_wrong}
    return tensors, info


def dequantise_golden(g: dict[str, torch.Tensor], name: str, shape) -> torch.Tensor:
    """The weight described by the nf4.<name>.* tensors, in plain PyTorch (flat blocks)."""
    key = f"nf4.{name}.weight"
    packed = g[key].long()
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)
    absmax = g["nf4.nested_quant_map"][g[key + ".absmax"].long()]
    absmax = absmax * g[key + ".nested_absmax"].repeat_interleave(256)[: absmax.numel()] + g[key + ".nested_offset"]
    return (g["nf4.quant_map"][codes] * absmax.repeat_interleave(NF4_BLOCKSIZE)).reshape(shape)


def dequantised_reference(cfg: dict, init, ids, targets, golden: dict[str, torch.Tensor]) -> dict:
    """QLoRA == LoRA on an fp32 model whose Linear weights are the golden's NF4 weights dequantised."""
    model = load_base(cfg["base"], nf4=False)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and name != "lm_head":
                m.weight.copy_(dequantise_golden(golden, name, m.weight.shape))
    model = get_peft_model(model, peft_config(cfg))
    model.train()
    keys = adapter_keys(model)
    load_adapter(model, init)
    _, loss = compute_loss(model, ids, targets)
    loss.backward()
    grad_diff = max((p.grad - golden[f"grad.{k}"]).abs().max().item() for k, p in keys.items())
    return {"loss_diff": abs(loss.item() - golden["loss"].item()), "max_grad_diff": grad_diff}


# --- one configuration -------------------------------------------------------------------------

def normalised_adapter_config(model, base: str) -> str:
    """adapter_config.json as save_pretrained writes it, made byte-reproducible."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        cfg = json.loads((Path(tmp) / "adapter_config.json").read_text())
        saved = load_file(str(Path(tmp) / "adapter_model.safetensors"))
    cfg["base_model_name_or_path"] = f"Tests/CoreTests/Golden/{base}"  # not this machine's path
    for k in ("target_modules", "feedforward_modules", "modules_to_save", "exclude_modules"):
        if isinstance(cfg.get(k), list):  # PEFT holds these as sets: list order is hash order
            cfg[k] = sorted(cfg[k])
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n", saved


def write_config(name: str, out_root: Path) -> dict:
    cfg = CONFIGS[name]
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])

    base_model = load_base(cfg["base"], cfg["nf4"])
    nf4_tensors, nf4_info = nf4_state(base_model, cfg["base"]) if cfg["nf4"] else ({}, {})
    if cfg["nf4"]:
        use_reference_dequantize()  # see bnb_reference.py
    model = get_peft_model(base_model, peft_config(cfg))
    model.train()  # dropouts are 0; keeps bnb off its bf16 inference kernel
    pc = model.peft_config["default"]
    keys = adapter_keys(model)
    init = initial_adapter(keys, gen)
    load_adapter(model, init)
    ids, targets = make_batch(model.config.vocab_size, gen)
    adapted = sorted({k.removeprefix("base_model.model.").rsplit(".", 2 if k.endswith("weight") else 1)[0]
                      for k in keys})
    assert "lm_head" not in adapted

    tensors = {"input_ids": ids.to(torch.int32), "targets": targets.to(torch.int32)}
    tensors.update(train(model, keys, ids, targets))
    tensors.update(nf4_tensors)

    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config_json, saved = normalised_adapter_config(model, cfg["base"])
    # save_pretrained writes exactly the keys of adapter_init (values: the trained ones now).
    assert sorted(saved) == sorted(init), (sorted(saved), sorted(init))
    for k in saved:
        assert torch.equal(saved[k], tensors[f"final.{k}"]), k
    (out / "adapter_config.json").write_text(config_json)
    save_sorted(init, out / "adapter_init.safetensors", {"format": "pt"})

    metadata = {
        "config": name,
        "base": cfg["base"],
        "method": cfg["method"],
        "seed": str(cfg["seed"]),
        "init": f"sorted keys; lora_A, lora_B ~ {INIT_STD}*N(0,1); ia3_l = 1 + {INIT_STD}*N(0,1)",
        "adapted_modules": ",".join(adapted),
        "target_modules": ",".join(sorted(pc.target_modules)) if not isinstance(pc.target_modules, str)
        else pc.target_modules,
        "lr": repr(LR), "beta1": repr(BETA1), "beta2": repr(BETA2), "eps": repr(EPS),
        "weight_decay": repr(WEIGHT_DECAY), "clip": repr(CLIP), "steps": str(STEPS),
        "optimizer": "torch.optim.AdamW over the adapter tensors only; base frozen",
        "ignore_index": "-100",
        "attention_mask": "none (plain causal attention; pad positions are ordinary id-0 tokens)",
        "targets": "already shifted: targets[b,t] is the label of logits[b,t]",
        "loss": "mean cross-entropy over unmasked positions of the whole batch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
    if cfg["method"] == "lora":
        scaling = cfg["alpha"] / (math.sqrt(cfg["r"]) if cfg["rslora"] else cfg["r"])
        metadata.update({"r": str(cfg["r"]), "lora_alpha": str(cfg["alpha"]), "lora_dropout": "0.0",
                         "use_rslora": str(cfg["rslora"]).lower(), "scaling": repr(scaling),
                         "lora_forward": "base(x) + lora_B(lora_A(x)) * scaling"})
        if cfg["targets"] == "all-linear":
            metadata["target_modules_requested"] = "all-linear"
    else:
        metadata.update({"feedforward_modules": ",".join(sorted(pc.feedforward_modules)),
                         "ia3_forward": "attention targets: base(x) * l (l [out,1] per output); "
                                        "feedforward targets: base(x * l) (l [1,in] per input)"})
    if cfg["nf4"]:
        import bitsandbytes
        metadata.update({
            "bitsandbytes": bitsandbytes.__version__,
            "quantization": "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4', "
                            "bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32), device_map='cpu'",
            "quantized_modules": "every Linear except lm_head",
            "quantized_from": "float32 file values",
            "nf4_blocksize": str(NF4_BLOCKSIZE), "nested_blocksize": "256",
            "nf4_blocks": "over the row-major flattened weight (blocks may span rows)",
            "qlora_forward": "x @ dequantised(W).T in float32, then + LoRA (no bf16 kernel: training mode)",
            "dequantization": "flat 64-value blocks (bitsandbytes' PyTorch reference); bitsandbytes' CPU C kernel, "
                              "which takes floor(in/64) blocks per row, was replaced because it is wrong for "
                              "down_proj (in_features 96): " + ",".join(nf4_info["bnb_cpu_dequantize_kernel_wrong_for"]),
        })
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_sorted(tensors, out / "golden.safetensors", metadata)

    info = {"config": name, "adapted_modules": adapted, "target_modules": metadata["target_modules"],
            "loss": tensors["loss"].item(), "step_losses": tensors["step_losses"].tolist(),
            "grad_norm": tensors["grad_norm"].tolist(), **nf4_info}
    if cfg["nf4"]:
        info["vs_fp32_lora_on_dequantised_weights"] = dequantised_reference(cfg, init, ids, targets, tensors)
    info["files"] = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    total = sum(info["files"].values())
    assert total < SIZE_LIMIT, f"{name}: {total} bytes"
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=GOLDEN, help="golden root (default Tests/CoreTests/Golden)")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="only these configurations")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    for name in args.config or list(CONFIGS):
        print(json.dumps(write_config(name, args.out), indent=1))


if __name__ == "__main__":
    main()
