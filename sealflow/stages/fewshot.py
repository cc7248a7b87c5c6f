"""Stages of rules/fewshot.smk: task preparation and one ARC training round.

A round mirrors the knowledge domain: generate -> inner loop -> score -> rewards,
then the shared ReST-EM rules. Evaluation is in ``fewshot_eval``.
"""

from __future__ import annotations

import logging
import statistics
from typing import Sequence

import pandas as pd

from ..atomic import write_csv, write_json, write_jsonl
from ..backends import BackendSettings, make_backend
from ..devices import resolve_placement
from ..fewshot.data import choose_tasks, load_pool, read_tasks
from ..fewshot.inner import TTTSettings, plans_for_edits
from ..fewshot.sampling import SamplingSettings, sample_self_edits
from ..fewshot.scoring import EVAL_COLUMNS, ScoringSettings, score_shard
from ..ids import round_prefix, shard_slice
from ..settings import LoraSettings, TrainPlan
from ..provenance import provenance, write_meta
from ..records import read_edits
from ..restem import REWARD_COLUMNS, compute_rewards

log = logging.getLogger(__name__)

# Model code (torch, transformers, peft) is imported inside the stages that load a model (about ten seconds).


def prepare_tasks(config: dict, *, train: str, eval: str) -> None:  # noqa: A002 (the rule's output names)
    train_out, eval_out = train, eval
    data_cfg = config["fewshot"]["data"]
    train_pool = load_pool(data_cfg, "train")
    eval_pool = load_pool(data_cfg, "eval")
    train, evals = choose_tasks(data_cfg, train_pool, eval_pool)
    for path, tasks, which in ((train_out, train, "train"), (eval_out, evals, "eval")):
        write_jsonl(path, [t.to_dict() for t in tasks])
        write_meta(path, config, source=data_cfg["source"], split=which, ids=[t.id for t in tasks],
                   version=data_cfg.get("version"), seed=data_cfg.get("seed"))
    log.info("prepared %d training tasks %s and %d evaluation tasks %s", len(train), [t.id for t in train],
             len(evals), [t.id for t in evals])


# ---- one training round ---------------------------------------------------------------

def backend_for(config: dict, policy: str, **shared):
    return make_backend(policy, resolve_placement(config["device"]), BackendSettings.from_config(config["backend"]),
                        **shared)


def generate_self_edits(config: dict, *, tasks: str, policy: str, out: str, r: int, s: int) -> None:
    from ..modeling import load_tokenizer, resolve_model_path

    fcfg, tasks_path, round_, shard = config["fewshot"], tasks, r, s
    tasks = shard_slice(read_tasks(tasks_path), shard, fcfg["self_edits"]["shard_size"])
    tokenizer = load_tokenizer(policy)
    backend = backend_for(config, policy)
    try:
        edits = sample_self_edits(backend, tokenizer, tasks, SamplingSettings.from_config(fcfg["self_edits"]),
                                  round_prefix(round_, shard), round_, shard, config["seed"], resolve_model_path(policy))
    finally:
        backend.close()
    write_jsonl(out, [e.to_dict() for e in edits])
    write_meta(out, config, seed=config["seed"], model=resolve_model_path(policy), round=round_, shard=shard)
    log.info("sampled %d self-edits for %d tasks", len(edits), len(tasks))


def train_shard(config: dict, model, tokenizer, policy: str, plans: Sequence[TrainPlan], fault_key: str) -> list[dict]:
    from ..inner_loop import model_fingerprint, run_shard
    from ..modeling import resolve_model_path

    lora = LoraSettings.from_config(config["fewshot"]["inner_loop"]["lora"])
    rows = run_shard(model, tokenizer, model_fingerprint(resolve_model_path(policy)), plans, lora, fault_key=fault_key,
                     parallel_adapters=config["fewshot"]["inner_loop"]["parallel_adapters"])
    trained = [r["seconds"] for r in rows if r.get("status") == "trained"]
    if trained:
        log.info("TTT: %d adapters trained, %.2f s each on average (min %.2f, max %.2f)", len(trained),
                 statistics.fmean(trained), min(trained), max(trained))
    return rows


def inner_loop(config: dict, *, edits: str, tasks: str, policy: str, root: str, adapters: list[str],
               manifest: str, r: int, s: int) -> None:
    """Test-time training of the shard's adapters under ``root``; ``adapters`` are the files the rule declares."""
    from ..inner_loop import check_declared
    from ..modeling import load_model, load_tokenizer, resolve_model_path

    fcfg = config["fewshot"]
    edits_path, tasks_path, adapters_root, manifest_out, round_, shard = edits, tasks, root, manifest, r, s
    edits = read_edits(edits_path)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    model, tokenizer = load_model(policy, resolve_placement(config["device"])), load_tokenizer(policy)
    plans = plans_for_edits(edits, tasks, adapters_root, TTTSettings.from_config(fcfg["inner_loop"]), config["seed"])
    check_declared(plans, adapters)
    rows = train_shard(config, model, tokenizer, policy, plans, f"fewshot-r{round_}-s{shard}")
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(policy),
                                                             round=round_, shard=shard)})


def score_adapters(config: dict, *, edits: str, tasks: str, policy: str, manifest: str, adapters: list[str],
                   out: str) -> None:
    """Answer each task with each adapter; ``adapters`` are the files the rule declares it reads."""
    from ..inner_loop import check_inputs_cover, load_manifest
    from ..modeling import load_tokenizer, resolve_model_path

    edits_path, tasks_path, manifest_path = edits, tasks, manifest
    edits = read_edits(edits_path)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    recorded = load_manifest(manifest_path)
    check_inputs_cover(recorded, adapters)
    tokenizer = load_tokenizer(policy)
    backend = backend_for(config, policy)
    try:
        rows = score_shard(backend, tokenizer, tasks, edits, recorded,
                           ScoringSettings.from_config(config["fewshot"]["scoring"]))
    finally:
        backend.close()
    write_csv(out, rows, EVAL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(policy), solved=sum(bool(r["correct"]) for r in rows),
               valid=sum(bool(r["valid"]) for r in rows), edits=len(rows))


def rewards(config: dict, *, evals: list[str], edits: list[str], out: str) -> None:
    """Reward 1 for an exact grid match, else 0 (absolute, not relative to the base model)."""
    eval_paths, edit_paths = evals, edits
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in eval_paths]).to_dict("records")
    edits = [e for path in edit_paths for e in read_edits(path)]
    result = compute_rewards(rows, edits, relative=False)
    write_csv(out, result, REWARD_COLUMNS)
    write_meta(out, config, n_edits=len(result), n_rewarded=sum(r["reward_mean"] > 0 for r in result))
