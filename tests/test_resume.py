"""Failures and resumes of the real workflow (local executor, tiny test config).

One run of round 1 of the smallest config (config/test-slurm.yaml: one shard, four
adapters) is made per module; every test works on its own copy of that
run, ``.snakemake/`` included (``shutil.copytree`` keeps mtimes, so Snakemake sees
the copy as finished), and breaks it in one way:

* a dead node: ``kill -9`` of Snakemake and its jobs in the middle of a shard's
  inner loop, then the documented resume (``--unlock``, ``--rerun-incomplete``);
* a job that fails once: fails without retries, succeeds with ``--retries 1`` (and,
  with ``--keep-incomplete``, the retry keeps the adapter the failed attempt finished);
* a corrupted adapter: scoring refuses it, naming the file; rerunning the shard's
  inner loop retrains exactly that adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from workflow import copy_workflow, run_snakemake, snakemake_bin

pytestmark = pytest.mark.workflow
CFG = ("--configfile", "config/test.yaml", "config/test-slurm.yaml")
RND = "results/test-slurm/knowledge/round1"
REWARDS = f"{RND}/rewards.csv"


@pytest.fixture(scope="module")
def round1_run(tmp_path_factory) -> Path:
    """The test config run up to round 1's rewards, once per module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("resume-base"))
    run_snakemake(workdir, REWARDS, *CFG)
    return workdir


def _copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)  # copy2: mtimes kept, so nothing looks outdated
    return dest


def _adapters(workdir: Path, shard: int) -> list[Path]:
    """Adapter folders of a shard that exist under their final names."""
    return sorted(p.parent for p in (workdir / RND / f"adapters/shard{shard}").glob("*/rep*/adapter_config.json"))


def _identity(folders: list[Path]) -> dict[str, tuple]:
    """What shows that an adapter was neither retrained nor rewritten.

    The weights and config keep their inode (a retrained adapter is a new folder moved
    into place) and bytes; meta.json, written only by training, keeps its mtime too.
    The weights' and config's mtimes are not compared: they are declared outputs of the
    shard job, and Snakemake touches every output of a job that succeeded.
    """
    from sealflow.lora import sha256_file

    out = {}
    for folder in folders:
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            st = (folder / name).stat()
            out[str(folder / name)] = (st.st_ino, st.st_size, sha256_file(folder / name))
        st = (folder / "meta.json").stat()
        out[str(folder / "meta.json")] = (st.st_ino, st.st_mtime_ns)
    return out


def _manifest(workdir: Path, shard: int) -> dict[str, dict]:
    rows = json.loads((workdir / RND / f"adapters/shard{shard}.json").read_text())["adapters"]
    return {Path(r["adapter"]).parent.name: r for r in rows}


def _assert_all_intact(workdir: Path) -> None:
    """Every adapter under a final name validates and matches its manifest; no temp files."""
    from sealflow.lora import validate_adapter

    manifest = _manifest(workdir, 0)
    folders = _adapters(workdir, 0)
    assert len(folders) == len(manifest) == 4
    for folder in folders:
        meta = validate_adapter(folder)
        assert meta["sha256"] == manifest[folder.parent.name]["sha256"], folder
    assert not list((workdir / "results").rglob(".*.tmp-*")), "a temporary file or folder was left behind"


