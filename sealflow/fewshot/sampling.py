"""Sampling ARC self-edits from a policy, and the exact texts the model reads.

Where the model's sequences start with a begin-of-text token (``sealflow.bos``), the
LoRA trainer (``lora.encode_example``) prepends it: a self-edit's stored ``prompt`` is
the text *after* that token, so the ReST-EM update trains on exactly what was sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..backends import Backend, GenerationRequest
from ..backends.base import completions_of
from ..bos import bos_text
from ..ids import derived_seed, edit_id
from ..records import SelfEdit
from .guided import DEFAULT_EPOCHS, DEFAULT_LEARNING_RATES, guided_completions
from .prompts import self_edit_prompt
from .tasks import ArcTask


@dataclass(frozen=True)
class SamplingSettings:
    k: int = 3
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 128
    chat_template: bool = True  # wrap the prompt in the tokenizer's chat template when it has one
    decoding: str = "free"  # free: the policy writes the whole text | guided: see guided.py
    learning_rates: tuple[float, ...] = DEFAULT_LEARNING_RATES  # guided decoding's choices
    epochs: tuple[int, ...] = DEFAULT_EPOCHS

    @classmethod
    def from_config(cls, cfg: dict) -> "SamplingSettings":
        guided = cfg["guided"]
        return cls(int(cfg["k"]), float(cfg["temperature"]), float(cfg["top_p"]), int(cfg["max_new_tokens"]),
                   bool(cfg["chat_template"]), str(cfg["decoding"]),
                   tuple(float(x) for x in guided["learning_rates"]), tuple(int(x) for x in guided["epochs"]))

    def record(self) -> dict[str, Any]:
        """What a self-edit stores about how it was sampled."""
        row: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p, "k": self.k,
                               "max_new_tokens": self.max_new_tokens, "chat_template": self.chat_template,
                               "decoding": self.decoding}
        if self.decoding == "guided":
            row.update(learning_rates=list(self.learning_rates), epochs=list(self.epochs))
        return row


def with_bos(tokenizer: Any, text: str) -> str:
    return bos_text(tokenizer) + text


def policy_prompt(task: ArcTask, tokenizer: Any, chat: bool = True) -> str:
    """The self-edit prompt (chat-formatted for chat models), without a leading BOS."""
    text = self_edit_prompt(task)
    if chat and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
        bos = bos_text(tokenizer)
        if bos and text.startswith(bos):
            text = text[len(bos):]
    return text


def sample_self_edits(backend: Backend, tokenizer: Any, tasks: Sequence[ArcTask], settings: SamplingSettings,
                      prefix: str, round_: int, shard: int, seed: int, policy: str) -> list[SelfEdit]:
    """``k`` self-edits per task in one backend call; ids are ``{prefix}-p{pos}-k{sample}``."""
    prompts = [policy_prompt(t, tokenizer, settings.chat_template) for t in tasks]
    seeds = [derived_seed(seed, prefix, pos) for pos in range(len(tasks))]
    if settings.decoding == "guided":
        outputs = guided_completions(backend, [with_bos(tokenizer, p) for p in prompts], seeds, settings.k,
                                     settings.temperature, settings.top_p, settings.learning_rates, settings.epochs)
    else:
        requests = [GenerationRequest(with_bos(tokenizer, prompt), n=settings.k, max_new_tokens=settings.max_new_tokens,
                                      temperature=settings.temperature, top_p=settings.top_p, seed=s)
                    for prompt, s in zip(prompts, seeds)]
        outputs = completions_of(requests, backend.generate(requests))
    if any(len(texts) != settings.k for texts in outputs):
        raise RuntimeError(f"guided decoding returned other than k={settings.k} self-edits for a task")
    sampling = settings.record()
    edits = []
    for pos, (task, prompt, s, completions) in enumerate(zip(tasks, prompts, seeds, outputs)):
        for sample in range(settings.k):
            edits.append(SelfEdit(
                id=edit_id(prefix, pos, sample), input_id=task.id, sample=sample, prompt=prompt,
                completion=completions[sample], round=round_, shard=shard,
                seed=s, sampling=sampling, policy=policy,
            ))
    return edits
