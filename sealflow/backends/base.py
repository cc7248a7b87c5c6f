"""The generation backend interface shared by sampling, scoring and evaluation.

Two families implement it: Hugging Face ``generate`` (CPU and GPU) and vLLM
(offline engine, or an OpenAI-compatible server). Callers batch a whole shard's
requests into one :meth:`Backend.generate` call and let the backend schedule them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    adapter: str | None = None  # folder of a LoRA adapter (peft format); None = the base model
    n: int = 1  # samples for this prompt
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class BackendSettings:
    name: str = "hf"  # hf | vllm | server | auto
    batch_size: int = 32
    base_url: str | None = None
    max_loras: int = 8
    max_lora_rank: int = 64
    gpu_memory_utilization: float = 0.85
    max_model_len: int = 2048

    @classmethod
    def from_config(cls, cfg: dict | None) -> "BackendSettings":
        cfg = cfg or {}
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})


class Backend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        """Completions (prompt excluded) per request: ``requests[i].n`` strings each."""

    def close(self) -> None:
        """Release the model / engine."""


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string (backends must agree on this)."""
    cut = len(text)
    for marker in stop:
        position = text.find(marker)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]
