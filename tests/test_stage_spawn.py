"""A stage survives a child process started with ``spawn`` (what vLLM's engine does on CUDA).

Snakemake runs ``scripts/stage.py`` as a temporary top-level script (preamble + source,
``python .snakemake/scripts/tmpXXXX.stage.py``), and a spawn child re-imports the parent's
main script before it runs anything. These tests run a real rule through Snakemake with
``SEALFLOW_SPAWN_CHILD`` set, so a spawn child starts inside the job, and check that the
stage ran exactly once and the child came back cleanly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealflow.stages import in_child_process

ROOT = Path(__file__).resolve().parents[1]

SNAKEFILE = """
rule probe:
    output:
        out=directory("{{domain}}/model"),
    params:
        stage="base.base_model",
        settings={{"seed": 0, "knowledge": {{"base_model": {{"path": "local-model"}}}}}},
    log:
        "logs/{{domain}}.log",
    script:
        "{script}"
"""

UNGUARDED = "from sealflow.stages import run\nrun(snakemake)\n"


def _run_probe(tmp_path: Path, script: Path) -> tuple[subprocess.CompletedProcess, Path]:
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(script=script))
    (tmp_path / "local-model").mkdir(exist_ok=True)  # a local folder: the stage writes a pointer to it
    record = tmp_path / "children.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SEALFLOW_SPAWN_CHILD": str(record)}
    proc = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "-c1", "knowledge/model"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return proc, record


@pytest.mark.workflow
def test_the_stage_script_runs_once_when_a_spawn_child_starts(tmp_path):
    proc, record = _run_probe(tmp_path, ROOT / "scripts" / "stage.py")
    assert proc.returncode == 0, proc.stderr[-4000:]
    children = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(children) == 1
    # the child really re-imported the stage script as its main module (as vLLM's engine would) ...
    assert children[0]["main"] and Path(children[0]["main"]).name == "stage.py"
    # ... and the stage body ran once, in the job's own process
    log = (tmp_path / "logs" / "knowledge.log").read_text()
    assert log.count("stage base.base_model") == 1, log
    assert (tmp_path / "knowledge" / "model" / "pointer.txt").read_text().strip() == "local-model"


@pytest.mark.workflow
def test_an_unguarded_stage_script_breaks_in_the_spawn_child(tmp_path):
    """The control: the same rule with a script lacking the ``__main__`` guard fails, so the
    test above can fail, and it fails for the reason vLLM's engine would on a GPU."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    proc, record = _run_probe(tmp_path, script)
    assert proc.returncode != 0
    assert "spawn exited with code 1" in proc.stderr
    # Snakemake's preamble points __file__ at the real script, so the child runs it without the preamble
    assert "NameError: name 'snakemake' is not defined" in proc.stderr
    assert not record.exists() or not record.read_text().strip()  # the child died importing the script


def _report(queue) -> None:
    queue.put(in_child_process())


def test_in_child_process_is_false_here_and_true_in_a_spawn_child():
    assert not in_child_process()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_report, args=(queue,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
