"""The held-out evaluation table: ICL, TTT with base/RL-trained self-edits, oracle TTT.

The paper's protocol: for every evaluation task sample ``eval_k`` self-edits from a
policy, train and answer with each; the success rate is the fraction of (task,
self-edit) pairs solved. ICL answers once per task without training. The oracle row
is an upper bound: a task counts as solved when any configuration of a small fixed
grid solves it. Intervals are Wilson score intervals (sound at 0% and 100%).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from ..records import parse_bool
from ..stats import wilson_interval
from .toolconfig import ToolConfig, parse_self_edit

SUMMARY_COLUMNS = ["method", "round", "n_tasks", "n_attempts", "n_solved", "success_rate", "ci95_low", "ci95_high"]
DETAIL_COLUMNS = ["method", "round", "input_id", "edit_id", "sample", "config", "valid", "reason", "n_examples",
                  "steps", "seconds", "answer", "gold", "correct"]

ICL = "icl"
TTT_BASE = "ttt_base_self_edits"  # TTT with self-edits of the base model (no RL)
TTT_RL = "ttt_rl_self_edits"  # TTT with self-edits of the policy after some rounds (not the last)
SEAL = "seal"  # the policy after the last round
ORACLE = "oracle_ttt"


def method_for_round(p: int, rounds: int) -> str:
    """Name of the row for self-edits of the policy after ``p`` ReST-EM rounds."""
    if p == 0:
        return TTT_BASE
    return SEAL if p == rounds else TTT_RL


def summary_row(method: str, round_: int, n_tasks: int, n_attempts: int, n_solved: int) -> dict:
    low, high = wilson_interval(n_solved, n_attempts)
    return {"method": method, "round": round_, "n_tasks": n_tasks, "n_attempts": n_attempts, "n_solved": n_solved,
            "success_rate": n_solved / n_attempts if n_attempts else 0.0, "ci95_low": low, "ci95_high": high}


def summarize_attempts(method: str, round_: int, rows: Sequence[Mapping]) -> dict:
    """Every row is one attempt (ICL: one per task; TTT: one per (task, self-edit))."""
    tasks = {str(r["input_id"]) for r in rows}
    solved = sum(parse_bool(r["correct"]) for r in rows)
    return summary_row(method, round_, len(tasks), len(rows), solved)


def oracle_solved(rows: Iterable[Mapping]) -> dict[str, bool]:
    """Per task: whether any configuration of the grid solved it."""
    out: dict[str, bool] = defaultdict(bool)
    for r in rows:
        out[str(r["input_id"])] |= parse_bool(r["correct"])
    return dict(out)


def summarize_oracle(rows: Sequence[Mapping]) -> dict:
    solved = oracle_solved(rows)
    return summary_row(ORACLE, 0, len(solved), len(solved), sum(solved.values()))


def oracle_configs(entries: Sequence[Mapping]) -> list[ToolConfig]:
    """The configured grid, each entry in any layout ``parse_self_edit`` accepts."""
    import json

    configs = []
    for number, entry in enumerate(entries):
        parsed = parse_self_edit(json.dumps(dict(entry)))
        if parsed.config is None:
            raise ValueError(f"fewshot.evaluation.oracle[{number}] is not a valid tool configuration: {parsed.reason}")
        configs.append(parsed.config)
    return configs
