"""The real knowledge workflow on the local SLURM cluster (markers: slurm, workflow).

One round of the smallest config (config/test-slurm.yaml: one shard of two passages,
four adapters) with the GPU rules asking for an A100 on the ``gpu`` partition, run
through ``--executor slurm`` (profiles/slurm) and broken on the way, as a dead login
node would: Snakemake is killed with SIGKILL in the middle of the inner loop, its
SLURM job goes on running and is cancelled, and the documented resume (``--unlock``,
then ``--rerun-incomplete``) finishes the round without retraining the adapter that
was complete before the kill. ``--keep-incomplete`` is needed for that: scancel ends
the job step with SIGTERM, and without it Snakemake deletes the failed job's outputs.

Seven SLURM jobs in a chain of six, each costing 20-45 s of scheduling and Snakemake
starts, so this takes about 3-5 minutes. The sbatch lines and per-job timings are
written to test-artifacts/slurm_sbatch_lines.txt.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_slurm import REPO, SBATCH_RE, SlurmCluster, SnakemakeRun, slurm_cluster  # noqa: E402,F401
from workflow import copy_workflow  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

RND = "results/test-slurm/knowledge/round1"
TARGET = f"{RND}/rewards.csv"
# GPU rules ask for one A100 on partition gpu, light rules go to partition cpu.
CLUSTER_YAML = """\
resources:
  cpu: {slurm_partition: cpu, mem_mb: 1000, runtime: 10}
  gpu: {slurm_partition: gpu, gpus: 1, gpu_type: a100, gpu_request: gpus, mem_mb: 2000, runtime: 15}
"""
CONFIGS = ("--configfile", "config/test.yaml", "config/test-slurm.yaml", "cluster.yaml")  # last: takes several
SUBMIT_RE = re.compile(r"submitted with SLURM jobid (\d+) \(log: ([^)\s]+)\)")
ARTIFACT = REPO / "test-artifacts" / "slurm_sbatch_lines.txt"


def _submissions(output: str) -> dict[str, tuple[str, Path]]:
    """SLURM job id -> (rule, its log file) from the lines Snakemake prints on submission."""
    out = {}
    for jobid, log in SUBMIT_RE.findall(output):
        rule = next(part[len("rule_"):] for part in Path(log).parts if part.startswith("rule_"))
        out[jobid] = (rule, Path(log))
    return out


def _adapters(wd: Path) -> list[Path]:
    return sorted(p.parent for p in (wd / RND / "adapters/shard0").glob("*/rep*/adapter_config.json"))


def _identity(folders: list[Path]) -> dict[str, tuple]:
    """Inode and bytes of the adapter files, mtime of meta.json (see tests/test_resume.py)."""
    from sealflow.lora import sha256_file

    out = {}
    for folder in folders:
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            out[str(folder / name)] = ((folder / name).stat().st_ino, sha256_file(folder / name))
        out[str(folder / "meta.json")] = (folder / "meta.json").stat().st_mtime_ns
    return out


def _seconds(hms: str) -> float:
    """SLURM durations: [D-]HH:MM:SS."""
    days, _, rest = hms.rpartition("-")
    h, m, s = (int(x) for x in rest.split(":"))
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-4000:]}")


def _timings(cluster: SlurmCluster, wd: Path, jobs: dict[str, tuple[str, Path]]) -> list[dict]:
    """Per job: SLURM run time, the rule's own time (benchmark file) and the difference."""
    rows = []
    for jobid, (rule, _) in jobs.items():
        info = cluster.job(jobid)
        bench = sorted((wd / "results/test-slurm/benchmarks").rglob(f"{rule}/*.tsv"))
        # a benchmark file is written by the job that completed (not by a cancelled one)
        own = float(pd.read_csv(bench[0], sep="\t")["s"].iloc[0]) \
            if bench and info.get("JobState") == "COMPLETED" else None
        run_s = _seconds(info["RunTime"]) if info.get("RunTime") else None
        rows.append({"jobid": jobid, "rule": rule, "state": info.get("JobState"), "partition": info.get("Partition"),
                     "submit": info.get("SubmitTime"), "start": info.get("StartTime"), "end": info.get("EndTime"),
                     "run_s": run_s, "rule_s": own,
                     "overhead_s": None if run_s is None or own is None or info.get("JobState") != "COMPLETED"
                     else round(run_s - own, 1)})
    return rows


def _gaps(rows: list[dict]) -> list[float]:
    """Seconds from a job's end to the next submission: Snakemake noticing it (status checks)."""
    def t(s):
        return dt.datetime.fromisoformat(s)
    done = [r for r in rows if r["end"] and r["state"] == "COMPLETED"]
    out = []
    for r in rows:
        before = [t(d["end"]) for d in done if t(d["end"]) <= t(r["submit"])]
        if before:
            out.append((t(r["submit"]) - max(before)).total_seconds())
    return out


