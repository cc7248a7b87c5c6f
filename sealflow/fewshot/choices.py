"""Which configuration choices the ARC policy made, round by round, and which paid off.

A self-edit is a tool configuration: four augmentation switches, a strategy, a learning
rate and an epoch count. Per round and per slot value this counts how often the policy
chose it (its share of that round's parseable self-edits) and the mean reward of the
self-edits that chose it. ReST-EM working shows as the shares moving, round after round,
toward the values with high reward.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from .toolconfig import parse_self_edit

CHOICE_COLUMNS = ["round", "slot", "value", "n", "share", "mean_reward"]


def choice_rows(round_: int, rewards: Iterable[Mapping], edits: Sequence[Mapping]) -> list[dict]:
    """One row per (slot, value) chosen in this round; unparseable self-edits have no choices to count."""
    reward = {str(r["edit_id"]): float(r["reward_mean"]) for r in rewards}
    tally: dict[tuple[str, str], list[float]] = defaultdict(list)
    n_parsed = 0
    for edit in edits:
        config = parse_self_edit(str(edit["completion"])).config
        if config is None or str(edit["id"]) not in reward:
            continue
        n_parsed += 1
        for slot, value in config.to_dict().items():
            tally[slot, str(value)].append(reward[str(edit["id"])])
    return [{"round": round_, "slot": slot, "value": value, "n": len(values), "share": len(values) / n_parsed,
             "mean_reward": sum(values) / len(values)} for (slot, value), values in sorted(tally.items())]
