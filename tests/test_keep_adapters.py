"""``keep_adapters: false``: a shard's round adapters are deleted once scored, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow import copy_workflow, run_snakemake

pytestmark = pytest.mark.workflow


def test_adapters_are_deleted_once_their_shard_is_scored(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    round1 = workdir / "results/test/knowledge/round1"
    args = ("--configfile", "config/test.yaml", "--config", "keep_adapters=False")
    # the inner loop alone: nothing has scored the adapters yet, so they stay
    run_snakemake(workdir, f"{round1.relative_to(workdir)}/adapters/shard0.json", *args)
    weights = sorted((round1 / "adapters/shard0").rglob("adapter_model.safetensors"))
    assert len(weights) == 4  # 2 passages x k 2, one repeat
    # scoring reads them (declared inputs), then Snakemake removes them; the manifest and each meta.json stay
    proc = run_snakemake(workdir, f"{round1.relative_to(workdir)}/eval/shard0.csv", *args)
    assert (round1 / "eval/shard0.csv").is_file()
    assert not any(w.exists() for w in weights), proc.stderr[-3000:]
    assert "Removing temporary output" in proc.stderr
    assert (round1 / "adapters/shard0.json").is_file()
    assert len(list((round1 / "adapters/shard0").rglob("meta.json"))) == 4
    # scored output up to date: nothing reruns, the missing temp adapters included
    assert "Nothing to be done" in run_snakemake(workdir, f"{round1.relative_to(workdir)}/eval/shard0.csv", *args,
                                                 "-n").stdout
