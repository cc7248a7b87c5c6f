"""A held-out shard killed mid-way resumes item by item (real workflow, local executor).

The passage method on the test config, one single-setting shard of two passages with
two repeats: four LoRAs, trained one after another (``parallel_adapters: 1``, so the
resumed run trains the remaining ones exactly as the uninterrupted run did). The job is
killed with SIGKILL after its first adapter is written; the rerun keeps that adapter,
trains only the other three, and its graded rows equal the uninterrupted run's byte
for byte.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from test_resume import _job_counts, _processes_in, _wait_for
from workflow import copy_workflow, run_snakemake, snakemake_bin

pytestmark = pytest.mark.workflow
KH = "results/test/knowledge/heldout"
ROWS = f"{KH}/single/passage.csv"
OVERLAY = {"knowledge": {"inner_loop": {"parallel_adapters": 1},
                         "heldout": {"methods": ["passage"], "settings": ["single"], "continual_methods": [],
                                     "shard_size": 2, "eval_repeats": 2}}}


def _cfg(workdir: Path) -> tuple[str, ...]:
    (workdir / "kill.yaml").write_text(yaml.safe_dump(OVERLAY))
    return ("--configfile", "config/test.yaml", "kill.yaml")


def _items(workdir: Path) -> list[Path]:
    """Adapters of the shard that are complete under their final names."""
    return sorted(p.parent for p in (workdir / KH / "work/single/passage/shard0").glob("*/rep*/meta.json"))


def test_kill_9_mid_heldout_shard_keeps_finished_items_and_equals_an_uninterrupted_run(tmp_path):
    wd = copy_workflow(tmp_path / "wd")
    cfg = _cfg(wd)
    run_snakemake(wd, ROWS, *cfg)
    uninterrupted = (wd / ROWS).read_bytes()
    assert not (wd / KH / "work").exists() or not any((wd / KH / "work").rglob("meta.json"))  # cleared on success
    for path in (f"{KH}/single/passage/shard0.answers.jsonl", ROWS):
        (wd / path).unlink()

    log = tmp_path / "killed.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([snakemake_bin(), "-c2", ROWS, *cfg], cwd=wd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "SEALFLOW_DELAY": "heldout:300"}, start_new_session=True)
    try:
        _wait_for(lambda: _items(wd), 300, "the first held-out adapter", proc, log)
        os.killpg(proc.pid, signal.SIGKILL)  # a dead node: Snakemake and its job at once
        proc.wait(timeout=30)
        for pid in _processes_in(wd):
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not _processes_in(wd), 30, "the job processes to die")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = _items(wd)
    assert len(finished) == 1, finished  # mid-shard: one of four items
    assert not (wd / ROWS).exists()

    run_snakemake(wd, "--unlock", *cfg)
    resumed = run_snakemake(wd, "--rerun-incomplete", ROWS, *cfg)
    out = resumed.stdout + resumed.stderr
    assert _job_counts(out) == {"knowledge_heldout_single": 1, "knowledge_heldout_grade": 1}, out[-3000:]
    job_log = (wd / "results/test/logs/knowledge/heldout/single/passage/shard0.log").read_text()
    assert f"kept {finished[0].relative_to(wd)}" in job_log  # the finished item was not trained again
    assert "4 adapters: 1 kept, 3 trained" in job_log, job_log[-3000:]  # only the unfinished ones were
    assert (wd / ROWS).read_bytes() == uninterrupted
    assert not list((wd / "results").rglob(".*.tmp-*")), "a temporary file or folder was left behind"
    shutil.rmtree(wd / "results")
