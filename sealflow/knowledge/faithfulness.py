"""How much of a self-edit is about its passage: the share of its content words the passage contains.

A self-edit that restates the passage's facts reuses the passage's names and values; one about
invented entities does not. Words are lower-cased letter/digit runs; a short stop list keeps
"the", "was" and the like from counting as faithful. The same statistic works for the
generated passages and for SQuAD.
"""

from __future__ import annotations

import re
from typing import Iterable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a an the of in on at to for from by with and or but as is are was were be been being it its this that these
those he she they his her their there which who whom what when where why how not no into over under than then
also one has have had do does did can could will would may might shall should about after before during so
""".split())


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def faithfulness(self_edit: str, passage: str) -> float:
    """Share of the self-edit's content words (with repeats) that occur in the passage; 0 for none."""
    words = content_words(self_edit)
    if not words:
        return 0.0
    vocabulary = set(content_words(passage))
    return sum(w in vocabulary for w in words) / len(words)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
