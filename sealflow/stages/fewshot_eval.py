"""Stages of rules/fewshot_eval.smk: held-out ARC evaluation on tasks no training stage reads.

ICL, TTT with self-edits of the policy of round r (r = 1: the base model's), the oracle
grid of fixed configurations, and the summary table.
"""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from ..atomic import write_csv, write_json, write_jsonl
from ..backends import BackendSettings
from ..backends.owner import DeviceOwner
from ..devices import resolve_placement
from ..fewshot.data import read_tasks
from ..fewshot.evaluation import (DETAIL_COLUMNS, EFFECT_COLUMNS, ICL, ORACLE, SUMMARY_COLUMNS, method_for_round,
                                  oracle_configs, paired_effects, success_by_task, summarize_attempts,
                                  summarize_oracle)
from ..fewshot.inner import TTTSettings, plan_for_config, plans_for_edits
from ..fewshot.sampling import SamplingSettings, sample_self_edits
from ..fewshot.scoring import Answer, ScoringSettings, answer_all, is_correct
from ..fewshot.tasks import ArcTask
from ..ids import adapter_dir, derived_seed
from ..settings import TrainPlan
from ..provenance import provenance, write_meta
from .fewshot import backend_for, train_shard

log = logging.getLogger(__name__)


def _detail(method: str, round_: int, task: ArcTask, edit_id: str, sample: int, entry: dict,
            answer: Answer | None) -> dict:
    return {"method": method, "round": round_, "input_id": task.id, "edit_id": edit_id, "sample": sample,
            "config": entry.get("config", ""), "valid": bool(entry.get("valid", answer is not None)),
            "reason": entry.get("reason") or "", "n_examples": entry.get("n_examples", 0),
            "steps": entry.get("steps"), "seconds": entry.get("seconds"),
            "answer": answer.text if answer else "", "gold": "\n".join("".join(map(str, r)) for r in task.query.output),
            "correct": bool(answer is not None and is_correct(answer, task))}


def _train_and_answer(config: dict, policy: str, tasks: dict[str, ArcTask], plans: Sequence[TrainPlan],
                      owner: DeviceOwner, fault_key: str) -> tuple[list[dict], dict[str, Answer]]:
    """Train every plan, then answer with the adapters: the device goes to training, then to generation."""
    rows = train_shard(config, owner.model(), owner.tokenizer, policy, plans, fault_key)
    valid = [r for r in rows if r["valid"]]
    items = [(tasks[r["input_id"]], r["adapter"]) for r in valid]
    answers = answer_all(owner.backend(), owner.tokenizer, items,
                         ScoringSettings.from_config(config["fewshot"]["scoring"]))
    return rows, {r["edit_id"]: a for r, a in zip(valid, answers)}


def _device_owner(config: dict, policy: str) -> DeviceOwner:
    """The job's training model and generation backend, one on the device at a time (``backends.owner``)."""
    from ..modeling import load_tokenizer

    return DeviceOwner(policy, resolve_placement(config["device"]), BackendSettings.from_config(config["backend"]),
                       load_tokenizer(policy))


def icl(config: dict, *, tasks: str, policy: str, out: str) -> None:
    """In-context learning: the base model (``policy``) answers from the demonstrations alone."""
    from ..modeling import load_tokenizer, resolve_model_path

    tasks_path, base = tasks, policy
    tasks = read_tasks(tasks_path)
    tokenizer = load_tokenizer(base)
    backend = backend_for(config, base)
    try:
        answers = answer_all(backend, tokenizer, [(t, None) for t in tasks],
                             ScoringSettings.from_config(config["fewshot"]["scoring"]))
    finally:
        backend.close()
    rows = [_detail(ICL, 0, t, f"icl-p{i:02d}", 0, {"valid": True}, a) for i, (t, a) in enumerate(zip(tasks, answers))]
    write_csv(out, rows, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(base), solved=sum(r["correct"] for r in rows))


