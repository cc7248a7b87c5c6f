"""The SEAL authors' synthetic-data layout (Continual-Intelligence/SEAL), read and written.

Their files are JSON lists of ``{title, context, questions: [{question, answer}],
completions: [k strings], prompt}``: k completions of one prompt per passage (their
``train/iter0_train.json``, ``eval/base_val.json``, ``eval/gpt4_1_val.json``, ...).
Reading one gives its completions as self-edits (a round's, or the external held-out
method's, so their GPT-4.1 baseline needs no API key); writing one turns our self-edits
into that layout, so their scripts can read what sealflow sampled.

Records are matched to our passages by content (title and context, stripped as every
loader strips them), not by id: an id carries the loader's tag, content does not.
Torch-free; nothing a file holds is passed over without a word: keys outside the
layout, completions beyond the k asked for, and prompts that differ from the
configured family are all counted, logged and returned for the artifact's meta.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..atomic import write_text
from ..records import Passage, SelfEdit
from .data import DataError, _read_json, unread_keys_note
from .prompts import prompt_family_of

log = logging.getLogger(__name__)

LAYOUT_KEYS = frozenset({"title", "context", "questions", "completions", "prompt"})


@dataclass(frozen=True)
class SealRecord:
    """One passage's entry of a SEAL file: what it was prompted with and what came back."""

    index: int  # position in the file, for messages
    title: str
    context: str
    completions: tuple[str, ...]
    prompt: str  # "" where the file has none (their "naive" file)

    @property
    def key(self) -> tuple[str, str]:
        return content_key(self.title, self.context)


def content_key(title: str, context: str) -> tuple[str, str]:
    return (title.strip(), context.strip())


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where} should be a string, got {type(value).__name__}")
    return value


