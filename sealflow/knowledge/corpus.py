"""The pretraining corpus of the tiny knowledge-domain base model: a model organism of SEAL.

It teaches the behaviours SEAL relies on, on fictional passages disjoint from the
workflow's train/validation passages: reading passages, continuing a self-edit prompt,
and answering closed-book questions about facts seen elsewhere in training (which is
what the inner loop tests).

Two properties make SEAL's mechanism operate in it:

* Facts are learnt from, and asked about, explicit sentences that name their entity
  in full; the passages refer back with "It", "The city" or a first name. Training on
  a passage alone therefore helps less than training on explicit restatements
  (the knowledge-extraction effect of Allen-Zhu & Li, Physics of Language Models 3.1).
* The self-edit demonstrations are a mixture of styles: faithful lists of every fact,
  partial ones, and lists about some other entity. The base policy samples from that
  mixture, so its self-edits differ in usefulness, the ReST-EM filter keeps the
  faithful ones and the policy update shifts the mixture towards them.
"""

from __future__ import annotations

import random

from ..worldgen import NAMES, SUBJECT_POOLS, WorldEntry, generate_entries
from .prompts import question_prompt, self_edit_prompt

# Families whose completion is a list of restatements; self-qa gets question/answer lines.
_LIST_FAMILIES = ("implications", "implications-long", "implications-very-long")

# Worlds for the corpus use seeds far from those of the workflow's data, so no
# validation fact is ever seen in pretraining.
CORPUS_SEED_OFFSET = 1_000_003

# How the self-edit demonstrations are written, and how often (weights).
SELF_EDIT_STYLES = {"faithful": 0.3, "partial": 0.35, "other_entity": 0.35}


def self_edit_body(entry: WorldEntry, style: str, rng: random.Random, other: WorldEntry) -> list[str]:
    """The lines of one demonstrated self-edit about ``entry`` in ``style``."""
    if style == "faithful":
        return entry.explicit_lines()
    if style == "partial":
        return entry.explicit_lines()[: rng.randint(1, 2)]
    if style == "other_entity":
        return other.explicit_lines()[: rng.randint(2, len(other.facts))]
    raise ValueError(f"unknown self-edit style {style!r}")


def _self_edit_demo(entry: WorldEntry, rng: random.Random, other: WorldEntry) -> str:
    family = rng.choices(_LIST_FAMILIES + ("rewrite", "self-qa"), weights=(6, 1, 1, 1, 1))[0]
    prompt = self_edit_prompt(family, entry.passage)
    if family == "self-qa":
        return prompt + "\n".join(f"{question_prompt(f.question)} {f.answer}" for f in entry.facts)
    style = rng.choices(list(SELF_EDIT_STYLES), weights=list(SELF_EDIT_STYLES.values()))[0]
    lines = self_edit_body(entry, style, rng, other)
    # Lines start with the entity's name as the passage's title line and first sentence do,
    # so the model writes a faithful line by copying what followed the last line break.
    return prompt + (" ".join(lines) if family == "rewrite" else "\n".join(lines))


def _knowledge_document(entry: WorldEntry, rng: random.Random) -> str:
    """The entity's facts as explicit sentences and paraphrases: what closed-book answers are learnt from."""
    lines = entry.explicit_lines() + entry.restatements(rng)
    rng.shuffle(lines)
    return "\n".join(lines)


def _closed_book_qa(entries: list[WorldEntry], rng: random.Random, n: int) -> str:
    picks = rng.sample(entries, k=min(n, len(entries)))
    lines = []
    for entry in picks:
        fact = rng.choice(entry.facts)
        lines.append(f"{question_prompt(fact.question)} {fact.answer}")
    return "\n".join(lines)


def _copy_document(entry: WorldEntry, rng: random.Random) -> str:
    """A list of lines, then the same list again.

    Its second half can only be predicted by finding the first and copying on from it;
    such documents make a small model form that copying behaviour (induction heads)
    early, and self-edits about a passage are written by copying its names and values.
    """
    lines = entry.explicit_lines()
    rng.shuffle(lines)
    return "\n".join(lines) + "\n\n" + "\n".join(lines)


def _name_list_document(rng: random.Random) -> str:
    """A few names, one per line, then the same list again: no fact, only names to copy.

    A name at the start of a line is a different token from the same name after a space, and
    every passage begins with its title and its first sentence on a line each. Workflow
    subjects are never a pretraining subject, so without these lists their line-initial
    form would be split into pieces by the tokenizer and never seen in training, and a
    self-edit line could not begin by copying the passage's title as one token.
    """
    names = rng.sample(NAMES, k=rng.randint(3, 8))
    return "\n".join(names) + "\n\n" + "\n".join(names)


def knowledge_corpus(n_passages: int, seed: int, demos_per_passage: int = 1, name_lists: bool = True) -> list[str]:
    """Documents for pretraining: passages, self-edit demonstrations, knowledge documents, closed-book QA.

    Two kinds of entities: the first ``len(SUBJECT_POOLS["corpus"])`` (one per subject name) carry
    knowledge documents and closed-book questions, so each name has one consistent set of facts to
    learn; the rest reuse those names with fresh facts and appear only inside self-edit
    demonstrations and copy documents, which the passage in the prompt answers: they reward
    reading and copying, never remembering.
    """
    rng = random.Random(seed)
    entries = generate_entries(n_passages, seed + CORPUS_SEED_OFFSET, subjects="corpus")
    known = entries[: len(SUBJECT_POOLS["corpus"])]
    docs: list[str] = []
    for entry in entries:
        for _ in range(demos_per_passage):
            docs.append(_self_edit_demo(entry, rng, rng.choice(entries)))
        docs.append(_copy_document(entry, rng))
        if name_lists:
            docs.append(_name_list_document(rng))
    for entry in known:
        docs.append(f"{entry.passage.title}\n{entry.passage.context}")
        docs.append(_knowledge_document(entry, rng))
    # Closed-book questions about facts the corpus states elsewhere.
    for _ in range(max(1, len(known))):
        docs.append(_closed_book_qa(known, rng, 6))
    rng.shuffle(docs)
    return docs
