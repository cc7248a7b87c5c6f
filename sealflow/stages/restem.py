"""Stages of rules/restem.smk (both domains): keep the best self-edits, then SFT the policy on them."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..atomic import read_jsonl, write_jsonl
from ..devices import resolve_placement
from ..settings import LoraSettings, TrainSettings
from ..provenance import write_meta
from ..records import read_edits
from ..restem import restem_filter

log = logging.getLogger(__name__)


def filter_edits(config: dict, *, domain: str, rewards: str, edits: list[str], out: str) -> None:
    rewards_path, edit_paths = rewards, edits
    rcfg = config[domain]["restem"]
    rewards = pd.read_csv(rewards_path, keep_default_na=False).to_dict("records")
    edits = [e for path in edit_paths for e in read_edits(path)]
    kept = restem_filter(rewards, edits, int(rcfg["keep_top_k"]), rcfg.get("min_reward"))
    write_jsonl(out, kept)
    n_inputs = len({e.input_id for e in edits})
    write_meta(out, config, kept=len(kept), inputs=n_inputs, edits=len(edits),
               empty=not kept, keep_top_k=rcfg["keep_top_k"], min_reward=rcfg.get("min_reward"))
    if not kept:
        log.warning("no self-edit passed the filter; the next round's policy will equal this one")
    log.info("kept %d of %d self-edits over %d inputs", len(kept), len(edits), n_inputs)


def replay_for(config: dict, domain: str, round_: int) -> list[str]:
    """The pretraining documents ``{domain}.sft.replay`` mixes into round ``round_``'s update."""
    n = int(config[domain]["sft"].get("replay") or 0)
    if not n:
        return []
    from ..base_model import BuildSettings
    from ..sft import replay_documents
    from .base import corpus_for

    settings = BuildSettings.from_config(config[domain]["base_model"]["build"])
    return replay_documents(corpus_for(domain, settings, config["seed"]), n, config["seed"], round_)


def update(config: dict, *, domain: str, r: int, policy: str, filtered: str, out: str) -> None:
    from ..sft import update_policy  # torch: only in this stage

    filtered_path = filtered
    scfg = config[domain]["sft"]
    rows = read_jsonl(filtered_path)
    stats = update_policy(policy, rows, LoraSettings.from_config(scfg["lora"]),
                          TrainSettings.from_config(scfg, seed=config["seed"]), out,
                          resolve_placement(config["device"]), replay=replay_for(config, domain, r))
    write_meta(Path(out), config, seed=config["seed"], domain=domain, **stats)
