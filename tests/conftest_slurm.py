"""A local SLURM cluster for tests, and a way to run Snakemake on it.

Use from a test module (pytest only loads files named conftest.py by itself)::

    from conftest_slurm import slurm_cluster  # noqa: F401  (the fixture)

    @pytest.mark.slurm
    def test_x(slurm_cluster, tmp_path):
        workdir = slurm_cluster.copy_workflow(SOME_DIR, tmp_path / "wf")
        run = slurm_cluster.snakemake(workdir, "--configfile", "cfg.yaml", "all")
        assert run.ok, run.tail()

``slurm_cluster`` (session scope) starts the cluster with
tests/cluster/slurm_up.sh (installing SLURM with apt-get when it is missing)
and yields a :class:`SlurmCluster`. It skips the test when the machine cannot
host a cluster: not root, or SLURM missing and no Debian apt-get, or a real
SLURM configuration present. It stops the cluster at session end when it
started it and no other test session is still using it; set
SEALFLOW_SLURM_KEEP=1 to leave it running (tests/cluster/slurm_down.sh stops
it).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
CLUSTER_DIR = REPO / "tests" / "cluster"
SLURM_PROFILE = REPO / "profiles" / "slurm"
LOCAL_PROFILE = REPO / "profiles" / "local"

SUBMITTED_RE = re.compile(r"submitted with SLURM jobid (\d+)")
SBATCH_RE = re.compile(r"^sbatch call: (sbatch .*)$", re.MULTILINE)


@dataclass
class SnakemakeRun:
    """One finished Snakemake invocation."""

    args: list[str]
    workdir: Path
    returncode: int
    output: str  # stdout and stderr together
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def jobids(self) -> list[str]:
        """SLURM job ids, in the order Snakemake reported the submissions."""
        return SUBMITTED_RE.findall(self.output)

    def sbatch_calls(self) -> list[str]:
        """sbatch command lines the plugin issued (needs --verbose)."""
        return SBATCH_RE.findall(self.output)

    def sbatch_call(self, rule: str) -> str:
        """The sbatch line of a rule (needs --verbose); the job step's command cut off."""
        pattern = re.compile(rf"--comment '?rule_{re.escape(rule)}(_wildcards_[^ ']*)?'? ")
        for call in self.sbatch_calls():
            if pattern.search(call):
                return call.split(" --wrap=", 1)[0]
        raise KeyError(f"no sbatch call for rule {rule!r} in the log")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-n:])


