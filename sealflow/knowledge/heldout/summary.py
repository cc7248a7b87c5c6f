"""Per-question held-out rows -> accuracies with 95% intervals, the paper's table, and the
continual-learning (forgetting) matrix. Pure functions of rows; no model is loaded here."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...stats import mean_interval, paired_bootstrap_interval
from ..grading import grade_all
from .methods import BASE, SETTINGS, method_order, method_round

ROW_COLUMNS = ["method", "setting", "round", "step", "repeat", "sample", "passage_index", "input_id",
               "question_index", "question", "gold", "answer", "score", "valid", "reason"]
SUMMARY_COLUMNS = ["method", "setting", "round", "accuracy", "ci95_low", "ci95_high", "n_questions",
                   "n_scores", "ci_method", "adapted_model", "self_edit_writer"]
FORGETTING_COLUMNS = ["method", "passage", "input_id", "before", "just_learnt", "at_end", "forgetting"]
EFFECT_COLUMNS = ["pair", "method", "baseline", "setting", "difference", "ci95_low", "ci95_high", "n_questions",
                  "ci_method"]


def grade_rows(rows: Sequence[Mapping], passages: Mapping[str, Any], scoring) -> list[dict]:
    """``rows`` with their ``score`` (every gold answer of the question counts)."""
    items = []
    for row in rows:
        passage = passages.get(str(row["input_id"]))
        if passage is None:
            raise ValueError(f"answer row for passage {row['input_id']} that is not a validation passage")
        q = passage.questions[int(row["question_index"])]
        items.append((q.question, q.answers, row["answer"]))
    scores = grade_all(items, scoring)
    return [{**row, "score": score} for row, score in zip(rows, scores)]


def _question_key(row: Mapping[str, Any]) -> tuple[str, int]:
    return (str(row["input_id"]), int(row["question_index"]))


def final_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows that count for accuracy: the last continual step (all passages learnt), else all."""
    steps = [int(r["step"]) for r in rows if str(r.get("step", "")) not in ("", "nan", "None")]
    if not steps:
        return list(rows)
    last = max(steps)
    return [r for r in rows if str(r.get("step", "")) not in ("", "nan", "None") and int(r["step"]) == last]


