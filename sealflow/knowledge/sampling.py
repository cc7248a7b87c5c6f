"""Sampling self-edits for a shard of passages (the "generate" step of a round)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..backends import Backend, GenerationRequest
from ..backends.base import completions_of
from ..ids import derived_seed, edit_id, round_prefix
from ..records import Passage, SelfEdit
from .prompts import self_edit_prompt
from .seal_layout import ImportReport, SealRecord, imported_edits


@dataclass(frozen=True)
class SamplingSettings:
    prompt: str = "implications"
    k: int = 5
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 256

    @classmethod
    def from_config(cls, cfg: dict) -> "SamplingSettings":
        return cls(cfg["prompt"], int(cfg["k"]), float(cfg["temperature"]), float(cfg["top_p"]), int(cfg["max_new_tokens"]))


def sample_self_edits(backend: Backend, tokenizer, passages: Sequence[Passage], settings: SamplingSettings,
                      round_: int, shard: int, seed: int, policy: str) -> list[SelfEdit]:
    """``k`` self-edits per passage, all requested in one backend call."""
    prompts = [self_edit_prompt(settings.prompt, p, tokenizer) for p in passages]
    seeds = [derived_seed(seed, round_, shard, pos) for pos in range(len(passages))]
    requests = [
        GenerationRequest(prompt, n=settings.k, max_new_tokens=settings.max_new_tokens,
                          temperature=settings.temperature, top_p=settings.top_p, seed=s)
        for prompt, s in zip(prompts, seeds)
    ]
    outputs = completions_of(requests, backend.generate(requests))
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p,
                "max_new_tokens": settings.max_new_tokens, "prompt_family": settings.prompt, "k": settings.k}
    edits = []
    for pos, (passage, prompt, s, completions) in enumerate(zip(passages, prompts, seeds, outputs)):
        for sample in range(settings.k):
            completion = completions[sample]
            edits.append(SelfEdit(
                id=edit_id(round_prefix(round_, shard), pos, sample), input_id=passage.id, sample=sample, prompt=prompt,
                completion=completion, round=round_, shard=shard, seed=s, sampling=sampling, policy=policy,
            ))
    return edits


def import_round_edits(records: Sequence[SealRecord], passages: Sequence[Passage], settings: SamplingSettings,
                       tokenizer, round_: int, shard: int, seed: int, path: str) -> tuple[list[SelfEdit], ImportReport]:
    """A shard's self-edits from a SEAL-layout file: the first ``k`` completions per passage,
    with the ids, slots and seeds sampling would give them, so the rest of the round is unchanged."""
    sampling = {"source": "file", "path": path, "k": settings.k, "prompt_family": settings.prompt}
    policy = f"file:{path}"

    def make(pos: int, passage: Passage, sample: int, prompt: str, completion: str) -> SelfEdit:
        return SelfEdit(id=edit_id(round_prefix(round_, shard), pos, sample), input_id=passage.id, sample=sample,
                        prompt=prompt, completion=completion, round=round_, shard=shard,
                        seed=derived_seed(seed, round_, shard, pos), sampling=sampling, policy=policy)

    return imported_edits(records, passages, settings.k, path, "knowledge.import_self_edits.path", settings.prompt,
                          lambda p: self_edit_prompt(settings.prompt, p, tokenizer), make, tokenizer)
