"""Passage loaders for knowledge incorporation, all normalised to ``list[Passage]``.

Every source (official SQuAD JSON, a simple passages JSON, a dataset hub, or the
fictional-facts generator) ends up as the same records with content-derived ids,
so later stages never care where a passage came from and reruns name files the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from sealflow.atomic import read_jsonl, write_jsonl
from sealflow.records import Passage, Question

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("generated", "squad_json", "passages_json", "hub")

Generator = Callable[[int, int], list[Passage]]


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file and the problem."""


# --------------------------------------------------------------------------- ids


def passage_id(title: str, context: str, tag: str) -> str:
    """Content-derived id, so the same passage gets the same id on every run."""
    digest = hashlib.sha1(f"{title}\n{context}".encode("utf-8")).hexdigest()[:12]
    return f"{tag}-{digest}"


# ------------------------------------------------------------------ assembling


class _PassageBuilder:
    """Collects questions per (title, context), merging duplicate passages in first-seen order."""

    def __init__(self, tag: str, source: str) -> None:
        self.tag = tag
        self.source = source
        self._order: list[tuple[str, str]] = []
        self._questions: dict[tuple[str, str], list[Question]] = {}

    def add_passage(self, title: str, context: str) -> None:
        key = (title, context)
        if key not in self._questions:
            self._order.append(key)
            self._questions[key] = []

    def add_question(self, title: str, context: str, question: Question) -> None:
        self.add_passage(title, context)
        bucket = self._questions[(title, context)]
        if question not in bucket:
            bucket.append(question)

    def build(self) -> list[Passage]:
        passages = [
            Passage(passage_id(t, c, self.tag), t, c, tuple(self._questions[(t, c)]))
            for t, c in self._order
        ]
        kept = [p for p in passages if p.questions]
        dropped = len(passages) - len(kept)
        if dropped:
            log.warning("%s: dropped %d passage(s) with no questions", self.source, dropped)
        return kept


