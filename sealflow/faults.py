"""Test-only fault injection, so failure handling is tested on real jobs.

``SEALFLOW_FAIL_ONCE=<stage>[,<stage>...]`` makes the first attempt of each named stage
raise; a marker file in ``SEALFLOW_FAULT_DIR`` (default: the system temp folder)
records that it already failed, so the retry succeeds. Unset in normal runs.

``SEALFLOW_DELAY=<stage>:<seconds>[,...]`` makes a stage pause where it calls
:func:`maybe_delay` (the inner loop: after each adapter it trains), so a test can
kill a job at a known point.

``SEALFLOW_SPAWN_CHILD=<file>`` makes every stage start one child process with the
``spawn`` method before its work, as vLLM's engine does on CUDA; the child appends a
line to ``<file>`` naming the main script it re-imported, and a child that fails fails
the stage. It pins that a stage script survives what vLLM does to it on a GPU.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


class InjectedFault(RuntimeError):
    """Raised on purpose by :func:`maybe_fail`."""


def maybe_fail(stage: str, key: str = "") -> None:
    wanted = {s.strip() for s in os.environ.get("SEALFLOW_FAIL_ONCE", "").split(",") if s.strip()}
    if stage not in wanted:
        return
    folder = Path(os.environ.get("SEALFLOW_FAULT_DIR", tempfile.gettempdir()))
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"sealflow-fault-{stage}{('-' + key) if key else ''}"
    if marker.exists():
        return
    marker.write_text("failed once\n")
    raise InjectedFault(f"injected fault in stage {stage!r} (SEALFLOW_FAIL_ONCE); a retry will succeed")


def maybe_delay(stage: str) -> None:
    """Sleep for the seconds ``SEALFLOW_DELAY`` gives ``stage`` (test-only; no-op when unset)."""
    for item in os.environ.get("SEALFLOW_DELAY", "").split(","):
        name, _, seconds = item.strip().partition(":")
        if name == stage and seconds:
            time.sleep(float(seconds))


def _spawned_child(record: str) -> None:
    main = sys.modules.get("__mp_main__")  # the parent's main script, re-imported by spawn
    with open(record, "a", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), "main": getattr(main, "__file__", None)}) + "\n")


def maybe_spawn_child() -> None:
    """Start and join one ``spawn`` child when ``SEALFLOW_SPAWN_CHILD`` is set (test-only; no-op when unset)."""
    record = os.environ.get("SEALFLOW_SPAWN_CHILD")
    if not record:
        return
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=_spawned_child, args=(record,), name="spawn-probe")
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"a child process started with spawn exited with code {child.exitcode} "
                           "(SEALFLOW_SPAWN_CHILD); see its traceback above")