def _processes_in(workdir: Path) -> list[int]:
    """Pids of processes whose working directory is inside WORKDIR (Snakemake and its jobs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == str(workdir) or cwd.startswith(f"{workdir}/"):
                pids.append(int(proc.name))
    return pids


def _job_counts(output: str) -> dict[str, int]:
    """The "job count" table Snakemake prints before running: jobs per rule."""
    counts, in_table = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        elif in_table and parts and not set(line.strip()) <= {"-", " "}:
            break
    return counts


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_kill_9_mid_inner_loop_then_resume_keeps_finished_adapters(round1_run, tmp_path):
    wd = _copy_run(round1_run, tmp_path / "wd")
    rnd = wd / RND
    # Shard 0's inner loop, scoring and the rewards have to be made again.
    shutil.rmtree(rnd / "adapters/shard0")
    for name in ("adapters/shard0.json", "eval/shard0.answers.jsonl", "eval/shard0.csv", "eval/shard0.csv.meta.json",
                 "rewards.csv",
                 "rewards.csv.meta.json"):
        (rnd / name).unlink(missing_ok=True)

    # Each trained adapter is followed by a pause (test-only hook), so the kill lands
    # after the first adapter of the shard is complete and before the shard is.
    log = tmp_path / "killed.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([snakemake_bin(), "-c2", REWARDS, *CFG], cwd=wd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "SEALFLOW_DELAY": "inner_loop:300"}, start_new_session=True)
    try:
        _wait_for(lambda: _adapters(wd, 0), 240, "the first adapter of shard 0", proc, log)
        time.sleep(1)  # well inside the pause that follows it
        # A dead node: the driving Snakemake and every process of its jobs die at once.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in _processes_in(wd):  # job processes in a session of their own, if any
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not _processes_in(wd), 30, "the job processes to die")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before_kill = _adapters(wd, 0)
    assert 1 <= len(before_kill) < 4, before_kill  # mid-shard
    done = _identity(before_kill)
    assert not (rnd / "adapters/shard0.json").exists()
    assert not (rnd / "eval/shard0.csv").exists() and not (rnd / "rewards.csv").exists()
    assert (wd / ".snakemake/locks").is_dir() and any((wd / ".snakemake/locks").iterdir())

    # The documented resume: unlock, then rerun with --rerun-incomplete.
    run_snakemake(wd, "--unlock", *CFG)
    resumed = run_snakemake(wd, "--rerun-incomplete", REWARDS, *CFG)
    out = resumed.stdout + resumed.stderr
    assert _job_counts(out) == {"knowledge_inner_loop": 1, "knowledge_score_adapters": 1, "knowledge_grade_answers": 1,
                                "knowledge_rewards": 1}, out[-3000:]
    assert _identity(before_kill) == done  # the same files: not retrained, not rewritten
    manifest = _manifest(wd, 0)
    for folder in before_kill:
        assert manifest[folder.parent.name]["status"] == "kept", manifest[folder.parent.name]
        assert f"kept {folder.relative_to(wd)}" in out
    assert {r["status"] for name, r in manifest.items() if name not in {f.parent.name for f in before_kill}} \
        <= {"trained", "inert"}
    _assert_all_intact(wd)
    evals = pd.read_csv(rnd / "eval/shard0.csv")
    assert set(evals.edit_id) == {r["edit_id"] for r in manifest.values()}
    assert len(pd.read_csv(rnd / "rewards.csv")) == 4


def test_job_failing_once_fails_without_retries_and_succeeds_with_one(round1_run, tmp_path):
    wd = _copy_run(round1_run, tmp_path / "wd")
    shutil.rmtree(wd / RND / "adapters/shard0")
    (wd / RND / "adapters/shard0.json").unlink()
    target = f"{RND}/adapters/shard0.json"

    faults = tmp_path / "faults-1"
    env = {"SEALFLOW_FAIL_ONCE": "inner_loop", "SEALFLOW_FAULT_DIR": str(faults)}
    failed = run_snakemake(wd, "--retries", "0", target, *CFG, check=False, env=env)
    assert failed.returncode != 0
    assert "injected fault in stage 'inner_loop'" in failed.stdout + failed.stderr
    assert not (wd / target).exists()

    faults = tmp_path / "faults-2"  # a fresh marker folder: the first attempt fails again
    env = {"SEALFLOW_FAIL_ONCE": "inner_loop", "SEALFLOW_FAULT_DIR": str(faults)}
    # --keep-incomplete: Snakemake keeps a failed job's outputs, so the retry keeps the
    # adapter that attempt 1 finished instead of finding it deleted.
    passed = run_snakemake(wd, "--retries", "1", "--keep-incomplete", target, *CFG, env=env)
    out = passed.stdout + passed.stderr
    assert "injected fault in stage 'inner_loop'" in out  # attempt 1 failed ...
    assert (faults / "sealflow-fault-inner_loop-knowledge-r1-s0").is_file()
    manifest = _manifest(wd, 0)  # ... attempt 2 finished the shard
    assert len(manifest) == 4 and len(_adapters(wd, 0)) == 4
    first = _adapters(wd, 0)[0]  # the one adapter attempt 1 finished before its fault
    assert manifest[first.parent.name]["status"] == "kept" and f"kept {first.relative_to(wd)}" in out
    assert [row["status"] for row in manifest.values()].count("kept") == 1


def test_corrupted_adapter_is_refused_then_only_it_is_retrained(round1_run, tmp_path):
    wd = _copy_run(round1_run, tmp_path / "wd")
    folders = _adapters(wd, 0)
    victim = folders[1] / "adapter_model.safetensors"
    others = [f for f in folders if f != victim.parent]
    untouched = _identity(others)
    with open(victim, "r+b") as handle:  # a torn write: the file cut short
        handle.truncate(victim.stat().st_size // 2)

    # Targets go before --forcerun: it takes several values and would swallow them.
    scored = run_snakemake(wd, f"{RND}/eval/shard0.answers.jsonl", "--forcerun", "knowledge_score_adapters", *CFG,
                           check=False)
    out = scored.stdout + scored.stderr
    assert scored.returncode != 0
    assert _job_counts(out) == {"knowledge_score_adapters": 1}, out[-3000:]
    assert "AdapterError" in out and str(victim.relative_to(wd)) in out, out[-3000:]

    retrained = run_snakemake(wd, f"{RND}/adapters/shard0.json", "--forcerun", "knowledge_inner_loop", *CFG)
    out = retrained.stdout + retrained.stderr
    assert _job_counts(out) == {"knowledge_inner_loop": 1}, out[-3000:]
    said = [line for line in out.splitlines() if "retraining:" in line]
    assert len(said) == 1 and str(victim.relative_to(wd)) in said[0], said  # exactly the corrupted one
    assert _identity(others) == untouched
    manifest = _manifest(wd, 0)
    assert manifest[victim.parent.parent.name]["status"] in ("trained", "inert")
    assert {manifest[f.parent.name]["status"] for f in others} == {"kept"}
    assert sum(f"kept {f.relative_to(wd)}" in out for f in others) == len(others) == 3
    _assert_all_intact(wd)
