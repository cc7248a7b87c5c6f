"""Stages of rules/knowledge.smk: one function per rule; keyword names are the rule's file, param and wildcard names."""

from __future__ import annotations

import logging

import pandas as pd

from ..atomic import read_jsonl, write_csv, write_json, write_jsonl
from ..backends import BackendSettings, make_backend
from ..devices import resolve_placement
from ..ids import shard_slice
from ..knowledge.data import load_splits, read_passages_jsonl, write_passages_jsonl
from ..knowledge.faithfulness import content_words, faithfulness, mean
from ..knowledge.inner import InnerSettings, plans_for_edits
from ..knowledge.sampling import SamplingSettings, import_round_edits, sample_self_edits
from ..knowledge.scoring import EVAL_COLUMNS, ScoringSettings, answer_shard, grade_shard
from ..knowledge.seal_layout import read_seal_file, to_seal_layout, write_seal_file
from ..settings import LoraSettings, TrainSettings
from ..provenance import provenance, write_meta
from ..records import parse_bool, read_edits
from ..restem import REWARD_COLUMNS, compute_rewards
from ..runtime import collect_warnings
from ..worldgen import generate_passages

log = logging.getLogger(__name__)

# Model code (torch, transformers, peft) is imported inside the stages that load a model:
# importing it costs about ten seconds, which a grading or filtering job should not pay.


def prepare_passages(config: dict, *, train: str, val: str) -> None:
    train_out, val_out = train, val
    data_cfg = config["knowledge"]["data"]
    with collect_warnings("sealflow.knowledge.data") as dropped:
        train, val = load_splits(data_cfg, generated=generate_passages)
    write_passages_jsonl(train_out, train)
    write_passages_jsonl(val_out, val)
    for path, rows in ((train_out, train), (val_out, val)):
        write_meta(path, config, seed=data_cfg["seed"], source=data_cfg["source"], n_passages=len(rows),
                   n_questions=sum(len(p.questions) for p in rows), dropped=dropped.messages)
    log.info("prepared %d train and %d validation passages", len(train), len(val))


def generate_self_edits(config: dict, *, passages: str, policy: str, out: str, r: int, s: int,
                        imported: str | None = None) -> None:
    """Sample the shard's self-edits from ``policy``, or read them from ``imported`` (a file in the
    SEAL authors' layout, given for the rounds of ``knowledge.import_self_edits.rounds``)."""
    from ..modeling import load_tokenizer, resolve_model_path

    kcfg, passages_path, round_, shard = config["knowledge"], passages, r, s
    passages = shard_slice(read_passages_jsonl(passages_path), shard, kcfg["self_edits"]["shard_size"])
    tokenizer = load_tokenizer(policy)
    settings = SamplingSettings.from_config(kcfg["self_edits"])
    if imported:
        with collect_warnings("sealflow.knowledge.seal_layout") as seen:
            edits, report = import_round_edits(read_seal_file(imported), passages, settings, tokenizer, round_,
                                               shard, config["seed"], imported)
        write_jsonl(out, [e.to_dict() for e in edits])
        write_meta(out, config, seed=config["seed"], model=f"file:{imported}", round=round_, shard=shard,
                   **report.as_meta(), warnings=seen.messages)
        log.info("imported %d self-edits for %d passages from %s", len(edits), len(passages), imported)
        return
    placement = resolve_placement(config["device"])
    backend = make_backend(policy, placement, BackendSettings.from_config(config["backend"]))
    try:
        edits = sample_self_edits(backend, tokenizer, passages, settings, round_, shard, config["seed"],
                                  resolve_model_path(policy))
    finally:
        backend.close()
    write_jsonl(out, [e.to_dict() for e in edits])
    write_meta(out, config, seed=config["seed"], model=resolve_model_path(policy), round=round_, shard=shard)
    log.info("sampled %d self-edits for %d passages", len(edits), len(passages))


def export_self_edits(config: dict, *, edits: list[str], passages: str, out: str) -> None:
    """The round's self-edits (every shard) in the SEAL authors' layout."""
    records = to_seal_layout(read_passages_jsonl(passages), [e for path in edits for e in read_edits(path)])
    write_seal_file(out, records)
    write_meta(out, config, layout="SEAL authors' synthetic data: [{title, context, questions, completions, prompt}]",
               n_passages=len(records), n_edits=sum(len(r["completions"]) for r in records))
    log.info("exported %d passages' self-edits to %s", len(records), out)


def inner_loop(config: dict, *, edits: str, passages: str, policy: str, root: str, adapters: list[str],
               manifest: str, r: int, s: int) -> None:
    """Train the shard's adapters under ``root``; ``adapters`` are the files the rule declares."""
    from ..inner_loop import check_declared, model_fingerprint, run_shard
    from ..modeling import load_model, load_tokenizer, resolve_model_path

    kcfg = config["knowledge"]
    edits_path, passages_path, adapters_root, manifest_out, round_, shard = edits, passages, root, manifest, r, s
    icfg = kcfg["inner_loop"]
    edits = read_edits(edits_path)
    passages = {p.id: p for p in read_passages_jsonl(passages_path)}
    placement = resolve_placement(config["device"])
    model, tokenizer = load_model(policy, placement), load_tokenizer(policy)
    lora = LoraSettings.from_config(icfg["lora"])
    plans = plans_for_edits(edits, passages, adapters_root, InnerSettings.from_config(icfg),
                            TrainSettings.from_config(icfg), config["seed"])
    check_declared(plans, adapters)
    rows = run_shard(model, tokenizer, model_fingerprint(resolve_model_path(policy)), plans, lora,
                     fault_key=f"knowledge-r{round_}-s{shard}", parallel_adapters=icfg["parallel_adapters"])
    write_json(manifest_out, {"adapters": rows, **provenance(config, model=resolve_model_path(policy),
                                                             round=round_, shard=shard)})


