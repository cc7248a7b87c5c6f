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
    start_with_title: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "SamplingSettings":
        return cls(cfg["prompt"], int(cfg["k"]), float(cfg["temperature"]), float(cfg["top_p"]), int(cfg["max_new_tokens"]),
                   bool(cfg.get("start_with_title", False)))

    def forced_start(self, passage: Passage) -> str:
        """The text every self-edit of ``passage`` begins with: the title when ``start_with_title``.

        A small policy copies a line's subject from the line before it, but cannot yet
        retrieve it from the title for the first line; forcing that first subject turns
        a self-edit about invented entities into one about the passage. The record keeps
        the family's prompt and the whole self-edit (forced start included), so the SFT
        step teaches the policy to write the title itself."""
        return passage.title.strip() if self.start_with_title else ""

    def metadata(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "prompt_family": self.prompt, "k": self.k, "start_with_title": self.start_with_title}


def sample_whole_self_edits(backend: Backend, tokenizer, passages: Sequence[Passage], seeds: Sequence[int],
                            settings: SamplingSettings) -> tuple[list[str], list[GenerationRequest], list[list[str]]]:
    """The family's prompt per passage, the requests sent (each continuing its forced start),
    and the backend's answers with the forced start put back in front: whole self-edits."""
    prompts = [self_edit_prompt(settings.prompt, p, tokenizer) for p in passages]
    starts = [settings.forced_start(p) for p in passages]
    requests = [GenerationRequest(prompt + start, n=settings.k, max_new_tokens=settings.max_new_tokens,
                                  temperature=settings.temperature, top_p=settings.top_p, seed=s)
                for prompt, start, s in zip(prompts, starts, seeds)]
    outputs = backend.generate(requests)
    return prompts, requests, [[start + text for text in texts] for start, texts in zip(starts, outputs)]


def sample_self_edits(backend: Backend, tokenizer, passages: Sequence[Passage], settings: SamplingSettings,
                      round_: int, shard: int, seed: int, policy: str) -> list[SelfEdit]:
    """``k`` self-edits per passage, all requested in one backend call."""
    seeds = [derived_seed(seed, round_, shard, pos) for pos in range(len(passages))]
    prompts, requests, texts = sample_whole_self_edits(backend, tokenizer, passages, seeds, settings)
    outputs = completions_of(requests, texts)
    sampling = settings.metadata()
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
