"""Synthetic data from an external model (the paper's GPT-4.1 baseline) over chat completions.

Any OpenAI-compatible ``/chat/completions`` endpoint works (OpenAI, a vLLM server, ...).
Plain ``urllib``, retries on rate limits and server errors; the key comes from the
environment variable the config names and may be absent only for a server on this machine.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..records import Passage, SelfEdit
from .judge import is_local
from .prompts import chat_instruction
from .selfedits import derived_seed

_RETRY_STATUS = {408, 409, 429}


class ExternalError(RuntimeError):
    """The external endpoint could not be used (configuration, HTTP or reply format)."""


@dataclass(frozen=True)
class ExternalSettings:
    base_url: str | None = None
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 2.0
    max_workers: int = 4

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ExternalSettings":
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})

    @property
    def url(self) -> str:
        if not self.base_url:
            raise ExternalError("knowledge.heldout.external.base_url is not set")
        return self.base_url.rstrip("/") + "/chat/completions"


def external_key(settings: ExternalSettings) -> str | None:
    key = os.environ.get(settings.api_key_env, "").strip() if settings.api_key_env else ""
    if key or is_local(settings.url):
        return key or None
    raise ExternalError(f"the external model needs an API key in the environment variable {settings.api_key_env!r} "
                        f"(knowledge.heldout.external.api_key_env) for {settings.url}")


def chat_completion(settings: ExternalSettings, messages: Sequence[Mapping[str, str]], *, temperature: float,
                    top_p: float, max_tokens: int, seed: int | None = None, key: str | None = None) -> str:
    """The assistant message of one chat completion (retrying transient failures)."""
    body: dict[str, Any] = {"model": settings.model, "messages": list(messages), "temperature": temperature,
                            "top_p": top_p, "max_tokens": max_tokens}
    if seed is not None:
        body["seed"] = seed
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data, last = json.dumps(body).encode("utf-8"), ""
    for attempt in range(settings.max_retries + 1):
        wait = settings.backoff_s * (2**attempt)
        try:
            request = urllib.request.Request(settings.url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
                reply = json.loads(response.read().decode("utf-8"))
            try:
                return str(reply["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError) as err:
                raise ExternalError(f"reply from {settings.url} has no choices[0].message.content: "
                                    f"{str(reply)[:200]}") from err
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:300]}"
            if err.code not in _RETRY_STATUS and err.code < 500:
                raise ExternalError(f"request to {settings.url} failed with {last}") from err
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        except json.JSONDecodeError as err:
            raise ExternalError(f"reply from {settings.url} is not JSON ({err.msg})") from err
        if attempt < settings.max_retries:
            time.sleep(wait)
    raise ExternalError(f"request to {settings.url} failed after {settings.max_retries + 1} tries ({last})")


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