def _question(text: str, answers: Sequence[str]) -> Question | None:
    """First answer is the reference; other distinct ones become alternatives."""
    distinct: list[str] = []
    for answer in answers:
        answer = answer.strip()
        if answer and answer not in distinct:
            distinct.append(answer)
    if not text.strip() or not distinct:
        return None
    return Question(text.strip(), distinct[0], tuple(distinct[1:]))


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON at line {err.lineno} column {err.colno} ({err.msg})") from err


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise DataError(f"{where} should be an object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f"{where} has no {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"{where}.{key} should be {names}, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------- loaders


def load_squad_official(path: str | os.PathLike) -> list[Passage]:
    """Official SQuAD v1.1 JSON; unanswerable (v2-style) questions are skipped."""
    raw = _read_json(path)
    name = str(path)
    data = _need(raw, "data", list, f"{name}: top level")
    builder = _PassageBuilder("squad", name)
    for i, article in enumerate(data):
        where = f"{name}: data[{i}]"
        paragraphs = _need(article, "paragraphs", list, where)
        title = str(article.get("title", "")).strip()
        for j, paragraph in enumerate(paragraphs):
            pwhere = f"{where}.paragraphs[{j}]"
            context = _need(paragraph, "context", str, pwhere).strip()
            qas = _need(paragraph, "qas", list, pwhere)
            builder.add_passage(title, context)
            for k, qa in enumerate(qas):
                qwhere = f"{pwhere}.qas[{k}]"
                text = _need(qa, "question", str, qwhere)
                answers = _need(qa, "answers", list, qwhere)
                texts = [_need(a, "text", str, f"{qwhere}.answers[{n}]") for n, a in enumerate(answers)]
                question = _question(text, texts)
                if question is not None:
                    builder.add_question(title, context, question)
                else:
                    log.warning("dropped %s: empty question or no non-empty answer", qwhere)
    return builder.build()


def _answers_of(item: Mapping[str, Any], where: str) -> list[str]:
    """Accept ``answer`` or ``answers`` as a string, a list, or SQuAD's ``{"text": [...]}``."""
    if "answer" in item:
        value = item["answer"]
    elif "answers" in item:
        value = item["answers"]
    else:
        raise DataError(f"{where} has no 'answer' (or 'answers')")
    if isinstance(value, dict):
        value = value.get("text", [])
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise DataError(f"{where}.answer should be a string or a list, got {type(value).__name__}")
    out: list[str] = []
    for n, answer in enumerate(value):
        if isinstance(answer, dict) and "text" in answer:
            answer = answer["text"]
        if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            raise DataError(f"{where}.answer[{n}] should be a string, got {type(answer).__name__}")
        out.append(str(answer))
    alternatives = item.get("alternatives", [])
    if isinstance(alternatives, list):
        out.extend(str(a) for a in alternatives)
    return out


PASSAGE_KEYS = frozenset({"title", "context", "questions"})
QUESTION_KEYS = frozenset({"question", "answer", "answers", "alternatives"})
# Keys of the SEAL authors' synthetic-data files that belong to self-edits, not to passages.
SELF_EDIT_KEYS = frozenset({"completions", "prompt"})


def unread_keys_note(name: str, where: str, counts: Mapping[str, int], hint: str = "") -> str | None:
    """One line naming every key a loader did not read and how many records carried it."""
    if not counts:
        return None
    listed = ", ".join(f"{key!r} ({n})" for key, n in sorted(counts.items()))
    return f"{name}: {where} keys not read: {listed}{hint}"


def load_passages_json(path: str | os.PathLike) -> list[Passage]:
    """A list of ``{title, context, questions: [{question, answer}]}`` (the SEAL repo's shape).

    Keys it does not read are never passed over in silence: one warning per file names
    them and their counts (the SEAL files' ``completions``/``prompt`` with a pointer to
    the keys that import them as self-edits).
    """
    raw = _read_json(path)
    name = str(path)
    if not isinstance(raw, list):
        raise DataError(f"{name}: expected a list of passages, got {type(raw).__name__}")
    builder = _PassageBuilder("pj", name)
    unread: dict[str, int] = {}
    unread_q: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{name}: [{i}]"
        context = _need(item, "context", str, where).strip()
        title = str(item.get("title", "")).strip()
        questions = _need(item, "questions", list, where)
        for key in set(item) - PASSAGE_KEYS:
            unread[str(key)] = unread.get(str(key), 0) + 1
        builder.add_passage(title, context)
        for k, q in enumerate(questions):
            qwhere = f"{where}.questions[{k}]"
            text = _need(q, "question", str, qwhere)
            for key in set(q) - QUESTION_KEYS:
                unread_q[str(key)] = unread_q.get(str(key), 0) + 1
            question = _question(text, _answers_of(q, qwhere))
            if question is not None:
                builder.add_question(title, context, question)
            else:
                log.warning("dropped %s: empty question or no non-empty answer", qwhere)
    hint = ""
    if SELF_EDIT_KEYS & set(unread):
        hint = ("; 'completions' are self-edits, not passages: knowledge.import_self_edits.path uses them as a "
                "round's self-edits and knowledge.heldout.external.path as the external method's")
    for note in (unread_keys_note(name, "passage", unread, hint), unread_keys_note(name, "question", unread_q)):
        if note:
            log.warning(note)
    return builder.build()


def passages_from_rows(rows: Iterable[Mapping[str, Any]], source: str, tag: str = "hub") -> list[Passage]:
    """Group SQuAD-shaped rows (one question per row) into passages by (title, context)."""
    builder = _PassageBuilder(tag, source)
    required = ("context", "question", "answers")
    for i, row in enumerate(rows):
        missing = [key for key in required if key not in row]
        if missing:
            raise DataError(f"{source}: row {i} has no {', '.join(repr(m) for m in missing)}")
        title = str(row.get("title") or "").strip()
        context = str(row["context"]).strip()
        question = _question(str(row["question"]), _answers_of(row, f"{source}: row {i}"))
        builder.add_passage(title, context)
        if question is not None:
            builder.add_question(title, context, question)
        else:
            log.warning("dropped %s: row %d: empty question or no non-empty answer", source, i)
    return builder.build()


def load_hub(hub_id: str, split: str) -> list[Passage]:
    """SQuAD-shaped dataset from a hub (needs network or a local cache)."""
    import datasets  # heavy import, only when this source is used

    try:
        dataset = datasets.load_dataset(hub_id, split=split)
    except Exception as err:  # hub errors are many types; all mean "could not load"
        raise DataError(f"hub dataset {hub_id!r} split {split!r} could not be loaded: {err}") from err
    return passages_from_rows(dataset, source=f"hub:{hub_id}[{split}]")


# ----------------------------------------------------------------- our own format


def write_passages_jsonl(path: str | os.PathLike, passages: Sequence[Passage]) -> None:
    write_jsonl(path, (p.to_dict() for p in passages))


def read_passages_jsonl(path: str | os.PathLike) -> list[Passage]:
    try:
        rows = read_jsonl(path)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except ValueError as err:
        raise DataError(str(err)) from err
    passages = []
    for number, row in enumerate(rows, 1):
        try:
            passages.append(Passage.from_dict(row))
        except (KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: record {number} is not a passage ({type(err).__name__}: {err})") from err
    return passages


# ------------------------------------------------------------------ split + dispatch


def split_passages(passages: Sequence[Passage], n_train: int, n_val: int, seed: int) -> tuple[list[Passage], list[Passage]]:
    """Deterministic, disjoint train/val split; independent of the input order."""
    if n_train < 0 or n_val < 0:
        raise DataError(f"knowledge.data.n_train/n_val must be >= 0 (got {n_train}/{n_val})")
    unique: dict[str, Passage] = {}
    for passage in passages:
        unique.setdefault(passage.id, passage)
    if len(unique) < n_train + n_val:
        raise DataError(
            f"knowledge.data.n_train ({n_train}) + knowledge.data.n_val ({n_val}) = {n_train + n_val} "
            f"passages requested but only {len(unique)} available"
        )
    ordered = [unique[key] for key in sorted(unique)]
    random.Random(seed).shuffle(ordered)
    return ordered[:n_train], ordered[n_train : n_train + n_val]


def load_source(data_cfg: Mapping[str, Any], generated: Generator | None = None) -> list[Passage]:
    """All passages of the configured ``knowledge.data.source``."""
    source = data_cfg.get("source")
    if source == "generated":
        if generated is None:
            raise DataError("knowledge.data.source is 'generated' but no generator was given")
        n = int(data_cfg.get("n_train", 0)) + int(data_cfg.get("n_val", 0))
        return list(generated(n, int(data_cfg.get("seed", 0))))
    if source in ("squad_json", "passages_json"):
        path = data_cfg.get("path")
        if not path:
            raise DataError(f"knowledge.data.source is {source!r} but knowledge.data.path is not set")
        if source == "squad_json":
            return load_squad_official(path)
        if Path(path).suffix == ".jsonl":
            return read_passages_jsonl(path)
        return load_passages_json(path)
    if source == "hub":
        hub_id = data_cfg.get("hub_id")
        if not hub_id:
            raise DataError("knowledge.data.source is 'hub' but knowledge.data.hub_id is not set")
        return load_hub(str(hub_id), str(data_cfg.get("hub_split") or "validation"))
    raise DataError(f"unknown knowledge.data.source {source!r} (expected one of {', '.join(SOURCES)})")


def load_splits(data_cfg: Mapping[str, Any], generated: Generator | None = None) -> tuple[list[Passage], list[Passage]]:
    """``load_source`` then ``split_passages`` with the config's sizes and seed."""
    passages = load_source(data_cfg, generated)
    return split_passages(
        passages, int(data_cfg.get("n_train", 0)), int(data_cfg.get("n_val", 0)), int(data_cfg.get("seed", 0))
    )
