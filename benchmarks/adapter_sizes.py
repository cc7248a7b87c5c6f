"""Bytes of one LoRA adapter of the paper models, computed from their shapes (no download).

A LoRA of rank r on a Linear layer (in -> out) holds r * (in + out) weights; an adapter
is the sum over its target modules in every layer. The models are instantiated on the
``meta`` device from their published shapes, so nothing is allocated.

    python benchmarks/adapter_sizes.py
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

MODELS = {
    "Qwen2.5-7B": Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                              num_key_value_heads=4, vocab_size=152064),
    "Llama-3.2-1B": LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                                num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True),
}
SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
FIVE = ("q_proj", "v_proj", "gate_proj", "down_proj", "up_proj")
ADAPTERS = [  # (what, model, r, targets)
    ("knowledge inner loop", "Qwen2.5-7B", 32, SEVEN),
    ("knowledge SFT (merged)", "Qwen2.5-7B", 64, SEVEN),
    ("ARC inner loop, authors' targets", "Llama-3.2-1B", 128, FIVE),
    ("ARC inner loop, all seven", "Llama-3.2-1B", 128, SEVEN),
]


def lora_weights(model: str, r: int, targets: tuple[str, ...]) -> int:
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(MODELS[model])
    return sum(r * (m.in_features + m.out_features) for name, m in net.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets)


if __name__ == "__main__":
    for what, model, r, targets in ADAPTERS:
        n = lora_weights(model, r, targets)
        print(f"{what:34s} {model:13s} r {r:3d} x{len(targets)}: {n / 1e6:6.2f}M weights, "
              f"float32 {4 * n / 1e6:6.1f} MB, bfloat16 {2 * n / 1e6:6.1f} MB")
