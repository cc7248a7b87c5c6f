"""The few-shot (ARC) workflow for real: config/test-fewshot.yaml in a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("Snakefile", "rules", "scripts", "config", "report", "envs")


@pytest.fixture(scope="module")
def fewshot_run(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("fewshot-workflow")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name)
        elif source.exists():
            shutil.copy2(source, work / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "-c2", "--configfile", "config/test-fewshot.yaml", "--directory", str(work)],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    test_cfg = yaml.safe_load((ROOT / "config/test-fewshot.yaml").read_text())
    return work / "results" / test_cfg["run"] / "fewshot", test_cfg["fewshot"]


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


@pytest.mark.workflow
def test_tasks_are_disjoint(fewshot_run):
    fs, cfg = fewshot_run
    train = [json.loads(line)["id"] for line in (fs / "data/train.jsonl").read_text().splitlines()]
    evals = [json.loads(line)["id"] for line in (fs / "data/eval.jsonl").read_text().splitlines()]
    assert len(train) == cfg["data"]["n_train"] and len(evals) == cfg["data"]["n_eval"]
    assert not set(train) & set(evals)
    assert (fs / "data/train.jsonl.meta.json").is_file()


@pytest.mark.workflow
def test_every_round_has_its_artifacts(fewshot_run):
    fs, cfg = fewshot_run
    se = cfg["self_edits"]
    shards = cfg["data"]["n_train"] // se["shard_size"]
    for r in range(1, cfg["rounds"] + 1):
        rnd = fs / f"round{r}"
        for s in range(shards):
            edits = [json.loads(x) for x in (rnd / f"self_edits/shard{s}.jsonl").read_text().splitlines()]
            assert len(edits) == se["shard_size"] * se["k"]
            assert all(e["prompt"].endswith("assistant<|end_header_id|>\n\n") for e in edits)
            manifest = json.loads((rnd / f"adapters/shard{s}.json").read_text())["adapters"]
            assert len(manifest) == len(edits)
            for row in manifest:
                assert (Path(fs.parents[2]) / row["adapter"] / "adapter_model.safetensors").is_file()
                assert row["valid"] or row["reason"]
            scores = _csv(rnd / f"eval/shard{s}.csv")
            assert {"edit_id", "input_id", "repeat", "answer", "correct", "valid", "reason"} <= set(scores.columns)
            assert len(scores) == len(edits)
        rewards = _csv(rnd / "rewards.csv")
        assert list(rewards.columns)[:6] == ["edit_id", "input_id", "round", "shard", "sample", "reward_mean"]
        assert len(rewards) == cfg["data"]["n_train"] * se["k"]
        assert set(rewards["reward_mean"].astype(float)) <= {0.0, 1.0}
        # guided decoding writes parseable configurations: only budget or duplicates can void one
        valid = rewards["valid"].astype(str).eq("True")
        assert valid.any() and set(rewards.loc[~valid, "reason"]) <= {"duplicate", "over_budget"}
        assert all(json.loads(e)["sampling"]["decoding"] == "guided"
                   for e in (rnd / "self_edits/shard0.jsonl").read_text().splitlines())
        assert (rnd / "filtered.jsonl").is_file()
        assert (fs / f"round{r + 1}/policy/config.json").is_file() or r == cfg["rounds"]
    # The policy after the last round exists too: the SEAL row of the evaluation needs it.
    assert (fs / f"round{cfg['rounds'] + 1}/policy/config.json").is_file()


@pytest.mark.workflow
def test_evaluation_table(fewshot_run):
    fs, cfg = fewshot_run
    n_eval, eval_k, rounds = cfg["data"]["n_eval"], cfg["evaluation"]["eval_k"], cfg["rounds"]
    summary = _csv(fs / "eval/summary.csv")
    assert list(summary.columns) == ["method", "round", "n_tasks", "n_attempts", "n_solved", "success_rate",
                                     "ci95_low", "ci95_high"]
    methods = summary["method"].tolist()
    assert methods == ["icl", "ttt_base_self_edits", *["ttt_rl_self_edits"] * (rounds - 1), "seal", "oracle_ttt"]
    by = summary.set_index("method")
    assert by.loc["icl", "n_attempts"] == n_eval
    assert by.loc["seal", "n_attempts"] == n_eval * eval_k and by.loc["seal", "round"] == rounds
    assert by.loc["oracle_ttt", "n_attempts"] == n_eval
    assert ((summary["ci95_low"] <= summary["success_rate"]) & (summary["success_rate"] <= summary["ci95_high"])).all()
    for p in range(rounds + 1):
        detail = _csv(fs / f"eval/ttt_round{p + 1}.csv")  # the policy of round p + 1 has had p updates
        assert len(detail) == n_eval * eval_k
    oracle = _csv(fs / "eval/oracle.csv")
    assert len(oracle) == n_eval * len(cfg["evaluation"]["oracle"])
    assert oracle["valid"].astype(str).eq("True").all()  # the fixed grid trains for real
    train_ids = {json.loads(x)["id"] for x in (fs / "data/train.jsonl").read_text().splitlines()}
    assert not set(oracle["input_id"]) & train_ids


def test_changed_task_selection_reruns_preparation_and_downstream(fewshot_run):
    """Same run name, other tasks: the prepared tasks and everything built on them are redone."""
    from workflow import planned_jobs

    fs, cfg = fewshot_run
    work = fs.parents[2]
    (work / "other-tasks.yaml").write_text(yaml.safe_dump({"fewshot": {"data": {"seed": 12345}}}))
    jobs = planned_jobs(work, "--configfile", "config/test-fewshot.yaml", "other-tasks.yaml")
    for rule in ("fewshot_prepare_tasks", "fewshot_generate_self_edits", "fewshot_inner_loop", "fewshot_eval_summary"):
        assert jobs.get(rule), f"{rule} would reuse results built from other tasks: {jobs}"
    assert "base_model" not in jobs
