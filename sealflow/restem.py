"""ReST-EM's E-step for both domains: a reward per self-edit, then rejection sampling.

Rewards come from the eval rows of a round. Knowledge: reward = adapted minus baseline
accuracy on the passage's questions (``score_base``: the un-adapted policy, or a passage-only
LoRA with ``inner_loop.reward_baseline: passage``), averaged over repeats. ARC: reward = whether the
adapted model solved the task. Invalid edits get reward 0 and keep their reason. The
filter keeps the best self-edits per input: the SFT dataset of the policy update.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from .records import SelfEdit, parse_bool

REWARD_COLUMNS = ["edit_id", "input_id", "round", "shard", "sample", "reward_mean", "reward_std", "score_base",
                  "score_adapted", "n_questions", "n_repeats", "valid", "reason"]


def _num(value) -> float | None:
    if value is None or value == "":
        return None
    value = float(value)
    return None if value != value else value  # NaN from pandas/CSV means "not scored"


def compute_rewards(eval_rows: Iterable[Mapping], edits: Sequence[SelfEdit], relative: bool = True) -> list[dict]:
    """One row per edit, in the order of ``edits`` (every edit gets a row)."""
    by_edit: dict[str, list[Mapping]] = defaultdict(list)
    for row in eval_rows:
        by_edit[str(row["edit_id"])].append(row)
    out = []
    for edit in edits:
        rows = by_edit.get(edit.id, [])
        valid = bool(rows) and all(parse_bool(r["valid"]) for r in rows)
        reason = next((str(r["reason"]) for r in rows if r.get("reason") not in (None, "") and str(r["reason"]) != "nan"), "")
        if not rows:
            reason = reason or "not_scored"
        per_repeat: dict[int, list[tuple[float, float | None]]] = defaultdict(list)
        for r in rows:
            base_score, adapted_score = _num(r["score_base"]), _num(r["score_adapted"])
            # A missing score is an error, not a 0: only an invalid edit has no adapted score.
            if base_score is None or (valid and adapted_score is None):
                raise ValueError(f"eval row of edit {edit.id} (repeat {r['repeat']}, question "
                                 f"{r.get('question_index')}) has no {'score_base' if base_score is None else 'score_adapted'}")
            per_repeat[int(r["repeat"])].append((base_score, adapted_score))
        rewards, base_acc, adapted_acc = [], [], []
        for pairs in per_repeat.values():
            base = sum(b for b, _ in pairs) / len(pairs)
            adapted = sum(a if a is not None else 0.0 for _, a in pairs) / len(pairs)
            base_acc.append(base)
            adapted_acc.append(adapted)
            rewards.append(adapted - base if relative else adapted)
        if not valid:
            rewards = [0.0]
        out.append({
            "edit_id": edit.id, "input_id": edit.input_id, "round": edit.round, "shard": edit.shard,
            "sample": edit.sample,
            "reward_mean": statistics.fmean(rewards) if rewards else 0.0,
            "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
            "score_base": statistics.fmean(base_acc) if base_acc else None,
            "score_adapted": statistics.fmean(adapted_acc) if adapted_acc and valid else None,
            "n_questions": len({r["question_index"] for r in rows}) if rows else 0,
            "n_repeats": len(per_repeat), "valid": valid, "reason": reason,
        })
    return out



def _valid(row: Mapping) -> bool:
    return parse_bool(row["valid"])


def restem_filter(rewards: Iterable[Mapping], edits: Sequence[SelfEdit], keep_top_k: int,
                  min_reward: float | None = None) -> list[dict]:
    """Per input, the ``keep_top_k`` valid edits by mean reward (optionally >= ``min_reward``).

    Ties are broken deterministically by sample number, then edit id, so a rerun keeps
    exactly the same edits. Inputs appear in the order of ``edits``.
    """
    by_id = {e.id: e for e in edits}
    groups: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for row in rewards:
        edit = by_id.get(str(row["edit_id"]))
        if edit is None or not _valid(row):
            continue
        reward = float(row["reward_mean"])
        if min_reward is not None and reward < min_reward:
            continue
        groups[edit.input_id].append((reward, edit.sample, edit.id))
    kept = []
    for input_id in dict.fromkeys(e.input_id for e in edits):
        ranked = sorted(groups.get(input_id, []), key=lambda t: (-t[0], t[1], t[2]))[:keep_top_k]
        for reward, _, eid in ranked:
            edit = by_id[eid]
            kept.append({"prompt": edit.prompt, "completion": edit.completion, "input_id": input_id,
                         "edit_id": eid, "reward": reward})
    return kept
