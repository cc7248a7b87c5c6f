"""LLM-as-judge grading through any OpenAI-compatible chat-completions endpoint.

The paper graded answers with GPT-4.1 because free-form answers from a base model
often say the right thing in other words; EM/F1 undercount those. Plain
``urllib`` keeps this free of client libraries, so a local vLLM server works too.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_RETRY_STATUS = {408, 409, 429}

SYSTEM_PROMPT = (
    "You grade short answers to reading-comprehension questions. Decide whether the "
    "student's answer is correct using only the reference answer given, not your own "
    "knowledge. Extra detail is fine as long as the answer contains the meaning of the "
    "reference and does not contradict it; ignore wording and style. Reply with a single "
    "word: yes or no."
)

USER_TEMPLATE = (
    "Question: {question}\n"
    "Reference answer: {gold}\n"
    "Student answer: {prediction}\n"
    "Is the student answer correct according to the reference answer? Reply yes or no."
)

Gold = str | Sequence[str]
Item = tuple[str, Gold, str]


class JudgeError(RuntimeError):
    """The judge endpoint could not be used (configuration, HTTP, or reply format)."""


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str | None = None  # None means OpenAI's own endpoint
    model: str = "gpt-4.1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 2.0
    max_workers: int = 4

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "JudgeConfig":
        """Build from ``knowledge.scoring.judge``; unknown keys are ignored."""
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        return cls(**known)

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"


def is_local(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


def api_key(cfg: JudgeConfig) -> str | None:
    """The key from the configured env var; optional only for a server on this machine."""
    key = os.environ.get(cfg.api_key_env, "").strip() if cfg.api_key_env else ""
    if key:
        return key
    if is_local(cfg.url):
        return None
    raise JudgeError(
        f"the judge needs an API key in the environment variable {cfg.api_key_env!r} "
        f"(knowledge.scoring.judge.api_key_env) for {cfg.url}"
    )


def _gold_text(gold: Gold) -> str:
    answers = [gold] if isinstance(gold, str) else [g for g in gold if g]
    if len(answers) <= 1:
        return answers[0] if answers else ""
    return f"{answers[0]} (also accepted: {'; '.join(answers[1:])})"


def judge_messages(question: str, gold: Gold, prediction: str) -> list[dict[str, str]]:
    user = USER_TEMPLATE.format(question=question.strip(), gold=_gold_text(gold), prediction=prediction.strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


_WORD = re.compile(r"[a-z]+")


def parse_verdict(reply: str | None) -> float:
    """1.0 for yes, 0.0 for no; an unclear reply counts as no, as in the paper."""
    if not reply:
        return 0.0
    words = _WORD.findall(reply.lower())
    if not words:
        return 0.0
    if words[0] in ("yes", "no"):
        return 1.0 if words[0] == "yes" else 0.0
    has_yes, has_no = "yes" in words, "no" in words
    return 1.0 if has_yes and not has_no else 0.0


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    value = err.headers.get("Retry-After") if err.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _post(cfg: JudgeConfig, body: dict[str, Any], key: str | None) -> dict[str, Any]:
    """POST with retries on rate limits, server errors and dropped connections."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode("utf-8")
    last = ""
    for attempt in range(cfg.max_retries + 1):
        wait = cfg.backoff_s * (2**attempt)
        try:
            request = urllib.request.Request(cfg.url, data=data, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300]
            last = f"HTTP {err.code}: {detail}"
            if err.code not in _RETRY_STATUS and err.code < 500:
                raise JudgeError(f"judge request to {cfg.url} failed with {last}") from err
            wait = min(_retry_after(err) or wait, 60.0)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        except json.JSONDecodeError as err:
            raise JudgeError(f"judge reply from {cfg.url} is not JSON ({err.msg})") from err
        if attempt < cfg.max_retries:
            time.sleep(wait)
    raise JudgeError(f"judge request to {cfg.url} failed after {cfg.max_retries + 1} tries ({last})")


def judge_one(question: str, gold: Gold, prediction: str, cfg: JudgeConfig, key: str | None = None) -> float:
    if not prediction.strip():
        return 0.0  # nothing to judge; saves a paid call
    body = {
        "model": cfg.model,
        "messages": judge_messages(question, gold, prediction),
        "temperature": 0.0,
        "max_tokens": 8,
    }
    reply = _post(cfg, body, key)
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise JudgeError(f"judge reply from {cfg.url} has no choices[0].message.content: {str(reply)[:200]}") from err
    return parse_verdict(content)


def judge_answers(items: Sequence[Item], cfg: JudgeConfig) -> list[float]:
    """One 0/1 score per (question, gold answer(s), prediction), in input order."""
    if not items:
        return []
    key = api_key(cfg)
    workers = max(1, min(cfg.max_workers, len(items)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: judge_one(item[0], item[1], item[2], cfg, key), items))
