"""Answering ARC queries (with or without an adapter) and scoring them by exact match.

Answers are greedy. With ``vote`` the task is also asked under the symmetries of
``voting.augmented_views`` and the answers, mapped back, vote; otherwise the identity
view alone decides. All of a shard's requests go to the backend in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..backends import Backend, GenerationRequest
from ..records import SelfEdit
from .grids import Grid, extract_grid, grid_to_text, grids_equal
from .prompts import ttt_prompt
from .sampling import with_bos
from .tasks import ArcTask
from .voting import DEFAULT_VIEWS, augmented_views, vote

# Columns compute_rewards reads (edit_id, repeat, question_index, score_base,
# score_adapted, valid, reason) plus the answers themselves.
EVAL_COLUMNS = ["round", "shard", "edit_id", "input_id", "repeat", "question_index", "gold", "answer_base",
                "answer", "score_base", "score_adapted", "correct", "votes", "valid", "reason", "config",
                "n_examples", "steps", "seconds"]


@dataclass(frozen=True)
class ScoringSettings:
    max_new_tokens: int = 64
    vote: bool = False
    views: tuple[str, ...] = DEFAULT_VIEWS

    @classmethod
    def from_config(cls, cfg: dict) -> "ScoringSettings":
        return cls(int(cfg["max_new_tokens"]), bool(cfg["vote"]), tuple(cfg["views"]))


@dataclass
class Answer:
    grid: Grid | None
    votes: int
    raw: str  # the identity view's raw text, for debugging

    @property
    def text(self) -> str:
        return grid_to_text(self.grid) if self.grid is not None else ""


def answer_prompt(task: ArcTask, tokenizer: Any) -> str:
    """Demonstrations, then the query input: the format TTT trains on."""
    return with_bos(tokenizer, ttt_prompt(task.train, task.query.input))


def answer_all(backend: Backend, tokenizer: Any, items: Sequence[tuple[ArcTask, str | None]],
               settings: ScoringSettings) -> list[Answer]:
    """One answer per (task, adapter-or-None), all requests batched into one backend call."""
    requests: list[GenerationRequest] = []
    plan: list[list[tuple[int, Any]]] = []
    for task, adapter in items:
        views = augmented_views(task, settings.views) if settings.vote else [(task, lambda g: g)]
        slots = []
        for view, inverse in views:
            slots.append((len(requests), inverse))
            requests.append(GenerationRequest(answer_prompt(view, tokenizer), adapter=adapter,
                                              max_new_tokens=settings.max_new_tokens, temperature=0.0,
                                              stop=("\n\n", "input")))
        plan.append(slots)
    outputs = backend.generate(requests) if requests else []
    texts = [out[0] if out else "" for out in outputs]
    answers = []
    for slots in plan:
        predictions = [(extract_grid(texts[i]), inverse) for i, inverse in slots]
        grid, count = vote(predictions)
        answers.append(Answer(grid, count, texts[slots[0][0]]))
    return answers


def is_correct(answer: Answer, task: ArcTask) -> bool:
    return grids_equal(answer.grid, task.query.output)


def score_shard(backend: Backend, tokenizer: Any, tasks: Mapping[str, ArcTask], edits: Sequence[SelfEdit],
                manifest: Mapping[tuple[str, int], dict], settings: ScoringSettings) -> list[dict]:
    """One row per edit: its adapter's answer, and the un-adapted model's answer to the same task."""
    from ..inner_loop import checked_adapter  # torch: only where adapters are scored
    task_ids = list(dict.fromkeys(e.input_id for e in edits))
    items: list[tuple[ArcTask, str | None]] = [(tasks[t], None) for t in task_ids]
    adapted: dict[str, int] = {}
    for edit in edits:
        entry = manifest.get((edit.id, 0), {})
        if entry.get("valid", False):
            adapted[edit.id] = len(items)
            items.append((tasks[edit.input_id], checked_adapter(manifest, edit.id, 0)))
    answers = answer_all(backend, tokenizer, items, settings)
    base = {t: answers[i] for i, t in enumerate(task_ids)}
    rows = []
    for edit in edits:
        task = tasks[edit.input_id]
        entry = manifest.get((edit.id, 0), {})
        answer = answers[adapted[edit.id]] if edit.id in adapted else None
        correct = answer is not None and is_correct(answer, task)
        rows.append({
            "round": edit.round, "shard": edit.shard, "edit_id": edit.id, "input_id": edit.input_id, "repeat": 0,
            "question_index": 0, "gold": grid_to_text(task.query.output),
            "answer_base": base[edit.input_id].text, "answer": answer.text if answer else "",
            "score_base": float(is_correct(base[edit.input_id], task)),
            "score_adapted": float(correct) if answer is not None else None, "correct": correct,
            "votes": answer.votes if answer else 0, "valid": bool(entry.get("valid", False)),
            "reason": entry.get("reason") or "", "config": entry.get("config", ""),
            "n_examples": entry.get("n_examples", 0), "steps": entry.get("steps"), "seconds": entry.get("seconds"),
        })
    return rows