def test_knowledge_round_on_slurm_survives_kill_9_and_resumes(slurm_cluster: SlurmCluster, tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "cluster.yaml").write_text(CLUSTER_YAML)
    # --keep-incomplete: without it the job step's Snakemake deletes the outputs of a job
    # that fails or is cancelled, the adapters it had finished included (update() only
    # restores files that existed before the job), and the resume retrains them all.
    args = ("--verbose", "--slurm-keep-successful-logs", "--keep-incomplete", "-j", "16", TARGET)

    # ---- 1. run until the first adapter of the shard exists, then kill -9 Snakemake
    log = wd / "killed.out"
    t0 = time.monotonic()
    with open(log, "w") as out:  # a pause after each adapter (test-only hook) holds the shard open
        proc = subprocess.Popen(slurm_cluster.snakemake_cmd(*args, *CONFIGS), cwd=wd, stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                env=slurm_cluster.env({"SEALFLOW_DELAY": "inner_loop:300"}))
    try:
        _wait_for(lambda: _adapters(wd), 400, "the first adapter of the shard", proc, log)
        os.killpg(proc.pid, signal.SIGKILL)  # the login node dies
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first_wall = time.monotonic() - t0
    first = SnakemakeRun(proc.args, wd, proc.returncode, log.read_text(), first_wall)
    first_jobs = _submissions(first.output)
    assert sorted(r for r, _ in first_jobs.values()) == \
        ["base_model", "knowledge_generate_self_edits", "knowledge_inner_loop"], first.tail()  # preparing is local
    before_kill = _adapters(wd)
    assert 1 <= len(before_kill) < 4
    done = _identity(before_kill)

    # The shard's SLURM job outlived Snakemake; the resume procedure: cancel (or wait
    # for) leftover jobs, unlock, rerun with --rerun-incomplete.
    (inner_jobid,) = [j for j, (rule, _) in first_jobs.items() if rule == "knowledge_inner_loop"]
    assert slurm_cluster.job(inner_jobid).get("JobState") == "RUNNING"
    slurm_cluster.scancel(inner_jobid)
    slurm_cluster.wait_for_jobs(timeout=120)
    assert not (wd / RND / "adapters/shard0.json").exists()
    unlock = slurm_cluster.snakemake(wd, "--unlock", *CONFIGS)
    assert unlock.ok, unlock.tail()
    resumed = slurm_cluster.snakemake(wd, *args, "--rerun-incomplete", *CONFIGS, timeout=600)
    assert resumed.ok, resumed.tail()
    second_jobs = _submissions(resumed.output)
    assert sorted(r for r, _ in second_jobs.values()) == \
        ["knowledge_inner_loop", "knowledge_rewards", "knowledge_score_adapters"], resumed.tail()  # grading is local

    # ---- 2. every job went through sbatch and left its SLURM log
    jobs = {**first_jobs, **second_jobs}
    assert len(SBATCH_RE.findall(first.output)) == len(first_jobs)
    assert len(resumed.sbatch_calls()) == len(second_jobs)
    for jobid, (rule, slurm_log) in jobs.items():
        assert slurm_log.is_file() and slurm_log.name == f"{jobid}.log", (rule, slurm_log)
        assert slurm_log.is_relative_to(wd / ".snakemake/slurm_logs")

    # ---- 3. the kill lost nothing: the adapter finished before it was kept, not retrained
    from sealflow.lora import validate_adapter

    assert _identity(before_kill) == done
    manifest = {Path(r["adapter"]).parent.name: r for r in
                json.loads((wd / RND / "adapters/shard0.json").read_text())["adapters"]}
    assert {manifest[f.parent.name]["status"] for f in before_kill} == {"kept"}
    inner_log = (wd / "results/test-slurm/logs/knowledge/round1/inner_loop/shard0.log").read_text()
    for folder in before_kill:
        assert f"kept {folder.relative_to(wd)}" in inner_log

    # ---- 4. the artifacts are complete
    adapters = _adapters(wd)
    assert len(adapters) == len(manifest) == 4
    for folder in adapters:
        assert validate_adapter(folder)["sha256"] == manifest[folder.parent.name]["sha256"]
    evals = pd.read_csv(wd / RND / "eval/shard0.csv")
    assert set(evals.edit_id) == {r["edit_id"] for r in manifest.values()}
    rewards = pd.read_csv(wd / TARGET)
    assert len(rewards) == 4 and set(rewards.edit_id) == set(evals.edit_id)
    assert not list((wd / "results").rglob(".*.tmp-*"))

    # ---- 5. the GPU rules asked SLURM for an A100 on partition gpu; light rules for cpu; the
    # rules that may reach the internet (data preparation, grading) ran where Snakemake runs
    calls = {rule: _sbatch_call_in(first.output + resumed.output, rule)
             for rule in ("base_model", "knowledge_generate_self_edits", "knowledge_inner_loop", "knowledge_score_adapters",
                          "knowledge_rewards")}
    # base_model trains the tiny model here, so it is a GPU rule (a pointer to a real model is not)
    for rule in ("base_model", "knowledge_generate_self_edits", "knowledge_inner_loop", "knowledge_score_adapters"):
        assert " -p gpu " in calls[rule] and "--gpus=a100:1" in calls[rule], calls[rule]
    for rule in ("knowledge_rewards",):
        assert " -p cpu " in calls[rule] and "--gpus" not in calls[rule] and "--gres" not in calls[rule], calls[rule]
    timings = _timings(slurm_cluster, wd, jobs)
    for row in timings:
        row["run"] = 1 if row["jobid"] in first_jobs else 2
    for row in timings:
        gpu_rule = row["rule"] != "knowledge_rewards"
        assert row["partition"] == ("gpu" if gpu_rule else "cpu"), row
    inner_jobid_2 = next(j for j, (rule, _) in second_jobs.items() if rule == "knowledge_inner_loop")
    tres = slurm_cluster.job(inner_jobid_2)
    assert "a100" in (tres.get("TresPerJob", "") + tres.get("TresPerNode", "") + tres.get("TRES", "")), tres

    _write_artifact(calls, timings, first_wall, resumed.wall_s, tres)


