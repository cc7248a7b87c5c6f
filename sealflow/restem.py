"""ReST-EM rejection sampling: keep the best self-edits per input as the SFT dataset."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from .records import SelfEdit, parse_bool


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
