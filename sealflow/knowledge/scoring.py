"""Scoring a shard: closed-book answers with and without each self-edit's adapter.

The un-adapted answers are computed once per passage (not once per edit), and all of
a shard's requests go to the backend in one call so vLLM can batch across adapters.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..backends import Backend, GenerationRequest
from ..inner_loop import checked_adapter
from ..records import Passage, SelfEdit
from .grading import clean_prediction, grade
from .judge import JudgeConfig, judge_answers
from .prompts import question_prompt
from .scoring_settings import ScoringSettings  # re-exported

EVAL_COLUMNS = ["round", "shard", "edit_id", "input_id", "repeat", "question_index", "question", "gold",
                "answer_base", "answer_adapted", "score_base", "score_adapted", "valid", "reason"]


def answer_request(question: str, adapter: str | None, settings: ScoringSettings) -> GenerationRequest:
    """A closed-book question, greedy, cut at the first newline (training rounds and held-out alike)."""
    return GenerationRequest(question_prompt(question), adapter=adapter, max_new_tokens=settings.max_new_tokens,
                             temperature=0.0, stop=("\n",))


def grade_all(items: Sequence[tuple[str, Sequence[str], str]], settings: ScoringSettings) -> list[float]:
    """Scores in [0, 1] for (question, gold answers, prediction) triples."""
    if settings.grader == "judge":
        return judge_answers(items, JudgeConfig.from_config(settings.judge or {}))
    return [grade(pred, gold, settings.grader) for _, gold, pred in items]


def score_shard(backend: Backend, passages: Mapping[str, Passage], edits: Sequence[SelfEdit],
                manifest: Mapping[tuple[str, int], dict], settings: ScoringSettings, eval_repeats: int,
                reuse_training: bool) -> list[dict]:
    shard_passages = list(dict.fromkeys(e.input_id for e in edits))
    requests: list[GenerationRequest] = []
    base_index: dict[tuple[str, int], int] = {}
    for pid in shard_passages:
        for qi, q in enumerate(passages[pid].questions):
            base_index[(pid, qi)] = len(requests)
            requests.append(answer_request(q.question, None, settings))
    adapted_index: dict[tuple[str, int, int], int] = {}
    for edit in edits:
        if not manifest.get((edit.id, 0), {}).get("valid", True):
            continue
        for repeat in range(eval_repeats):
            adapter = checked_adapter(manifest, edit.id, 0 if reuse_training else repeat)
            for qi, q in enumerate(passages[edit.input_id].questions):
                adapted_index[(edit.id, repeat, qi)] = len(requests)
                requests.append(answer_request(q.question, adapter, settings))
    answers = [clean_prediction(out[0] if out else "") for out in backend.generate(requests)]

    items = []
    for pid, qi in base_index:
        q = passages[pid].questions[qi]
        items.append((q.question, q.answers, answers[base_index[(pid, qi)]]))
    for (eid, repeat, qi), index in adapted_index.items():
        q = passages[next(e.input_id for e in edits if e.id == eid)].questions[qi]
        items.append((q.question, q.answers, answers[index]))
    scores = grade_all(items, settings)
    base_scores = dict(zip(base_index, scores[: len(base_index)]))
    adapted_scores = dict(zip(adapted_index, scores[len(base_index):]))

    rows = []
    for edit in edits:
        entry = manifest.get((edit.id, 0), {})
        valid = bool(entry.get("valid", True))
        for repeat in range(eval_repeats):
            for qi, q in enumerate(passages[edit.input_id].questions):
                key = (edit.id, repeat, qi)
                rows.append({
                    "round": edit.round, "shard": edit.shard, "edit_id": edit.id, "input_id": edit.input_id,
                    "repeat": repeat, "question_index": qi, "question": q.question, "gold": q.answer,
                    "answer_base": answers[base_index[(edit.input_id, qi)]],
                    "answer_adapted": answers[adapted_index[key]] if key in adapted_index else "",
                    "score_base": base_scores[(edit.input_id, qi)],
                    "score_adapted": adapted_scores.get(key),
                    "valid": valid, "reason": entry.get("reason") or "",
                })
    return rows