def _sbatch_call_in(output: str, rule: str) -> str:
    """The sbatch line of RULE from a --verbose log (SnakemakeRun.sbatch_call, for any text)."""
    return SnakemakeRun([], Path("."), 0, output, 0.0).sbatch_call(rule)


def _write_artifact(calls: dict[str, str], timings: list[dict], first_wall: float, resume_wall: float,
                    inner_job: dict) -> None:
    overheads = [r["overhead_s"] for r in timings if r["overhead_s"] is not None]
    gaps = _gaps([r for r in timings if r["run"] == 1]) + _gaps([r for r in timings if r["run"] == 2])
    lines = [
        "# sbatch lines of the knowledge workflow on the local test cluster",
        "# (tests/test_slurm_workflow.py; config/test.yaml + config/test-slurm.yaml + GPU mapping:",
        "#  resources.gpu: {slurm_partition: gpu, gpus: 1, gpu_type: a100, gpu_request: gpus, mem_mb: 2000, runtime: 15}",
        "#  resources.cpu: {slurm_partition: cpu, mem_mb: 1000, runtime: 10})",
        f"# written {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
    ]
    for rule, call in calls.items():
        call = re.sub(r"/[^ ]*/\.snakemake/", ".snakemake/", call)
        lines.append(f"[{rule}]\n{re.sub(r' -D [^ ]+', ' -D <workdir>', call)}\n")
    lines.append(f"inner_loop job as SLURM saw it: Partition={inner_job.get('Partition')} "
                 f"TresPerJob={inner_job.get('TresPerJob')} TresPerNode={inner_job.get('TresPerNode')} "
                 f"TRES={inner_job.get('TRES')}\n")
    lines.append("# per job: run_s = SLURM RunTime, rule_s = the rule's own time (benchmark file), "
                 "overhead_s = run_s - rule_s (job start, two Snakemake starts, Python imports)")
    lines.append(f"{'run':>3} {'jobid':>6} {'rule':<20} {'state':<10} {'part':<4} {'run_s':>6} {'rule_s':>7} {'overhead_s':>10}")
    for r in timings:
        lines.append(f"{r['run']:>3} {r['jobid']:>6} {r['rule']:<20} {str(r['state']):<10} {str(r['partition']):<4} "
                     f"{str(r['run_s']):>6} {('%.1f' % r['rule_s']) if r['rule_s'] is not None else '-':>7} "
                     f"{str(r['overhead_s']) if r['overhead_s'] is not None else '-':>10}")
    lines.append("")
    if overheads:
        lines.append(f"mean in-job overhead: {sum(overheads) / len(overheads):.1f} s over {len(overheads)} jobs")
    if gaps:
        lines.append(f"end of a job -> next submission in the same run (status checks): mean {sum(gaps) / len(gaps):.1f} s, "
                     f"max {max(gaps):.1f} s over {len(gaps)} submissions")
    lines.append(f"wall: first run until kill -9 {first_wall:.1f} s; resume {resume_wall:.1f} s")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
