"""Snakemake on a local SLURM cluster with profiles/slurm (marker: slurm).

Runs only as root where SLURM is installed or installable (Debian apt-get);
skipped elsewhere. The cluster starts once per session (tests/conftest_slurm.py).
Each SLURM job costs about 10-25 s here (30-45 s on a busy machine), so the tests keep
job counts small; the toy test also reports that overhead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_slurm import (  # noqa: E402,F401  (slurm_cluster is the fixture)
    LOCAL_PROFILE,
    SUBMITTED_RE,
    SlurmCluster,
    slurm_cluster,
)

TOY = Path(__file__).resolve().parent / "data" / "slurm_toy"

pytestmark = pytest.mark.slurm


def _fields(path: Path) -> dict:
    """The 'job=.. gpus=.. host=..' line a toy rule writes."""
    last = path.read_text().split("\n")[1]
    return dict(kv.split("=", 1) for kv in last.split())


def _wait_for(predicate, timeout: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_toy_workflow_cpu_and_gpu_rules(slurm_cluster: SlurmCluster, tmp_path, record_property):
    """Four trivial jobs at once; their SLURM run times are the per-job overhead."""
    wd = slurm_cluster.copy_workflow(TOY, tmp_path / "toy")
    run = slurm_cluster.snakemake(wd, "--verbose", "--slurm-keep-successful-logs", "all")
    assert run.ok, run.tail()

    jobids = run.jobids
    assert len(jobids) == 4, run.tail()
    for rule in ("cpu", "gpu", "gpu_model", "gres"):
        fields = _fields(wd / f"{rule}.txt")
        assert fields["job"] in jobids, (rule, fields)  # it ran inside a SLURM job
        # the plugin writes each job's log as .snakemake/slurm_logs/rule_<rule>/<jobid>.log
        assert (wd / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{fields['job']}.log").exists()
        if rule == "cpu":
            assert fields["gpus"] == "none"
        else:  # SLURM handed the job one of the node's two (fake) GPUs
            assert fields["gpus"] in ("0", "1"), (rule, fields)
            assert slurm_cluster.job(fields["job"]).get("Partition") == "gpu"

    calls = {rule: run.sbatch_call(rule) for rule in ("cpu", "gpu", "gpu_model", "gres")}
    for rule, call in calls.items():
        print(f"sbatch[{rule}]: {call}")
    assert " -p cpu " in calls["cpu"] and "--gpus" not in calls["cpu"] and "--gres" not in calls["cpu"]
    assert " -p gpu " in calls["gpu"] and calls["gpu"].endswith("--gpus=1")
    assert " -p gpu " in calls["gpu_model"] and calls["gpu_model"].endswith("--gpus=a100:1")
    assert " -p gpu " in calls["gres"] and calls["gres"].endswith("--gres=gpu:a100:1")
    for call in calls.values():
        assert " --mem 200 " in call and " -t 5 " in call

    # Overhead: the rules do nothing, so a job's SLURM RunTime is what a job costs
    # (start, Snakemake twice, imports); the wall time adds submission and status checks.
    local = slurm_cluster.snakemake(wd, "trivial", profile=LOCAL_PROFILE)
    assert local.ok, local.tail()
    runtimes = {jobid: slurm_cluster.job(jobid).get("RunTime") for jobid in jobids}
    print(f"4 trivial jobs at once: snakemake on SLURM {run.wall_s:.1f}s; a trivial job locally "
          f"{local.wall_s:.1f}s; SLURM RunTime per job {runtimes}")
    record_property("slurm_wall_s", round(run.wall_s, 1))
    record_property("local_wall_s", round(local.wall_s, 1))
    record_property("slurm_job_runtimes", runtimes)
    assert run.wall_s < 180, "four trivial jobs should not take minutes on an idle cluster"


def test_failed_job_is_resubmitted_with_retries(slurm_cluster: SlurmCluster, tmp_path):
    wd = slurm_cluster.copy_workflow(TOY, tmp_path / "flaky")
    run = slurm_cluster.snakemake(wd, "--retries", "1", "flaky")
    assert run.ok, run.tail()
    assert (wd / "flaky.marker").exists()
    assert len(run.jobids) == 2, run.tail()  # the first attempt failed, a new job ran
    assert _fields(wd / "flaky.txt")["job"] == run.jobids[1]


def test_cancelled_job_is_rerun_by_the_next_invocation(slurm_cluster: SlurmCluster, tmp_path):
    wd = slurm_cluster.copy_workflow(TOY, tmp_path / "cancel")
    proc, log = slurm_cluster.start_snakemake(wd, "--retries", "0", "slow")
    try:
        # the job's shell has started (it is now sleeping) ...
        _wait_for(lambda: (wd / "slow.marker").exists(), 120, "the slow job to start")
        (jobid,) = SUBMITTED_RE.findall(log.read_text())
        # ... so cancel it behind Snakemake's back, as an operator or the cluster would
        slurm_cluster.scancel(jobid)
        rc = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert rc != 0, out[-3000:]
    assert not (wd / "slow.txt").exists()
    assert slurm_cluster.job(jobid).get("JobState") == "CANCELLED"

    rerun = slurm_cluster.snakemake(wd, "slow")
    assert rerun.ok, rerun.tail()
    (new_jobid,) = rerun.jobids
    assert new_jobid != jobid
    assert _fields(wd / "slow.txt")["job"] == new_jobid
