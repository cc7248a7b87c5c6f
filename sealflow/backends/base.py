"""The generation backend interface shared by sampling, scoring and evaluation.

Two families implement it: Hugging Face ``generate`` (CPU and GPU) and vLLM
(offline engine, or an OpenAI-compatible server). Callers batch a whole shard's
requests into one :meth:`Backend.generate` call and let the backend schedule them.
"""

from __future__ import annotations

import math
import random
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
    # Guided decoding: when set, each completion is one of these strings, drawn by the
    # model's own probability of it (vLLM's "choice" structured output; greedy = the likeliest).
    choices: tuple[str, ...] = field(default_factory=tuple)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass
class BackendSettings:
    name: str = "hf"  # hf | vllm | server | auto
    batch_size: int = 32
    base_url: str | None = None
    max_loras: int = 8
    max_lora_rank: int = 64
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None  # None: the model's max_position_embeddings

    @classmethod
    def from_config(cls, cfg: dict | None) -> "BackendSettings":
        cfg = cfg or {}
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})


class Backend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        """Completions (prompt excluded) per request: ``requests[i].n`` strings each."""

    def close(self) -> None:
        """Release the model / engine."""


def draw_choices(logprobs: Sequence[float], n: int, temperature: float, top_p: float, seed: int) -> list[int]:
    """``n`` indices drawn from the choices' total log-probabilities, as token sampling draws
    tokens: temperature-scaled softmax, nucleus cut at ``top_p``; greedy when temperature is 0."""
    if not logprobs:
        raise ValueError("draw_choices needs at least one choice")
    if temperature <= 0:
        best = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
        return [best] * n
    top = max(logprobs)
    weights = [math.exp((lp - top) / temperature) for lp in logprobs]
    total = sum(weights)
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    kept, mass = [], 0.0
    for i in order:  # the smallest set whose probability reaches top_p
        kept.append(i)
        mass += weights[i] / total
        if mass >= top_p:
            break
    rng = random.Random(seed)
    return rng.choices(kept, weights=[weights[i] for i in kept], k=n)


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string (backends must agree on this)."""
    cut = len(text)
    for marker in stop:
        position = text.find(marker)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


def completions_of(requests: Sequence[GenerationRequest], outputs: Sequence[Sequence[str]]) -> list[list[str]]:
    """``outputs`` checked to hold ``request.n`` completions for every request.

    A backend that returns fewer is broken; an empty string in their place would pass for
    an empty self-edit (reward 0) without a word.
    """
    if len(outputs) != len(requests):
        raise RuntimeError(f"the backend answered {len(outputs)} of {len(requests)} requests")
    for index, (request, texts) in enumerate(zip(requests, outputs)):
        if len(texts) != request.n:
            raise RuntimeError(f"the backend returned {len(texts)} of {request.n} completions for request {index}")
    return [list(texts) for texts in outputs]