def score_adapters(config: dict, *, edits: str, passages: str, policy: str, manifest: str, adapters: list[str],
                   answers: str) -> None:
    """Ungraded answers with and without each adapter (grading is ``grade_answers``, a CPU rule);
    ``adapters`` are the files the rule declares it reads."""
    from ..inner_loop import check_inputs_cover, load_manifest
    from ..modeling import resolve_model_path

    kcfg, edits_path, passages_path, manifest_path = config["knowledge"], edits, passages, manifest
    inner = InnerSettings.from_config(kcfg["inner_loop"])
    edits = read_edits(edits_path)
    passages = {p.id: p for p in read_passages_jsonl(passages_path)}
    recorded = load_manifest(manifest_path)
    check_inputs_cover(recorded, adapters)
    backend = make_backend(policy, resolve_placement(config["device"]), BackendSettings.from_config(config["backend"]))
    # Answering reads only the token budget: a changed grader regrades without answering again.
    settings = ScoringSettings(max_new_tokens=int(kcfg["scoring"]["max_new_tokens"]),
                               question_prompt=kcfg["scoring"]["question_prompt"])
    try:
        rows = answer_shard(backend, passages, edits, recorded, settings, inner.eval_repeats, inner.reuse_training,
                           inner.reward_baseline)
    finally:
        backend.close()
    write_jsonl(answers, rows)
    write_meta(answers, config, model=resolve_model_path(policy))


def grade_answers(config: dict, *, answers: str, passages: str, out: str) -> None:
    """``eval/shard{s}.csv``: the shard's answers graded (the judge is called from here, never from a GPU job)."""
    scoring = config["knowledge"]["scoring"]
    passages = {p.id: p for p in read_passages_jsonl(passages)}
    rows = grade_shard(read_jsonl(answers), passages, ScoringSettings.from_config(scoring))
    write_csv(out, rows, EVAL_COLUMNS)
    write_meta(out, config, answers=answers, grader=scoring["grader"])


def rewards(config: dict, *, evals: list[str], edits: list[str], out: str) -> None:
    """Reward = adapted minus baseline score on the passage's questions: the baseline is the
    un-adapted policy, or the passage-only adapter (``knowledge.inner_loop.reward_baseline``)."""
    eval_paths, edit_paths = evals, edits
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in eval_paths]).to_dict("records") if eval_paths else []
    edits = [e for path in edit_paths for e in read_edits(path)]
    result = compute_rewards(rows, edits, relative=True)
    write_csv(out, result, REWARD_COLUMNS)
    write_meta(out, config, n_edits=len(result))


EDIT_STATS_COLUMNS = ["round", "edit_id", "input_id", "reward_mean", "valid", "faithfulness", "n_words"]
ROUND_COLUMNS = ["round", "n_edits", "n_kept", "reward_mean", "positive_share", "faithfulness_mean", "kept_faithfulness_mean"]


def training_summary(config: dict, *, rewards: list[str], edits: list[str], filtered: list[str], passages: str,
                     edit_stats: str, rounds: str) -> None:
    """Per self-edit and per round: reward, share of positive rewards and faithfulness to the passage.

    ``rewards``, ``filtered`` are one file per round; ``edits`` every shard of every round.
    """
    contexts = {p.id: p.context for p in read_passages_jsonl(passages)}
    by_id = {e.id: e for path in edits for e in read_edits(path)}
    per_edit, per_round = [], []
    for rewards_path, filtered_path in zip(rewards, filtered):
        table = pd.read_csv(rewards_path, keep_default_na=False).to_dict("records")
        kept = {row["edit_id"] for row in read_jsonl(filtered_path)}
        rows = []
        for row in table:
            edit = by_id[str(row["edit_id"])]
            rows.append({"round": int(row["round"]), "edit_id": edit.id, "input_id": edit.input_id,
                         "reward_mean": float(row["reward_mean"]), "valid": parse_bool(row["valid"]),
                         "faithfulness": faithfulness(edit.completion, contexts[edit.input_id]),
                         "n_words": len(content_words(edit.completion))})
        per_edit += rows
        per_round.append({
            "round": rows[0]["round"] if rows else "", "n_edits": len(rows), "n_kept": len(kept),
            "reward_mean": mean(r["reward_mean"] for r in rows),
            "positive_share": mean(float(r["reward_mean"] > 0) for r in rows),
            "faithfulness_mean": mean(r["faithfulness"] for r in rows),
            "kept_faithfulness_mean": mean(r["faithfulness"] for r in rows if r["edit_id"] in kept),
        })
    write_csv(edit_stats, per_edit, EDIT_STATS_COLUMNS)
    write_csv(rounds, per_round, ROUND_COLUMNS)
    for path in (edit_stats, rounds):
        write_meta(path, config, faithfulness="share of a self-edit's content words that occur in its passage")
    for row in per_round:
        log.info("round %s: mean reward %.3f, %.0f%% positive, faithfulness %.2f", row["round"], row["reward_mean"],
                 100 * row["positive_share"], row["faithfulness_mean"])
