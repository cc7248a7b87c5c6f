"""An all-zero LoRA adapter: the base model, expressed as an adapter.

vLLM (at least the CPU build, 0.32) mis-routes requests *without* an adapter when
they share a batch with adapter requests: their LoRA index is -1 and the CPU kernels
read slot -1, i.e. the LAST adapter slot, so the "base" request silently runs with
someone else's adapter. Sending base requests through an adapter whose weights are
exactly zero makes every request carry a real slot index, and a zero ``B @ A`` adds
nothing, so the output equals the base model's.

The adapter is written straight from the model config (module shapes come from a
model instantiated on the ``meta`` device), so no weights are loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# Attention projections first: every architecture vLLM supports LoRA on has some of these.
_PREFERRED_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "c_attn", "query_key_value")


def _linear_shapes(model_path: str) -> dict[str, tuple[int, int]]:
    """``module name -> (in_features, out_features)`` of the model's Linear layers."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        name: (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }


def write_zero_adapter(model_path: str, out_dir: str | os.PathLike, rank: int = 8) -> Path:
    """Write a peft-format LoRA adapter for ``model_path`` whose A and B are all zero."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    shapes = _linear_shapes(model_path)
    leaves = {name.rsplit(".", 1)[-1] for name in shapes}
    targets = [t for t in _PREFERRED_TARGETS if t in leaves] or sorted(leaves)
    tensors = {}
    for name, (fan_in, fan_out) in shapes.items():
        if name.rsplit(".", 1)[-1] in targets:
            tensors[f"base_model.model.{name}.lora_A.weight"] = torch.zeros(rank, fan_in)
            tensors[f"base_model.model.{name}.lora_B.weight"] = torch.zeros(fan_out, rank)
    if not tensors:
        raise RuntimeError(f"no Linear layers to attach a LoRA to in {model_path}")
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(model_path),
        "r": rank,
        "lora_alpha": rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": targets,
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
        "inference_mode": True,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out
