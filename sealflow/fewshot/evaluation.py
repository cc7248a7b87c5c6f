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
from ..stats import paired_bootstrap_interval, wilson_interval
from .toolconfig import ToolConfig, parse_self_edit

SUMMARY_COLUMNS = ["method", "round", "n_tasks", "n_attempts", "n_solved", "success_rate", "ci95_low", "ci95_high"]
EFFECT_COLUMNS = ["pair", "method", "baseline", "setting", "difference", "ci95_low", "ci95_high", "n_tasks",
                  "ci_method"]
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


def success_by_task(rows: Iterable[Mapping], method: str = "") -> dict[str, float]:
    """Per task, the share of its attempts solved (ICL: 0 or 1); the oracle's rows are
    configurations, and it solves a task (1) when any of them does."""
    rows = list(rows)
    if method == ORACLE:
        return {task: float(solved) for task, solved in oracle_solved(rows).items()}
    attempts: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        attempts[str(r["input_id"])].append(parse_bool(r["correct"]))
    return {task: sum(a) / len(a) for task, a in attempts.items()}


def paired_effects(success: Mapping[str, Mapping[str, float]], samples: int = 2000, seed: int = 0) -> list[dict]:
    """SEAL - TTT with base self-edits, TTT with base self-edits - ICL, oracle - SEAL, on the tasks all share.

    ``success`` maps a method to its ``success_by_task``; a pair with a missing method is left out.
    """
    out = []
    for method, baseline in [(SEAL, TTT_BASE), (TTT_BASE, ICL), (ORACLE, SEAL)]:
        if method not in success or baseline not in success:
            continue
        tasks = sorted(set(success[method]) & set(success[baseline]))
        diff, low, high = paired_bootstrap_interval([success[method][t] for t in tasks],
                                                    [success[baseline][t] for t in tasks], samples, seed)
        out.append({"pair": f"{method} - {baseline}", "method": method, "baseline": baseline,
                    "setting": "evaluation tasks", "difference": diff, "ci95_low": low, "ci95_high": high,
                    "n_tasks": len(tasks), "ci_method": "paired bootstrap over tasks"})
    return out