@dataclass
class SlurmCluster:
    """The running test cluster: partitions ``cpu`` (default) and ``gpu``,
    one node with 2 fake GPUs of type ``a100`` (feature ``a100`` too)."""

    run_dir: Path
    node: str
    reused: bool
    profile: Path = SLURM_PROFILE
    python: str = sys.executable

    # ------------------------------------------------------------ snakemake
    def env(self, extra: dict | None = None) -> dict:
        """The environment Snakemake runs in (EXTRA added last)."""
        env = dict(os.environ)
        # jobs run Snakemake with this interpreter; its bin/ first on PATH
        env["PATH"] = f"{Path(self.python).parent}{os.pathsep}{env.get('PATH', '')}"
        for var in list(env):  # a SLURM job environment must not leak into submissions
            if var.startswith(("SLURM_", "SBATCH_", "SRUN_")):
                env.pop(var)
        env.update(extra or {})
        return env

    def snakemake_cmd(self, *args: str, profile: Path | str | None = None) -> list[str]:
        return [self.python, "-m", "snakemake", "--profile", str(profile or self.profile), *args]

    def snakemake(self, workdir: Path | str, *args: str, profile: Path | str | None = None,
                  timeout: float = 600, env: dict | None = None) -> SnakemakeRun:
        """Run ``snakemake --profile profiles/slurm ARGS`` in WORKDIR and wait.
        The output is also kept as WORKDIR/snakemake-run-<n>.out."""
        cmd = self.snakemake_cmd(*args, profile=profile)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=workdir, env=self.env(env), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        run = SnakemakeRun(cmd, Path(workdir), proc.returncode, proc.stdout, time.monotonic() - t0)
        # keep every invocation's output next to the workflow, for post-mortems
        n = len(list(Path(workdir).glob("snakemake-run-*.out"))) + 1
        (Path(workdir) / f"snakemake-run-{n}.out").write_text(
            f"# {' '.join(cmd)}\n# exit {run.returncode} after {run.wall_s:.1f}s\n{run.output}")
        return run

    def start_snakemake(self, workdir: Path | str, *args: str, profile: Path | str | None = None,
                        env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        """Start Snakemake in the background; its output goes to WORKDIR/snakemake.out.
        Stop it with ``proc.send_signal(signal.SIGINT)`` (cancels its SLURM jobs) or kill it."""
        log = Path(workdir) / "snakemake.out"
        with open(log, "w") as out:
            proc = subprocess.Popen(self.snakemake_cmd(*args, profile=profile), cwd=workdir,
                                    env=self.env(env), text=True, stdout=out,
                                    stderr=subprocess.STDOUT)
        return proc, log

    @staticmethod
    def copy_workflow(src: Path | str, dest: Path | str) -> Path:
        """Copy a workflow folder (Snakefile, config, ...) to DEST, without .snakemake/."""
        dest = Path(dest)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".snakemake"), dirs_exist_ok=True)
        return dest

    # ------------------------------------------------------------ slurm
    def squeue(self, states: str = "all") -> list[dict]:
        """Jobs the controller knows (finished ones for MinJobAge=600 s)."""
        out = subprocess.run(["squeue", "-h", "-t", states, "-o", "%i|%T|%P|%k|%j"],
                             text=True, capture_output=True, check=True, timeout=30).stdout
        keys = ("jobid", "state", "partition", "comment", "name")
        return [dict(zip(keys, line.split("|", 4))) for line in out.splitlines() if line.strip()]

    def job(self, jobid: str) -> dict:
        """``scontrol show job`` as a dict (empty once the job is forgotten)."""
        proc = subprocess.run(["scontrol", "-o", "show", "job", str(jobid)],
                              text=True, capture_output=True, timeout=30)
        if proc.returncode != 0:
            return {}
        return dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)

    def scancel(self, *jobids: str) -> None:
        subprocess.run(["scancel", *map(str, jobids)], check=True, timeout=30)

    def wait_for_jobs(self, timeout: float = 120) -> None:
        """Wait until no job is pending, running or completing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.squeue("PENDING,RUNNING,COMPLETING,SUSPENDED"):
                return
            time.sleep(1)
        raise TimeoutError(f"SLURM jobs still active after {timeout}s: {self.squeue('PENDING,RUNNING')}")


def _cannot_host() -> str | None:
    """Why this machine cannot run the local cluster, or None."""
    if not sys.platform.startswith("linux"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (it runs slurmctld/slurmd and writes /etc/slurm)"
    have = all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have and not (Path("/etc/debian_version").exists() and shutil.which("apt-get")):
        return "SLURM is not installed and this is not Debian with apt-get to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node SLURM cluster (see module docstring); yields SlurmCluster."""
    reason = _cannot_host()
    if reason:
        skip_or_fail(reason)
    run_dir = Path(os.environ.get("SEALFLOW_SLURM_DIR")
                   or Path(os.environ.get("TMPDIR", "/tmp")) / "sealflow-slurm")
    env = dict(os.environ, SEALFLOW_SLURM_DIR=str(run_dir))
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(CLUSTER_DIR / "slurm_up.sh")], env=env, text=True,
                          capture_output=True, timeout=900)
    if proc.returncode == 2:
        skip_or_fail(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no cluster")
    if proc.returncode != 0:
        pytest.fail(f"slurm_up.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    cluster = SlurmCluster(run_dir=Path(info["SLURM_RUN_DIR"]), node=info["SLURM_NODE"],
                           reused=info.get("SLURM_REUSED") == "1")
    print(f"\nSLURM cluster {'reused' if cluster.reused else 'started'} in "
          f"{time.monotonic() - t0:.1f}s ({cluster.run_dir})")

    # A shared lock marks this session as a user of the cluster, so that a
    # session that started it does not stop it under another one.
    users = open(f"{run_dir}.users", "w")
    fcntl.flock(users, fcntl.LOCK_SH)
    try:
        yield cluster
    finally:
        fcntl.flock(users, fcntl.LOCK_UN)
        stop = not cluster.reused and os.environ.get("SEALFLOW_SLURM_KEEP", "") in ("", "0")
        if stop:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                stop = False  # another session is still using it
        if stop:
            subprocess.run(["bash", str(CLUSTER_DIR / "slurm_down.sh")], env=env, timeout=300)
        users.close()
