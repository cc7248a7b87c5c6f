"""The pretraining corpus of the tiny knowledge-domain base model.

It teaches the three behaviours SEAL relies on, on fictional passages disjoint from
the workflow's train/validation passages: reading passages, continuing a self-edit
prompt with restatements of the passage's facts, and answering closed-book questions
about facts seen elsewhere in training (which is what the inner loop tests).
"""

from __future__ import annotations

import random

from ..worldgen import WorldEntry, generate_entries
from .prompts import question_prompt, self_edit_prompt

# Families whose completion is a list of restatements; self-qa gets question/answer lines.
_LIST_FAMILIES = ("implications", "implications-long", "implications-very-long")

# Worlds for the corpus use seeds far from those of the workflow's data, so no
# validation fact is ever seen in pretraining.
CORPUS_SEED_OFFSET = 1_000_003


def _self_edit_demo(entry: WorldEntry, rng: random.Random) -> str:
    family = rng.choice(_LIST_FAMILIES + ("rewrite", "self-qa"))
    prompt = self_edit_prompt(family, entry.passage)
    if family == "self-qa":
        body = "\n".join(f"{question_prompt(f.question)} {f.answer}" for f in entry.facts)
    elif family == "rewrite":
        body = " ".join(entry.restatements(rng))
    else:
        body = "\n".join(entry.restatements(rng))
    return f"{prompt}{body}"


def _closed_book_qa(entries: list[WorldEntry], rng: random.Random, n: int) -> str:
    picks = rng.sample(entries, k=min(n, len(entries)))
    lines = []
    for entry in picks:
        fact = rng.choice(entry.facts)
        lines.append(f"{question_prompt(fact.question)} {fact.answer}")
    return "\n".join(lines)


def knowledge_corpus(n_passages: int, seed: int) -> list[str]:
    """Documents for pretraining: passages, self-edit demonstrations and closed-book QA."""
    rng = random.Random(seed)
    entries = generate_entries(n_passages, seed + CORPUS_SEED_OFFSET)
    docs: list[str] = []
    for entry in entries:
        docs.append(f"{entry.passage.title}\n{entry.passage.context}")
        docs.append(_self_edit_demo(entry, rng))
        docs.append("\n".join(entry.restatements(rng)))
    # Closed-book questions about facts the corpus states elsewhere.
    for _ in range(max(1, n_passages // 2)):
        docs.append(_closed_book_qa(entries, rng, 6))
    rng.shuffle(docs)
    return docs
