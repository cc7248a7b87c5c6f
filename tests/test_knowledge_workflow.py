"""The knowledge domain run for real by Snakemake on the tiny test config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow import ROOT, copy_workflow, job_counts, planned_jobs, run_snakemake

pytestmark = pytest.mark.workflow
CFG = ("--configfile", "config/test.yaml")


def _test_config() -> dict:
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    over = yaml.safe_load((ROOT / "config/test.yaml").read_text())

    def merge(a, b):
        for key, value in b.items():
            a[key] = merge(a.get(key, {}), value) if isinstance(value, dict) and isinstance(a.get(key), dict) else value
        return a

    return merge(base, over)


@pytest.fixture(scope="module")
def finished_run(knowledge_run) -> Path:
    return knowledge_run


def test_targeting_one_round_plans_only_what_it_needs(tmp_path):
    workdir = copy_workflow(tmp_path)
    cfg = _test_config()["knowledge"]
    shards = cfg["data"]["n_train"] // cfg["self_edits"]["shard_size"]
    jobs = planned_jobs(workdir, "results/test/knowledge/round1/filtered.jsonl", *CFG)
    assert jobs == {"base_model": 1, "knowledge_prepare_passages": 1, "knowledge_generate_self_edits": shards,
                    "knowledge_inner_loop": shards, "knowledge_score_adapters": shards,
                    "knowledge_grade_answers": shards, "knowledge_rewards": 1, "restem_filter": 1}


def test_full_run_produces_every_artifact(finished_run):
    cfg = _test_config()["knowledge"]
    n_train, k, size = cfg["data"]["n_train"], cfg["self_edits"]["k"], cfg["self_edits"]["shard_size"]
    root = finished_run / "results/test/knowledge"
    for r in range(1, cfg["rounds"] + 1):
        rnd = root / f"round{r}"
        edits = [json.loads(line) for s in range(n_train // size) for line in open(rnd / f"self_edits/shard{s}.jsonl")]
        assert len(edits) == n_train * k
        assert {"id", "input_id", "prompt", "completion", "sampling", "seed"} <= set(edits[0])
        adapters = list((rnd / "adapters").glob("shard*/*/rep*/adapter_model.safetensors"))
        assert len(adapters) == n_train * k * cfg["inner_loop"]["eval_repeats"]
        assert all((a.parent / "adapter_config.json").is_file() for a in adapters)
        evals = pd.concat(pd.read_csv(p) for p in sorted((rnd / "eval").glob("shard*.csv")))
        assert {"edit_id", "question", "answer_base", "answer_adapted", "score_base", "score_adapted", "repeat"} <= set(evals.columns)
        rewards = pd.read_csv(rnd / "rewards.csv")
        assert len(rewards) == n_train * k and set(rewards.edit_id) == {e["id"] for e in edits}
        assert rewards.reward_mean.between(-1, 1).all()
        assert (rewards[~rewards.valid].reward_mean == 0).all()
        # The reward is adapted minus base, per edit (a sign error or a swap breaks this) ...
        valid = rewards[rewards.valid]
        assert (valid.reward_mean - (valid.score_adapted - valid.score_base)).abs().max() < 1e-9
        # ... and round r samples from the policy of round r (the base model, then round r's own).
        policy = {e["policy"] for e in edits}
        expected = "knowledge/base/model" if r == 1 else f"knowledge/round{r}/policy"
        assert len(policy) == 1 and policy.pop().endswith(expected), (r, policy)
        assert (rnd / "rewards.csv.meta.json").is_file()
        kept = [json.loads(line) for line in open(rnd / "filtered.jsonl")]
        assert len(kept) <= n_train * cfg["restem"]["keep_top_k"]
    assert (root / f"round{cfg['rounds']}/policy/config.json").is_file()
    # The build recorded its copy probe: round-1 sampling (k self-edits) on the configured fresh passages.
    probe = json.loads((root / "base/model/meta.json").read_text())["copy_probe"]
    assert probe["passages"] == cfg["base_model"]["build"]["copy_probe_passages"] and probe["lines"] > 0
    assert all(0 <= probe[key] <= 1 for key in ("subject_first", "value_copied", "faithfulness"))
    # No temporary file survived under a final name or at all.
    assert not list(root.rglob(".*.tmp-*"))


def test_heldout_summary_has_every_method_setting_and_round(finished_run):
    cfg = _test_config()["knowledge"]
    summary = pd.read_csv(finished_run / "results/test/knowledge/heldout/summary.csv")
    assert {"method", "setting", "round", "accuracy", "ci95_low", "ci95_high", "n_questions"} <= set(summary.columns)
    rounds = [f"round{r}" for r in range(2, cfg["rounds"] + 2)]
    methods = ["base", "passage", "base_self_edits", *rounds]  # external is off without an endpoint
    for setting in ("single", "cpt"):
        assert sorted(summary[summary.setting == setting].method) == sorted(methods)
    assert sorted(summary[summary.setting == "continual"].method) == ["passage", rounds[-1]]
    seal = summary[(summary.method == rounds[-1]) & (summary.setting == "single")].iloc[0]
    assert seal["round"] == cfg["rounds"] and seal.n_questions > 0
    assert summary.accuracy.between(0, 1).all() and (summary.ci95_low <= summary.accuracy).all()


def test_rerun_after_finished_run_does_nothing(finished_run):
    assert planned_jobs(finished_run, *CFG) == {}


def _identity(weights: Path) -> tuple:
    """Same file, same bytes, same training record. (Snakemake refreshes the timestamps of a
    job's declared outputs after it succeeds, so the weights' own mtime is not the witness;
    the adapter's meta.json, written only when it is trained, is.)"""
    import hashlib

    meta = weights.parent / "meta.json"
    return weights.stat().st_ino, hashlib.sha256(weights.read_bytes()).hexdigest(), meta.stat().st_mtime_ns


def test_deleting_one_adapter_redoes_only_its_shard(finished_run):
    cfg = _test_config()["knowledge"]
    last = cfg["rounds"]
    rnd = finished_run / f"results/test/knowledge/round{last}"
    adapters = sorted((rnd / "adapters/shard1").glob("*/rep0/adapter_model.safetensors"))
    victim, kept = adapters[0], adapters[1:]
    others = sorted((rnd / "adapters/shard0").glob("*/rep0/adapter_model.safetensors"))
    before = {p: _identity(p) for p in kept + others}
    victim.unlink()
    # Snakemake does not regenerate a missing intermediate file while everything downstream
    # is up to date; asking for the file itself reruns only its shard's inner loop ...
    deleted = str(victim.relative_to(finished_run))
    assert planned_jobs(finished_run, deleted, *CFG) == {"knowledge_inner_loop": 1}
    run_snakemake(finished_run, deleted, *CFG)
    assert victim.is_file()
    assert {p: _identity(p) for p in kept + others} == before  # kept, not retrained
    # ... and then that shard's scoring and the round's rewards are out of date, nothing else of the round.
    target = f"results/test/knowledge/round{last}/rewards.csv"
    assert planned_jobs(finished_run, target, *CFG) == {"knowledge_score_adapters": 1, "knowledge_grade_answers": 1,
                                                        "knowledge_rewards": 1}
    run_snakemake(finished_run, target, *CFG)
    manifest = json.loads((rnd / "adapters/shard1.json").read_text())["adapters"]
    statuses = {row["status"] for row in manifest}
    assert "kept" in statuses and ("trained" in statuses or "inert" in statuses)


def test_paper_config_plans_fifty_passages_times_five(tmp_path):
    workdir = copy_workflow(tmp_path)
    jobs = planned_jobs(workdir, "--configfile", "config/paper-knowledge.yaml")
    paper = yaml.safe_load((ROOT / "config/paper-knowledge.yaml").read_text())["knowledge"]
    assert paper["data"]["n_train"] == 50 and paper["self_edits"]["k"] == 5
    shards = 50 // paper["self_edits"]["shard_size"]
    rounds = paper["rounds"]
    for rule in ("knowledge_generate_self_edits", "knowledge_inner_loop", "knowledge_score_adapters"):
        assert jobs[rule] == shards * rounds


def _overlay(workdir: Path, name: str, cfg: dict) -> tuple[str, ...]:
    (workdir / name).write_text(yaml.safe_dump(cfg))
    return (*CFG, name)  # a later --configfile updates the earlier ones key by key


def test_a_changed_data_setting_reruns_preparation_and_everything_downstream(finished_run):
    """The run name stays; the data it names changed: nothing may be reused."""
    changed = _overlay(finished_run, "other-data.yaml", {"knowledge": {"data": {"seed": 99}}})
    jobs = planned_jobs(finished_run, *changed)
    assert jobs["knowledge_prepare_passages"] == 1
    for rule in ("knowledge_generate_self_edits", "knowledge_inner_loop", "knowledge_score_adapters",
                 "knowledge_heldout_summary"):
        assert jobs.get(rule), f"{rule} would reuse results built from other data: {jobs}"
    # A local data file is an input: editing it reruns preparation too.
    data = finished_run / "passages.json"
    from sealflow.worldgen import generate_passages

    data.write_text(json.dumps([p.to_dict() for p in generate_passages(12, 7)]))
    local = _overlay(finished_run, "local-data.yaml", {"knowledge": {"data": {"source": "passages_json",
                                                                               "path": "passages.json"}}})
    assert planned_jobs(finished_run, *local)["knowledge_prepare_passages"] == 1


def test_a_changed_grader_rescores_without_regenerating_or_retraining(finished_run):
    """Round 1's rewards under a new grader: its answers are regraded, not answered again,
    regenerated or retrained. (Later rounds do rerun: other rewards make another policy.)"""
    changed = _overlay(finished_run, "em.yaml", {"knowledge": {"scoring": {"grader": "em"}}})
    cfg = _test_config()["knowledge"]
    shards = cfg["data"]["n_train"] // cfg["self_edits"]["shard_size"]
    jobs = planned_jobs(finished_run, "results/test/knowledge/round1/rewards.csv", *changed)
    assert jobs == {"knowledge_grade_answers": shards, "knowledge_rewards": 1}, jobs


def _lines_with(texts, needle_pairs):
    """(title, answer) pairs that occur together on one line of any text."""
    found = set()
    for text in texts:
        for line in text.splitlines():
            for title, answer in needle_pairs:
                if title in line and answer in line:
                    found.add((title, answer))
    return found


def test_validation_facts_never_reach_pretraining_or_any_round(finished_run):
    """Goal 4 of the organism: the held-out ordering must come from the method, not from leakage.

    A validation fact is a (title, answer) pair on one line. It must not occur in the base model's
    pretraining corpus (rebuilt exactly as the base rule built it), in the training passages, in any
    round's self-edits or SFT data, and held-out self-edits must not be any round's training data.
    The same search finds training facts in the rounds' SFT data, so it is not blind.
    """
    from sealflow.base_model import BuildSettings
    from sealflow.stages.base import corpus_for

    cfg = _test_config()
    knowledge = finished_run / "results" / "test" / "knowledge"
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    val, train = read(knowledge / "data" / "val.jsonl"), read(knowledge / "data" / "train.jsonl")
    facts = lambda passages: {(p["title"], q["answer"]) for p in passages for q in p["questions"]}
    val_facts, train_facts = facts(val), facts(train)
    assert val_facts and not {p["id"] for p in val} & {p["id"] for p in train}

    corpus = corpus_for("knowledge", BuildSettings.from_config(cfg["knowledge"]["base_model"]["build"]), cfg["seed"])
    assert not _lines_with(corpus, val_facts), "a validation fact is in the pretraining corpus"
    assert not _lines_with([p["context"] for p in train], val_facts)

    round_files = sorted(knowledge.glob("round*/self_edits/*.jsonl")) + sorted(knowledge.glob("round*/filtered.jsonl"))
    assert round_files
    records = [record for path in round_files for record in read(path)]
    round_texts = [f"{r.get('prompt', '')}\n{r.get('completion', '')}" for r in records]
    assert not _lines_with(round_texts, val_facts), "a validation fact reached a training round"

    heldout_edits = {r["completion"] for path in knowledge.glob("heldout/self_edits/*.jsonl") for r in read(path)
                     if r.get("completion", "").strip()}
    assert heldout_edits and not heldout_edits & {r.get("completion") for r in records}
    # Positive control: the same search finds the training passages' titles in the rounds' prompts.
    assert _lines_with(round_texts, {(p["title"], p["title"]) for p in train})


def test_a_passage_baseline_trains_a_passage_only_adapter_per_passage_and_rewards_against_it(finished_run, tmp_path):
    """``reward_baseline: passage`` for real, on a copy of the finished run: round 1 retrains with
    one passage-only adapter per passage, its manifest names it, and each reward is the adapted
    minus that baseline's score on the same questions (not minus the un-adapted model's)."""
    import shutil

    run = shutil.copytree(finished_run, tmp_path / "run", symlinks=True)
    changed = _overlay(run, "passage-baseline.yaml", {"knowledge": {"inner_loop": {"reward_baseline": "passage"}}})
    run_snakemake(run, "results/test/knowledge/round1/rewards.csv", *changed)
    cfg = _test_config()["knowledge"]
    rnd = run / "results/test/knowledge/round1"
    passages = [json.loads(line)["id"] for line in open(run / "results/test/knowledge/data/train.jsonl")]
    manifests = [json.loads(p.read_text())["adapters"] for p in sorted((rnd / "adapters").glob("shard*.json"))]
    baselines = {row["edit_id"]: row for rows in manifests for row in rows if row["edit_id"].startswith("passage:")}
    assert sorted(baselines) == sorted(f"passage:{pid}" for pid in passages)
    assert all(row["valid"] and row["steps"] > 0 and "-passage/" in row["adapter"] for row in baselines.values())
    evals = pd.concat([pd.read_csv(p) for p in sorted((rnd / "eval").glob("shard*.csv"))])
    original = pd.concat([pd.read_csv(p) for p in sorted((finished_run / "results/test/knowledge/round1/eval").glob("shard*.csv"))])
    rewards = pd.read_csv(rnd / "rewards.csv")
    assert len(rewards) == len(passages) * cfg["self_edits"]["k"]
    for row in rewards.itertuples():
        mine = evals[evals.edit_id == row.edit_id]
        if row.valid:
            assert row.reward_mean == pytest.approx(mine.score_adapted.mean() - mine.score_base.mean())
    # The un-adapted answers of the original run are not what the baseline answered everywhere.
    merged = evals.merge(original, on=["edit_id", "repeat", "question_index"], suffixes=("", "_orig"))
    assert len(merged) == len(evals)
    assert (merged.answer_base.fillna("") != merged.answer_base_orig.fillna("")).any()


def test_the_default_and_the_organism_plan_48_passages_and_adapt_the_base_model_with_every_method(tmp_path):
    """config/config.yaml is the knowledge organism: 3200 pretraining steps, 48 passages in shards of 16, and every
    method's held-out self-edits (SEAL's too) train the base model; config/knowledge-organism.yaml only triples the
    held-out passages."""
    import copy
    import re

    from snakemake.utils import update_config

    workdir = copy_workflow(tmp_path)
    default = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    organism = copy.deepcopy(default)
    update_config(organism, yaml.safe_load((ROOT / "config/knowledge-organism.yaml").read_text()))
    # the overlay changes the number of held-out passages and nothing else in the knowledge domain
    n_val = default["knowledge"]["data"]["n_val"]
    assert organism["knowledge"]["data"]["n_val"] == 3 * n_val
    assert {**organism["knowledge"], "data": {**organism["knowledge"]["data"], "n_val": n_val}} == default["knowledge"]
    for configfile, run, cfg in (("config/config.yaml", "demo", default),
                                 ("config/knowledge-organism.yaml", "knowledge-organism", organism)):
        kn = cfg["knowledge"]
        shards = kn["data"]["n_train"] // kn["self_edits"]["shard_size"]
        assert (kn["data"]["n_train"], shards, kn["base_model"]["build"]["pretrain_steps"]) == (48, 3, 3200)
        proc = run_snakemake(workdir, "--configfile", configfile, "-n")
        out = proc.stdout + proc.stderr
        jobs = job_counts(out)
        assert jobs["knowledge_inner_loop"] == kn["rounds"] * shards
        # base, passage, base self-edits, SEAL: one single-setting job per heldout.shard_size (10) passages each
        assert jobs["knowledge_heldout_single"] == 4 * -(-kn["data"]["n_val"] // 10)
        last = f"round{kn['rounds'] + 1}"
        seal_inputs = re.findall(rf"input: ([^\n]*heldout/self_edits/{last}\.jsonl)", out)
        assert seal_inputs, out[-2000:]
        for inputs in seal_inputs:
            models = [p for p in inputs.split(", ") if not p.endswith(".jsonl")]
            assert models == [f"results/{run}/knowledge/base/model"], inputs
