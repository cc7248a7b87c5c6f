"""Synthetic data from an external model (the paper's GPT-4.1 baseline) over chat completions,
or from a file of it in the SEAL authors' layout (their published ``gpt4_1_val.json``).

Any OpenAI-compatible ``/chat/completions`` endpoint works (OpenAI, a vLLM server, ...).
Plain ``urllib``, retries on rate limits and server errors; the key comes from the
environment variable the config names and may be absent only for a server on this machine.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Sequence

from ...chat_client import ChatEndpoint, ChatError, api_key_from_env, chat_completion as post_chat, messages_body
from ...ids import derived_seed
from ...records import Passage, SelfEdit
from ..prompts import chat_instruction
from ..sampling import SamplingSettings
from ..seal_layout import ImportReport, SealRecord, imported_edits


class ExternalError(ChatError):
    """The external endpoint could not be used (configuration, HTTP or reply format)."""


@dataclass(frozen=True)
class ExternalSettings(ChatEndpoint):
    """``knowledge.heldout.external``: long completions get a longer timeout."""

    timeout_s: float = 120.0

    @property
    def url(self) -> str:
        if not self.base_url:
            raise ExternalError("knowledge.heldout.external.base_url is not set")
        return self.base_url.rstrip("/") + "/chat/completions"


def external_key(settings: ExternalSettings) -> str | None:
    return api_key_from_env(settings.api_key_env, settings.url, "knowledge.heldout.external.api_key_env", ExternalError)


def chat_completion(settings: ExternalSettings, messages: Sequence[Mapping[str, str]], *, temperature: float,
                    top_p: float, max_tokens: int, seed: int | None = None, key: str | None = None) -> str:
    """The assistant message of one chat completion (retrying transient failures)."""
    body = messages_body(settings.model, messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    return post_chat(settings.url, body, key, timeout_s=settings.timeout_s, max_retries=settings.max_retries,
                     backoff_s=settings.backoff_s, error=ExternalError)


def sample_external(passages: Sequence[Passage], settings: ExternalSettings, k: int, temperature: float,
                    top_p: float, max_tokens: int, seed: int, method: str = "external") -> list[SelfEdit]:
    """``k`` completions of the chat implications instruction per passage, as SelfEdit records."""
    key = external_key(settings)
    jobs = [(pos, p, sample, derived_seed(seed, "heldout", method, p.id, sample))
            for pos, p in enumerate(passages) for sample in range(k)]

    def one(job: tuple[int, Passage, int, int]) -> str:
        _, passage, _, s = job
        messages = [{"role": "user", "content": chat_instruction(passage)}]
        return chat_completion(settings, messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                               seed=s, key=key)

    with ThreadPoolExecutor(max_workers=max(1, min(settings.max_workers, len(jobs) or 1))) as pool:
        completions = list(pool.map(one, jobs))
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_tokens, "k": k,
                "prompt_family": "chat-implications", "endpoint": settings.base_url, "model": settings.model}
    return [
        SelfEdit(id=f"heldout-{method}-{passage.id}-k{sample}", input_id=passage.id, sample=sample,
                 prompt=chat_instruction(passage), completion=text, round=0, shard=0, seed=s,
                 sampling=sampling, policy=f"external:{settings.model}")
        for (pos, passage, sample, s), text in zip(jobs, completions)
    ]


def import_external(records: Sequence[SealRecord], passages: Sequence[Passage], sampling: SamplingSettings,
                    model: str, seed: int, path: str, method: str = "external") -> tuple[list[SelfEdit], ImportReport]:
    """The first ``heldout.k`` completions per held-out passage of a SEAL-layout file, as the
    external method's self-edits (no endpoint, no key). Only completions train, so prompts are
    recorded, not checked; where a record has none, the endpoint's instruction stands in."""
    info = {"source": "file", "path": path, "k": sampling.k, "model": model}

    def make(pos: int, passage: Passage, sample: int, prompt: str, completion: str) -> SelfEdit:
        return SelfEdit(id=f"heldout-{method}-{passage.id}-k{sample}", input_id=passage.id, sample=sample,
                        prompt=prompt, completion=completion, round=0, shard=0,
                        seed=derived_seed(seed, "heldout", method, passage.id, sample), sampling=info,
                        policy=f"external:{model}")

    return imported_edits(records, passages, sampling.k, path, "knowledge.heldout.external.path",
                          None, chat_instruction, make)