def per_question_scores(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Mean score per question over its samples and repeats, in first-seen order."""
    buckets: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        buckets.setdefault(_question_key(row), []).append(float(row["score"]))
    return [sum(v) / len(v) for v in buckets.values()]


def summary_row(method: str, setting: str, rows: Sequence[Mapping[str, Any]], adapted: str = "",
                writer: str = "", bootstrap_samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    counted = final_rows(rows) if setting == "continual" else list(rows)
    scores = per_question_scores(counted)
    mean, lo, hi, how = mean_interval(scores, bootstrap_samples, seed)
    rnd = method_round(method)
    return {"method": method, "setting": setting, "round": "" if rnd is None else rnd,
            "accuracy": mean, "ci95_low": lo, "ci95_high": hi, "n_questions": len(scores),
            "n_scores": len(counted), "ci_method": how, "adapted_model": adapted, "self_edit_writer": writer}


def per_question_map(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], float]:
    """Each question's mean score over its samples and repeats, keyed by (passage, question)."""
    buckets: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        buckets.setdefault(_question_key(row), []).append(float(row["score"]))
    return {key: sum(v) / len(v) for key, v in buckets.items()}


def effect_pairs(methods: Sequence[str]) -> list[tuple[str, str]]:
    """(method, baseline) pairs of the paper's ladder: each method against the one before it
    in table order, and the last round (SEAL) against the base model as well."""
    ordered = method_order(methods)
    pairs = list(zip(ordered[1:], ordered[:-1]))
    rounds = [m for m in ordered if method_round(m) not in (None, 0)]
    if rounds and BASE in ordered and (rounds[-1], BASE) not in pairs:
        pairs.append((rounds[-1], BASE))
    return pairs


def effect_rows(setting: str, scores: Mapping[str, Mapping[tuple[str, int], float]], bootstrap_samples: int = 2000,
                seed: int = 0) -> list[dict[str, Any]]:
    """Paired differences ``method - baseline`` over the questions both answered, with 95% intervals."""
    out = []
    for method, baseline in effect_pairs(list(scores)):
        shared = [q for q in scores[method] if q in scores[baseline]]
        diff, lo, hi = paired_bootstrap_interval([scores[method][q] for q in shared],
                                                 [scores[baseline][q] for q in shared], bootstrap_samples, seed)
        out.append({"pair": f"{method} - {baseline}", "method": method, "baseline": baseline, "setting": setting,
                    "difference": diff, "ci95_low": lo, "ci95_high": hi, "n_questions": len(shared),
                    "ci_method": "paired bootstrap over questions"})
    return out


def sort_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    order = {m: i for i, m in enumerate(method_order([r["method"] for r in rows]))}
    return sorted((dict(r) for r in rows), key=lambda r: (SETTINGS.index(r["setting"]), order[r["method"]]))


def wide_table(summary: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The paper's layout: one row per method, one accuracy column per setting (percent)."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in summary)]
    table: dict[str, dict[str, Any]] = {}
    for m in method_order([r["method"] for r in summary]):
        rnd = method_round(m)
        table[m] = {"method": m, "round": "" if rnd is None else rnd, **{s: "" for s in settings}}
    for r in summary:
        acc = r["accuracy"]
        table[r["method"]][r["setting"]] = "" if acc != acc else round(100 * float(acc), 1)
    return list(table.values())


def continual_matrix(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Accuracy after update i (rows, i = 1..N) on passage j (columns, in learning order).

    Row i learnt column i (the diagonal); cells of passages not learnt yet are blank
    (only passages seen so far are evaluated). Step-0 rows (before any update) are not
    part of the matrix; see :func:`accuracy_before`.
    """
    cells: dict[tuple[int, str], list[float]] = {}
    for row in rows:
        cells.setdefault((int(row["step"]), str(row["input_id"])), []).append(float(row["score"]))
    steps = sorted({step for step, _ in cells if step > 0})
    out = []
    for step in steps:
        record: dict[str, Any] = {"after_update": step}
        for pid in order:
            values = cells.get((step, pid))
            record[pid] = sum(values) / len(values) if values else ""
        out.append(record)
    return out


def accuracy_before(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per passage: mean score before any update (continual step 0)."""
    cells: dict[str, list[float]] = {}
    for row in rows:
        if str(row.get("step", "")) not in ("", "nan", "None") and int(row["step"]) == 0:
            cells.setdefault(str(row["input_id"]), []).append(float(row["score"]))
    return {pid: sum(v) / len(v) for pid, v in cells.items()}


def _cell(matrix: Sequence[Mapping[str, Any]], step: int, pid: str) -> float:
    for row in matrix:
        if int(row["after_update"]) == step:
            value = row.get(pid, "")
            return float(value) if value not in ("", None) and value == value else float("nan")
    return float("nan")


def forgetting_rows(method: str, matrix: Sequence[Mapping[str, Any]], order: Sequence[str],
                    before: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Per passage j: accuracy before any update, right after learning j (row j+1), and at the end."""
    last = max((int(r["after_update"]) for r in matrix), default=0)
    rows = []
    for j, pid in enumerate(order):
        learnt, end = _cell(matrix, j + 1, pid), _cell(matrix, last, pid)
        rows.append({"method": method, "passage": j, "input_id": pid,
                     "before": (before or {}).get(pid, float("nan")), "just_learnt": learnt,
                     "at_end": end, "forgetting": learnt - end})

    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] == r[key]]
        return sum(values) / len(values) if values else float("nan")

    rows.append({"method": method, "passage": "mean", "input_id": "", "before": mean("before"),
                 "just_learnt": mean("just_learnt"), "at_end": mean("at_end"), "forgetting": mean("forgetting")})
    return rows
