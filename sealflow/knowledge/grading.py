"""SQuAD-style answer grading (exact match and token F1) without any model.

The normalisation follows the official SQuAD v1.1 evaluation, so numbers are
comparable to the usual EM/F1; the LLM judge lives in ``judge.py``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

METRICS: tuple[str, ...] = ("em", "f1")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
# Where a base model's answer usually ends: it starts the next turn or a new line.
_STOP = re.compile(r"\n|\b(?:Question|Q|Answer|Passage|Context)\s*\d*\s*:")
_LEADING_LABEL = re.compile(r"^(?:Answer|A)\s*:\s*")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse whitespace (SQuAD's rule)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _as_list(answers: str | Sequence[str]) -> list[str]:
    return [answers] if isinstance(answers, str) else list(answers)


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(gold) for gold in _as_list(answers)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: str | Sequence[str]) -> float:
    """Bag-of-tokens F1 against the best-matching gold answer."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(gold).split()) for gold in _as_list(answers)), default=0.0)


def grade(prediction: str, answers: str | Sequence[str], metric: str) -> float:
    """Score in [0, 1]; ``prediction`` should already be cleaned (see ``clean_prediction``)."""
    if metric == "em":
        return exact_match(prediction, answers)
    if metric == "f1":
        return token_f1(prediction, answers)
    raise ValueError(
        f"unknown knowledge.scoring.grader {metric!r} for local grading (expected one of "
        f"{', '.join(METRICS)}; 'judge' is scored by sealflow.knowledge.judge)"
    )


def clean_prediction(text: str) -> str:
    """Keep only the answer a base LM wrote before it ran on into a new line or a new turn."""
    text = _LEADING_LABEL.sub("", text.lstrip()).lstrip()
    match = _STOP.search(text)
    if match:
        text = text[: match.start()]
    return text.strip()


def grade_all(items: Sequence[tuple[str, Sequence[str], str]], settings) -> list[float]:
    """Scores in [0, 1] for (question, gold answers, prediction) triples under ``settings``
    (a :class:`~sealflow.knowledge.scoring_settings.ScoringSettings`); no model is loaded."""
    if settings.grader == "judge":
        from .judge import JudgeConfig, judge_answers

        return judge_answers(items, JudgeConfig.from_config(settings.judge or {}))
    return [grade(pred, gold, settings.grader) for _, gold, pred in items]