def ttt_self_edits(config: dict, *, tasks: str, policy: str, r: int, edits: str, root: str, manifest: str,
                   detail: str) -> None:
    """TTT with ``eval_k`` self-edits per task sampled from the policy of round ``round_``.

    That policy has had ``p = round_ - 1`` ReST-EM updates: ``p`` is the summary's
    ``round`` column and the ``e{p}`` prefix of the edit ids (and so of their seeds).
    """
    from ..modeling import resolve_model_path

    fcfg = config["fewshot"]
    tasks_path, edits_out, adapters_root, manifest_out, out, p = tasks, edits, root, manifest, detail, r - 1
    tasks = read_tasks(tasks_path)
    by_id = {t.id: t for t in tasks}
    sampling = SamplingSettings.from_config({**fcfg["self_edits"], "k": fcfg["evaluation"]["eval_k"]})
    with _device_owner(config, policy) as owner:
        edits = sample_self_edits(owner.backend(), owner.tokenizer, tasks, sampling, f"e{p}-s0", p, 0, config["seed"],
                                  resolve_model_path(policy))
        write_jsonl(edits_out, [e.to_dict() for e in edits])
        write_meta(edits_out, config, seed=config["seed"], model=resolve_model_path(policy), policy_round=p)
        plans = plans_for_edits(edits, by_id, adapters_root, TTTSettings.from_config(fcfg["inner_loop"]),
                                config["seed"])
        rows, answers = _train_and_answer(config, policy, by_id, plans, owner, f"fewshot-eval{p}")
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(policy), policy_round=p)})
    method = method_for_round(p, int(fcfg["rounds"]))
    entries = {r["edit_id"]: r for r in rows}
    detail = [_detail(method, p, by_id[e.input_id], e.id, e.sample, entries[e.id], answers.get(e.id)) for e in edits]
    write_csv(out, detail, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(policy), policy_round=p, method=method,
               solved=sum(r["correct"] for r in detail), valid=sum(r["valid"] for r in detail))


def oracle(config: dict, *, tasks: str, policy: str, root: str, manifest: str, detail: str) -> None:
    """Every configuration of the fixed grid on every task, on the base model (``policy``)."""
    from ..modeling import resolve_model_path

    fcfg = config["fewshot"]
    tasks_path, base, adapters_root, manifest_out, out = tasks, policy, root, manifest, detail
    tasks = read_tasks(tasks_path)
    by_id = {t.id: t for t in tasks}
    settings = TTTSettings.from_config(fcfg["inner_loop"])
    configs = oracle_configs(fcfg["evaluation"]["oracle"])
    plans, labels = [], {}
    for pos, task in enumerate(tasks):
        for c, tool in enumerate(configs):
            edit_id = f"oracle-p{pos:02d}-c{c}"
            labels[edit_id] = (task, c)
            plans.append(plan_for_config(task, tool, None, edit_id, adapter_dir(adapters_root, f"p{pos:02d}-c{c}"),
                                         settings, derived_seed(config["seed"], edit_id, 0)))
    with _device_owner(config, base) as owner:
        rows, answers = _train_and_answer(config, base, by_id, plans, owner, "fewshot-oracle")
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(base))})
    entries = {r["edit_id"]: r for r in rows}
    detail = [_detail(ORACLE, 0, task, eid, c, entries[eid], answers.get(eid)) for eid, (task, c) in labels.items()]
    write_csv(out, detail, DETAIL_COLUMNS)
    write_meta(out, config, model=resolve_model_path(base), configs=len(configs),
               solved_tasks=sorted({r["input_id"] for r in detail if r["correct"]}))


def summary(config: dict, *, icl: str, ttt: Sequence[str], oracle: str, out: str, effects: str) -> None:
    """One row per method (``out``) and paired differences between methods (``effects``).

    ``ttt[p]`` holds TTT with self-edits of the policy after ``p`` updates (of round p + 1).
    """
    icl_path, ttt_paths, oracle_path = icl, ttt, oracle
    rounds = int(config["fewshot"]["rounds"])

    def rows_of(path: str) -> list[dict]:
        return pd.read_csv(path, keep_default_na=False, dtype=str).to_dict("records")

    detail = {ICL: rows_of(icl_path), ORACLE: rows_of(oracle_path)}
    table = [summarize_attempts(ICL, 0, detail[ICL])]
    for p, path in enumerate(ttt_paths):
        method = method_for_round(p, rounds)
        detail[method] = rows_of(path)
        table.append(summarize_attempts(method, p, detail[method]))
    table.append(summarize_oracle(detail[ORACLE]))
    write_csv(out, table, SUMMARY_COLUMNS)
    write_meta(out, config, rounds=rounds, eval_k=config["fewshot"]["evaluation"]["eval_k"])
    samples = int(config["fewshot"]["evaluation"]["bootstrap_samples"])
    effect_rows = paired_effects({m: success_by_task(rows, m) for m, rows in detail.items()}, samples, config["seed"])
    write_csv(effects, effect_rows, EFFECT_COLUMNS)
    write_meta(effects, config, interval=f"95% percentile bootstrap of the mean paired difference, {samples} "
               "resamples of the evaluation tasks; per task, a method's share of solved attempts")
    for row in effect_rows:
        log.info("%s: %+.3f (95%% CI %+.3f, %+.3f) over %d tasks", row["pair"], row["difference"], row["ci95_low"],
                 row["ci95_high"], row["n_tasks"])
    for row in table:
        log.info("%-22s round %s: %d/%d solved (%.1f%%, 95%% CI %.1f-%.1f%%)", row["method"], row["round"],
                 row["n_solved"], row["n_attempts"], 100 * row["success_rate"], 100 * row["ci95_low"],
                 100 * row["ci95_high"])
