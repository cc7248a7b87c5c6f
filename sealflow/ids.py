"""Identities and artifact paths shared by the rules and the library (no torch, no I/O).

Everything that names a thing twice (a seed, a shard, an edit, an adapter folder, the
policy of a round) is written here once: ``rules/common.smk`` imports this module to
declare files, and the stages import it to write them, so the two cannot drift apart.

Rounds are numbered the same way in both domains: round ``r`` samples from, and
adapts, *the policy of round r*: the base model for r = 1, else the model that round
r - 1's ReST-EM update wrote to ``round{r}/policy``. The policy of round r is the product of
``r - 1`` ReST-EM rounds; summaries report that count in their ``round`` column. Each update
fine-tunes the previous round's policy, or with ``sft.start_from: base`` the base model again
(ReST-EM as Singh et al. define it), on the previous round's kept self-edits.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Sequence

_SLOT = re.compile(r"^p(\d+)-k(\d+)$")


def derived_seed(*parts: object) -> int:
    """A per-request seed that does not depend on batching or on other shards."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def n_shards(n_inputs: int, shard_size: int) -> int:
    return n_inputs // shard_size


def shard_slice(items: Sequence, shard: int, shard_size: int) -> list:
    chunk = list(items[shard * shard_size : (shard + 1) * shard_size])
    if not chunk:
        raise ValueError(f"shard {shard} is empty: only {len(items)} inputs with shard_size={shard_size}")
    return chunk


def slot_name(position: int, sample: int) -> str:
    """Folder name of an edit inside its shard: input position and sample number."""
    return f"p{position:02d}-k{sample}"


def parse_slot(slot: str) -> tuple[int, int]:
    """(position, sample) of a slot name: the one inverse of :func:`slot_name`."""
    match = _SLOT.match(slot)
    if not match:
        raise ValueError(f"not a slot name (p<position>-k<sample>): {slot!r}")
    return int(match.group(1)), int(match.group(2))


def shard_slots(shard_size: int, k: int) -> list[str]:
    """Every slot of a shard, in the order the sampler writes them."""
    return [slot_name(pos, sample) for pos in range(shard_size) for sample in range(k)]


def baseline_slot(position: int) -> str:
    """Folder name of the passage-only adapter of a shard's input (``knowledge.inner_loop.reward_baseline: passage``)."""
    return f"p{position:02d}-passage"


def baseline_slots(shard_size: int) -> list[str]:
    return [baseline_slot(pos) for pos in range(shard_size)]


def baseline_edit_id(input_id: str) -> str:
    """The manifest's name for the passage-only adapter of ``input_id``: no self-edit has it (ids have no colon)."""
    return f"passage:{input_id}"


def edit_id(prefix: str, position: int, sample: int) -> str:
    """``{prefix}-p{pos}-k{sample}``; a training round's prefix is ``r{round}-s{shard}``."""
    return f"{prefix}-{slot_name(position, sample)}"


def round_prefix(round_: int, shard: int) -> str:
    return f"r{round_}-s{shard}"


def slot_of(edit_id_: str) -> str:
    """The slot of an edit id (its last two dash-separated parts), checked."""
    slot = "-".join(edit_id_.split("-")[-2:])
    parse_slot(slot)
    return slot


def adapter_dir(root: str, slot: str, repeat: int = 0) -> str:
    """The adapter folder of (slot, repeat) under a shard's adapter root."""
    return f"{root}/{slot}/rep{repeat}"


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_files(root: str, slots: Sequence[str], repeats: int) -> list[str]:
    """Every file the inner loop of one shard declares."""
    return [f"{adapter_dir(root, slot, rep)}/{name}" for slot in slots for rep in range(repeats) for name in ADAPTER_FILES]


def config_subset(config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The nested part of ``config`` named by dotted ``keys`` (``"knowledge.self_edits"``)."""
    out: dict[str, Any] = {}
    for key in keys:
        parts = key.split(".")
        value: Any = config
        for i, part in enumerate(parts):
            if not isinstance(value, Mapping) or part not in value:
                raise KeyError(f"config has no {'.'.join(parts[: i + 1])}")
            value = value[part]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def base_model_dir(domain_dir: str) -> str:
    return f"{domain_dir}/base/model"


def policy_dir(domain_dir: str, round_: int) -> str:
    """The policy of round ``round_`` (see the module docstring)."""
    if round_ < 1:
        raise ValueError(f"rounds start at 1, got {round_}")
    return base_model_dir(domain_dir) if round_ == 1 else f"{domain_dir}/round{round_}/policy"


SFT_STARTS = ("previous", "base")


def update_start_policy(domain_dir: str, round_: int, start_from: str) -> str:
    """The model that the update writing the policy of round ``round_`` fine-tunes.

    ``previous``: the policy of round ``round_ - 1`` (updates stack up, as in the SEAL authors'
    scripts); ``base``: the base model every time, so a policy is one update away from it and
    drifts no further however many rounds run, while its training data still come from the
    improved policy of the round before.
    """
    if round_ < 2:
        raise ValueError(f"round 1's policy is the base model; updates write rounds 2 and later, got {round_}")
    if start_from not in SFT_STARTS:
        raise ValueError(f"sft.start_from must be one of {SFT_STARTS}, got {start_from!r}")
    return policy_dir(domain_dir, round_ - 1 if start_from == "previous" else 1)
