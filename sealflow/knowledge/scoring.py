"""Scoring a shard: closed-book answers with and without each self-edit's adapter, then grades.

The baseline's answers (un-adapted, or the passage-only adapter) are computed once per
passage and repeat (not once per edit), and all of
a shard's requests go to the backend in one call so vLLM can batch across adapters.
Answering (GPU) and grading (CPU, where a judge's endpoint is reachable) are two steps.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..backends import Backend, GenerationRequest
from ..ids import baseline_edit_id
from ..records import Passage, SelfEdit
from .grading import clean_prediction, grade_all
from .prompts import answer_prompt
from .scoring_settings import ScoringSettings  # re-exported

EVAL_COLUMNS = ["round", "shard", "edit_id", "input_id", "repeat", "question_index", "question", "gold",
                "answer_base", "answer_adapted", "score_base", "score_adapted", "valid", "reason"]


def answer_request(question: str, adapter: str | None, settings: ScoringSettings,
                   tokenizer: Any = None) -> GenerationRequest:
    """A closed-book question, greedy, cut at the first newline (training rounds and held-out alike);
    ``tokenizer`` renders the chat form (``settings.question_prompt``)."""
    return GenerationRequest(answer_prompt(question, settings.question_prompt, tokenizer), adapter=adapter,
                             max_new_tokens=settings.max_new_tokens, temperature=0.0, stop=("\n",))


def answer_shard(backend: Backend, passages: Mapping[str, Passage], edits: Sequence[SelfEdit],
                 manifest: Mapping[tuple[str, int], dict], settings: ScoringSettings, eval_repeats: int,
                 reuse_training: bool, reward_baseline: str = "base") -> list[dict]:
    """Ungraded rows of a shard: one per (edit, repeat, question), with its adapter and with the baseline.

    The baseline (``answer_base``) is the un-adapted policy, asked once per question, or with
    ``reward_baseline: passage`` the passage-only adapter of the same repeat. An invalid edit's
    adapted answer is None (not asked). :func:`grade_shard` adds the scores, in a CPU job.
    """
    from ..inner_loop import checked_adapter  # torch: not for grading
    shard_passages = list(dict.fromkeys(e.input_id for e in edits))
    tokenizer = getattr(backend, "tokenizer", None)  # renders a chat question prompt
    trained = (lambda repeat: 0) if reuse_training else (lambda repeat: repeat)
    per_repeat = reward_baseline == "passage"  # a passage-only adapter per repeat; the un-adapted policy once
    requests: list[GenerationRequest] = []
    base_index: dict[tuple[str, int, int], int] = {}
    for pid in shard_passages:
        for repeat in range(eval_repeats if per_repeat else 1):
            adapter = checked_adapter(manifest, baseline_edit_id(pid), trained(repeat)) if per_repeat else None
            for qi, q in enumerate(passages[pid].questions):
                base_index[(pid, repeat, qi)] = len(requests)
                requests.append(answer_request(q.question, adapter, settings, tokenizer))
    adapted_index: dict[tuple[str, int, int], int] = {}
    for edit in edits:
        if not manifest.get((edit.id, 0), {}).get("valid", True):
            continue
        for repeat in range(eval_repeats):
            adapter = checked_adapter(manifest, edit.id, trained(repeat))
            for qi, q in enumerate(passages[edit.input_id].questions):
                adapted_index[(edit.id, repeat, qi)] = len(requests)
                requests.append(answer_request(q.question, adapter, settings, tokenizer))
    answers = [clean_prediction(out[0] if out else "") for out in backend.generate(requests)]

    rows = []
    for edit in edits:
        entry = manifest.get((edit.id, 0), {})
        for repeat in range(eval_repeats):
            base_repeat = repeat if per_repeat else 0
            for qi, q in enumerate(passages[edit.input_id].questions):
                key = (edit.id, repeat, qi)
                rows.append({
                    "round": edit.round, "shard": edit.shard, "edit_id": edit.id, "input_id": edit.input_id,
                    "repeat": repeat, "question_index": qi, "question": q.question, "gold": q.answer,
                    "answer_base": answers[base_index[(edit.input_id, base_repeat, qi)]],
                    "answer_adapted": answers[adapted_index[key]] if key in adapted_index else None,
                    "valid": bool(entry.get("valid", True)), "reason": entry.get("reason") or "",
                })
    return rows


def grade_shard(rows: Sequence[Mapping], passages: Mapping[str, Passage], settings: ScoringSettings) -> list[dict]:
    """``rows`` of :func:`answer_shard` with ``score_base`` and ``score_adapted`` (``EVAL_COLUMNS``).

    Each distinct (question, answer) is graded once, so a judge sees a passage's base
    answers once, not once per self-edit.
    """
    keys: dict[tuple[str, int, str], int] = {}
    items = []
    for row in rows:
        q = passages[str(row["input_id"])].questions[int(row["question_index"])]
        for answer in (row["answer_base"], row["answer_adapted"]):
            key = (str(row["input_id"]), int(row["question_index"]), answer)
            if answer is not None and key not in keys:
                keys[key] = len(items)
                items.append((q.question, q.answers, answer))
    scores = grade_all(items, settings)

    def score(row: Mapping, answer: str | None) -> float | None:
        return None if answer is None else scores[keys[(str(row["input_id"]), int(row["question_index"]), answer)]]

    return [{**row, "answer_adapted": row["answer_adapted"] if row["answer_adapted"] is not None else "",
             "score_base": score(row, row["answer_base"]), "score_adapted": score(row, row["answer_adapted"])}
            for row in rows]