def read_seal_file(path: str | os.PathLike) -> list[SealRecord]:
    """Every record of a SEAL synthetic-data file, checked; repeats of one passage must agree."""
    raw = _read_json(path)
    name = str(path)
    if not isinstance(raw, list):
        raise DataError(f"{name}: expected a list of records {{title, context, questions, completions, prompt}}, "
                        f"got {type(raw).__name__}")
    records: list[SealRecord] = []
    first: dict[tuple[str, str], SealRecord] = {}
    unread: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{name}: [{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where} should be an object, got {type(item).__name__}")
        for key in ("context", "completions"):
            if key not in item:
                raise DataError(f"{where} has no {key!r}")
        context = _string(item["context"], f"{where}.context")
        title = _string(item.get("title", ""), f"{where}.title")
        prompt = _string(item.get("prompt", ""), f"{where}.prompt")
        completions = item["completions"]
        if not isinstance(completions, list):
            raise DataError(f"{where}.completions should be a list of strings, got {type(completions).__name__}")
        texts = tuple(_string(c, f"{where}.completions[{j}]") for j, c in enumerate(completions))
        if "questions" in item and not isinstance(item["questions"], list):
            raise DataError(f"{where}.questions should be a list, got {type(item['questions']).__name__}")
        for key in set(item) - LAYOUT_KEYS:
            unread[str(key)] = unread.get(str(key), 0) + 1
        record = SealRecord(i, title, context, texts, prompt)
        earlier = first.get(record.key)
        if earlier is None:
            first[record.key] = record
            records.append(record)
        elif (earlier.completions, earlier.prompt) != (record.completions, record.prompt):
            raise DataError(f"{where} repeats the passage of [{earlier.index}] ({title!r}) with other "
                            "completions or another prompt: which one is meant is unclear")
        else:
            log.warning("%s repeats [%d] exactly; read once", where, earlier.index)
    note = unread_keys_note(name, "record", unread)
    if note:
        log.warning(note)
    return records


# ------------------------------------------------------------------------ import


@dataclass
class ImportReport:
    """What an import used and what it left: the artifact's meta records it."""

    path: str
    k: int
    records_in_file: int = 0
    matched: int = 0
    unused_completions: int = 0
    empty_completions: int = 0
    prompt_from_file: int = 0
    prompt_from_config: int = 0
    prompt_families: dict[str, int] = field(default_factory=dict)
    prompt_mismatches: int = 0

    def as_meta(self) -> dict[str, Any]:
        return {f"import_{k}": v for k, v in self.__dict__.items()}


def match_records(records: Sequence[SealRecord], passages: Sequence[Passage], k: int, path: str,
                  config_key: str) -> list[SealRecord]:
    """The record of every passage, in passage order; each must hold at least ``k`` completions."""
    by_key = {r.key: r for r in records}
    out = []
    for passage in passages:
        record = by_key.get(content_key(passage.title, passage.context))
        if record is None:
            raise DataError(
                f"{config_key}: {path} has no record for passage {passage.id} ({passage.title!r}); the passages "
                "come from knowledge.data, so point knowledge.data.path at the same file (source: passages_json)")
        if len(record.completions) < k:
            raise DataError(f"{config_key}: {path}: [{record.index}] ({record.title!r}) has "
                            f"{len(record.completions)} completion(s), fewer than the k = {k} asked for")
        out.append(record)
    return out


def imported_edits(records: Sequence[SealRecord], passages: Sequence[Passage], k: int, path: str, config_key: str,
                   family: str | None, render: Callable[[Passage], str],
                   make: Callable[[int, Passage, int, str, str], SelfEdit],
                   tokenizer: Any = None) -> tuple[list[SelfEdit], ImportReport]:
    """The first ``k`` completions of each passage's record as self-edits.

    An edit keeps the prompt its writer saw (the file's), so ReST-EM trains on it, and
    falls back to ``render(passage)`` where the file has none. With a ``family`` (whose
    prompt ``render`` is), a file prompt that differs is counted and warned about: the
    next round samples with the configured family, not with the file's. ``make(position,
    passage, sample, prompt, completion)`` builds the record (ids differ by use). With a
    ``tokenizer``, chat-family prompts are recognised too.
    """
    report = ImportReport(path=path, k=k, records_in_file=len(records))
    matched = match_records(records, passages, k, path, config_key)
    families: dict[str, int] = defaultdict(int)
    edits = []
    for pos, (passage, record) in enumerate(zip(passages, matched)):
        expected = render(passage)
        if record.prompt:
            prompt = record.prompt
            report.prompt_from_file += 1
            families[prompt_family_of(prompt, passage, tokenizer) or "unrecognised"] += 1
            report.prompt_mismatches += family is not None and prompt != expected
        else:
            prompt = expected
            report.prompt_from_config += 1
        texts = record.completions[:k]
        report.unused_completions += len(record.completions) - k
        report.empty_completions += sum(not t.strip() for t in texts)
        edits += [make(pos, passage, sample, prompt, text) for sample, text in enumerate(texts)]
    report.matched = len(matched)
    report.prompt_families = dict(sorted(families.items()))
    if report.unused_completions:
        log.warning("%s: %s: %d completion(s) beyond the first k = %d of each passage were not used",
                    config_key, path, report.unused_completions, k)
    if report.empty_completions:
        log.warning("%s: %s: %d empty completion(s): they add no training text (in a round: reward 0, "
                    "empty_completion)",
                    config_key, path, report.empty_completions)
    if report.prompt_mismatches:
        log.warning("%s: %s: %d of %d prompts are not the configured family %r (file prompts: %s); the edits keep "
                    "the file's prompt", config_key, path, report.prompt_mismatches, report.prompt_from_file, family,
                    report.prompt_families)
    if report.prompt_from_config:
        log.warning("%s: %s: %d record(s) have no prompt; %s stands in", config_key, path,
                    report.prompt_from_config, f"the configured family {family!r}" if family else "the default")
    log.info("%s: %d of %d records of %s matched, %d self-edits", config_key, report.matched, len(records), path,
             len(edits))
    return edits, report


# ------------------------------------------------------------------------ export


def to_seal_layout(passages: Sequence[Passage], edits: Sequence[SelfEdit]) -> list[dict[str, Any]]:
    """One record per passage that has self-edits, in passage order; completions by sample.

    Questions are ``{question, answer}`` as in their files, plus ``alternatives`` where a
    question has other accepted answers (their scripts read keys by name, so it is inert
    there, and our ``passages_json`` loader reads it back).
    """
    by_passage: dict[str, list[SelfEdit]] = defaultdict(list)
    for edit in edits:
        by_passage[edit.input_id].append(edit)
    known = {p.id for p in passages}
    stray = sorted(set(by_passage) - known)
    if stray:
        raise DataError(f"self-edits name passages that are not in the passages file: {', '.join(stray[:5])}"
                        + (" ..." if len(stray) > 5 else ""))
    out = []
    for passage in passages:
        own = sorted(by_passage.get(passage.id, []), key=lambda e: e.sample)
        if not own:
            raise DataError(f"passage {passage.id} ({passage.title!r}) has no self-edits to export")
        prompts = {e.prompt for e in own}
        if len(prompts) > 1:
            raise DataError(f"the self-edits of passage {passage.id} come from {len(prompts)} different prompts; "
                            "the SEAL layout holds one prompt per passage")
        questions = []
        for q in passage.questions:
            row: dict[str, Any] = {"question": q.question, "answer": q.answer}
            if q.alternatives:
                row["alternatives"] = list(q.alternatives)
            questions.append(row)
        out.append({"title": passage.title, "context": passage.context, "questions": questions,
                    "completions": [e.completion for e in own], "prompt": own[0].prompt})
    return out


def write_seal_file(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> None:
    """Atomically, as their files are written: indented, non-ASCII kept (a lone surrogate from
    an undecodable self-edit is written as its ``\\udcxx`` escape, which JSON reads back)."""
    write_text(path, json.dumps(list(records), ensure_ascii=False, indent=2) + "\n")
