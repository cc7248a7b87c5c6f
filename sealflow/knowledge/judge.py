"""LLM-as-judge grading through any OpenAI-compatible chat-completions endpoint.

The paper graded answers with GPT-4.1 because free-form answers from a base model
often say the right thing in other words; EM/F1 undercount those. Plain
``urllib`` keeps this free of client libraries, so a local vLLM server works too.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from ..chat_client import ChatEndpoint, ChatError, api_key_from_env, chat_completion, is_local, messages_body

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

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


class JudgeError(ChatError):
    """The judge endpoint could not be used (configuration, HTTP, or reply format)."""


@dataclass(frozen=True)
class JudgeConfig(ChatEndpoint):
    """``knowledge.scoring.judge``; a null base_url means OpenAI's own endpoint."""

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"


def api_key(cfg: JudgeConfig) -> str | None:
    """The key from the configured env var; optional only for a server on this machine."""
    return api_key_from_env(cfg.api_key_env, cfg.url, "knowledge.scoring.judge.api_key_env", JudgeError)


def _gold_text(gold: Gold) -> str:
    answers = [gold] if isinstance(gold, str) else [g for g in gold if g]
    if len(answers) <= 1:
        return answers[0] if answers else ""
    return f"{answers[0]} (also accepted: {'; '.join(answers[1:])})"


def judge_messages(question: str, gold: Gold, prediction: str) -> list[dict[str, str]]:
    user = USER_TEMPLATE.format(question=question.strip(), gold=_gold_text(gold), prediction=prediction.strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Verdict:
    """A judge's score and why: ``yes``, ``no``, ``empty prediction`` or ``unclear: <reply>``."""

    score: float
    reason: str


def read_verdict(reply: str | None) -> Verdict:
    """1.0 for yes, 0.0 for no; an unclear reply (a small judge may ramble or refuse) counts as no,
    as in the paper, with the reply kept as the reason."""
    words = _WORD.findall((reply or "").lower())
    if words and words[0] in ("yes", "no"):
        return Verdict(1.0 if words[0] == "yes" else 0.0, words[0])
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes != has_no:
        return Verdict(1.0 if has_yes else 0.0, "yes" if has_yes else "no")
    return Verdict(0.0, f"unclear: {' '.join((reply or '').split())[:80]!r}")


def parse_verdict(reply: str | None) -> float:
    return read_verdict(reply).score


def judge_one(question: str, gold: Gold, prediction: str, cfg: JudgeConfig, key: str | None = None) -> Verdict:
    if not prediction.strip():
        return Verdict(0.0, "empty prediction")  # nothing to judge; saves a paid call
    body = messages_body(cfg.model, judge_messages(question, gold, prediction), temperature=0.0, max_tokens=8)
    content = chat_completion(cfg.url, body, key, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                              backoff_s=cfg.backoff_s, error=JudgeError, what="judge request")
    return read_verdict(content)


def judge_verdicts(items: Sequence[Item], cfg: JudgeConfig) -> list[Verdict]:
    """One verdict per (question, gold answer(s), prediction), in input order."""
    if not items:
        return []
    key = api_key(cfg)
    workers = max(1, min(cfg.max_workers, len(items)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(lambda item: judge_one(item[0], item[1], item[2], cfg, key), items))
    _warn_unclear(verdicts, cfg.model)
    return verdicts


def _warn_unclear(verdicts: Sequence[Verdict], model: str) -> None:
    # Many unclear replies mean the judge model does not follow the yes/no instruction: scores undercount.
    unclear = [v.reason for v in verdicts if v.reason.startswith("unclear")]
    if unclear:
        log.warning("%d of %d replies of judge %s were neither yes nor no and count as no (first %s)",
                    len(unclear), len(verdicts), model, unclear[0])


def judge_answers(items: Sequence[Item], cfg: JudgeConfig) -> list[float]:
    """One 0/1 score per (question, gold answer(s), prediction), in input order."""
    return [v.score for v in judge_verdicts(items, cfg)]
