"""Base model building, LoRA training/saving/validation and the HF backend."""

from __future__ import annotations

import shutil

import pytest
import torch

from sealflow.backends import BackendSettings, GenerationRequest, make_backend
from sealflow.devices import resolve_placement
from sealflow.lora import AdapterError, LoraSettings, TrainExample, TrainSettings, encode_example, save_adapter, train_lora, validate_adapter
from sealflow.modeling import load_model, load_tokenizer


def test_tiny_model_reloads_with_chat_template(tiny_model_dir, tiny_llama_dir):
    for folder in (tiny_model_dir, tiny_llama_dir):
        tok = load_tokenizer(folder)
        model = load_model(folder, resolve_placement("cpu"))
        assert tok.chat_template
        text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
        assert "hi" in text
        names = {n.split(".")[-1] for n, _ in model.named_modules()}
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names


def test_prompt_masking_is_exact(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    ids, labels = encode_example(tok, TrainExample(prompt="Question: who?\nAnswer:", completion=" Velmora"), 128, True)
    n_prompt = len(tok("Question: who?\nAnswer:", add_special_tokens=False)["input_ids"])
    assert all(label == -100 for label in labels[:n_prompt])
    assert all(label != -100 for label in labels[n_prompt:])
    assert labels[n_prompt:] == ids[n_prompt:]


def test_train_save_validate_and_detect_truncation(tiny_model_dir, tmp_path):
    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, resolve_placement("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    examples = [TrainExample("Velmora was founded by Tarsh Orlan.")] * 4
    peft_model, stats = train_lora(model, tok, examples, LoraSettings(r=4, alpha=8), TrainSettings(epochs=3, lr=1e-2, batch_size=2))
    assert stats.steps == 6 and stats.final_loss < stats.first_loss
    save_adapter(peft_model, tmp_path / "a", {"edit": "x"})
    base = peft_model.unload()
    # unload() restores the untouched base weights for the next edit
    after = base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = validate_adapter(tmp_path / "a")
    assert meta["edit"] == "x" and len(meta["sha256"]) == 64
    broken = tmp_path / "b"
    shutil.copytree(tmp_path / "a", broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterError, match="adapter_model.safetensors"):
        validate_adapter(broken)


def test_hf_backend_greedy_is_deterministic_and_adapter_changes_output(tiny_model_dir, tmp_path):
    placement = resolve_placement("cpu")
    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, placement)
    peft_model, _ = train_lora(model, tok, [TrainExample("zzz qqq zzz qqq zzz")] * 8, LoraSettings(r=8, alpha=32),
                               TrainSettings(epochs=10, lr=5e-2, batch_size=8))
    save_adapter(peft_model, tmp_path / "a", {})
    peft_model.unload()
    backend = make_backend(str(tiny_model_dir), placement, BackendSettings(name="hf"))
    reqs = [GenerationRequest("The city", max_new_tokens=8), GenerationRequest("The city", adapter=str(tmp_path / "a"), max_new_tokens=8),
            GenerationRequest("The city", max_new_tokens=8)]
    out = backend.generate(reqs)
    assert out[0] == out[2] and out[0] != out[1]
    sampled = backend.generate([GenerationRequest("The", n=3, max_new_tokens=6, temperature=1.0, top_p=0.9, seed=1)])
    assert len(sampled[0]) == 3


def test_hf_backend_greedy_with_several_samples_repeats_the_greedy_answer(tiny_model_dir):
    # temperature 0 with k > 1 is a valid config (held-out self-edits sampled greedily); transformers
    # refuses num_return_sequences > 1 without sampling, so the backend generates once and repeats
    backend = make_backend(str(tiny_model_dir), resolve_placement("cpu"), BackendSettings(name="hf"))
    one, = backend.generate([GenerationRequest("The city", max_new_tokens=8)])
    out = backend.generate([GenerationRequest("The city", n=3, max_new_tokens=8),
                            GenerationRequest("The", n=3, max_new_tokens=8)])
    assert out[0] == one * 3
    assert len(out[1]) == 3 and len(set(out[1])) == 1


def test_hf_backend_answers_base_requests_without_adapters_in_any_order(tiny_model_dir, tmp_path):
    """peft injects LoRA layers into the model in place: a base request after an adapter
    request must still be answered by the base model (else every reward would be 0)."""
    import itertools

    placement = resolve_placement("cpu")
    tok = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir, placement)
    paths = []
    for i, text in enumerate(["zzz qqq zzz qqq zzz", "kol vap kol vap kol"]):
        peft_model, _ = train_lora(model, tok, [TrainExample(text)] * 8, LoraSettings(r=8, alpha=32),
                                   TrainSettings(epochs=10, lr=5e-2, batch_size=8, seed=i))
        save_adapter(peft_model, tmp_path / f"a{i}", {})
        model = peft_model.unload()
        paths.append(str(tmp_path / f"a{i}"))
    backend = make_backend(str(tiny_model_dir), placement, BackendSettings(name="hf"))
    alone = {key: backend.generate([GenerationRequest("The city", adapter=key, max_new_tokens=8)])[0]
             for key in (None, *paths)}
    assert len({tuple(v) for v in alone.values()}) == 3  # the adapters visibly change the answer
    for order in itertools.permutations((None, *paths)):
        out = backend.generate([GenerationRequest("The city", adapter=key, max_new_tokens=8) for key in order])
        assert out == [alone[key] for key in order], order


def test_max_model_len_follows_the_model_and_refuses_more(tiny_model_dir):
    from transformers import AutoConfig

    from sealflow.backends.vllm_engine import resolve_max_model_len

    limit = AutoConfig.from_pretrained(tiny_model_dir).max_position_embeddings
    assert resolve_max_model_len(str(tiny_model_dir), None) == limit
    assert resolve_max_model_len(str(tiny_model_dir), 64) == 64
    with pytest.raises(ValueError, match=rf"backend.max_model_len={2 * limit} exceeds .*max_position_embeddings={limit}"):
        resolve_max_model_len(str(tiny_model_dir), 2 * limit)


def test_adapters_are_saved_in_the_models_dtype_and_keyed_by_it(tiny_model_dir, tmp_path):
    """peft trains LoRA weights in float32; a bf16 model's adapters are saved in bf16 (half the bytes),
    and the dtype is part of the training key, the adapter's meta and the shard manifest."""
    from safetensors import safe_open

    from sealflow.inner_loop import TrainPlan, run_shard

    tok = load_tokenizer(tiny_model_dir)
    lora = LoraSettings(r=4, alpha=8)
    rows, sizes = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        model = load_model(tiny_model_dir, resolve_placement("cpu")).to(dtype)
        name = str(dtype).removeprefix("torch.")
        plan = TrainPlan("e0", 0, str(tmp_path / name), [TrainExample("Velmora was founded by Tarsh Orlan.")] * 2,
                         TrainSettings(epochs=1, lr=1e-2, batch_size=2))
        rows[name], = run_shard(model, tok, "m", [plan], lora)
        weights = tmp_path / name / "adapter_model.safetensors"
        with safe_open(str(weights), framework="pt") as handle:
            tensors = [handle.get_tensor(k) for k in handle.keys()]
        assert {t.dtype for t in tensors} == {dtype}
        sizes[name] = sum(t.numel() * t.element_size() for t in tensors)
        assert validate_adapter(tmp_path / name)["dtype"] == name == rows[name]["dtype"]
    assert rows["float32"]["training_key"] != rows["bfloat16"]["training_key"]
    assert sizes["bfloat16"] * 2 == sizes["float32"]


@pytest.mark.parametrize("adapter", [False, True])
def test_hf_generation_ends_at_the_stop_string_with_the_same_text(tiny_model_dir, tmp_path, adapter):
    """A stop string ends a row's generation (fewer new tokens), and the answer is the one that
    generating the whole budget and cutting afterwards gives; with adapters (the shared-batch path) too."""
    from sealflow.backends.base import apply_stop

    placement = resolve_placement("cpu")
    tok = load_tokenizer(tiny_model_dir)
    path = None
    if adapter:
        model = load_model(tiny_model_dir, placement)
        peft_model, _ = train_lora(model, tok, [TrainExample("zzz qqq zzz qqq zzz")] * 4, LoraSettings(r=4, alpha=8),
                                   TrainSettings(epochs=2, lr=1e-2, batch_size=4))
        save_adapter(peft_model, tmp_path / "a", {})
        path = str(tmp_path / "a")
    backend = make_backend(str(tiny_model_dir), placement, BackendSettings(name="hf"))
    widths = []
    generate = backend.model.generate

    def recording(*args, **kwargs):
        out = generate(*args, **kwargs)
        widths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    backend.model.generate = recording
    full, = backend.generate([GenerationRequest("The city", adapter=path, max_new_tokens=48)])
    stop = full[0][3:5]
    assert stop.strip() and widths == [48]
    cut, = backend.generate([GenerationRequest("The city", adapter=path, max_new_tokens=48, stop=(stop,))])
    assert cut == [apply_stop(full[0], (stop,))]
    assert widths[1] < 48


def test_a_gpu_load_places_the_weights_on_the_device_while_loading(tiny_model_dir, monkeypatch):
    """No host copy first: from_pretrained gets the device as its device_map on CUDA (CPU: none)."""
    import transformers

    import sealflow.modeling as modeling
    from sealflow.devices import Placement

    seen = []

    class _Model(torch.nn.Module):
        def to(self, device):
            return self

    def fake_from_pretrained(path, **kwargs):
        seen.append(kwargs)
        return _Model()

    monkeypatch.setattr(modeling.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    modeling.load_model(tiny_model_dir, Placement(torch.device("cuda"), torch.bfloat16))
    modeling.load_model(tiny_model_dir, Placement(torch.device("cpu"), torch.float32))
    assert seen[0]["device_map"] == {"": torch.device("cuda")} and seen[0]["dtype"] is torch.bfloat16
    assert seen[1]["device_map"] is None
    assert transformers.AutoModelForCausalLM is modeling.AutoModelForCausalLM


def _kl_to_reference(peft_model, tok, example: TrainExample) -> float:
    """Mean KL(model with its LoRA off || model) over the example's completion tokens."""
    from sealflow.lora import head_split, label_logits

    ids, labels = encode_example(tok, example, 128, True)
    input_ids, mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
    flat = (torch.tensor(labels[1:]) != -100).nonzero().squeeze(1)
    split = head_split(peft_model)
    with torch.no_grad():
        log_p = torch.log_softmax(label_logits(peft_model, split, input_ids, mask, flat).float(), -1)
        with peft_model.disable_adapter():
            log_q = torch.log_softmax(label_logits(peft_model, split, input_ids, mask, flat).float(), -1)
    return float((log_q.exp() * (log_q - log_p)).sum(-1).mean())


def test_the_kl_term_keeps_the_update_near_the_model_it_starts_from(tiny_model_dir):
    """sft.kl_coef: the first step's loss is plain cross-entropy (a fresh LoRA is the reference itself),
    and the trained model ends nearer the reference. A KL against the trained model itself (LoRA not
    switched off) would change nothing; a flipped sign would push it further away."""
    tok = load_tokenizer(tiny_model_dir)
    example = TrainExample(prompt="Question: who founded Velmora?\nAnswer:", completion=" Tarsh Orlan founded Velmora.")
    runs = {}
    for kl_coef in (0.0, 5.0):
        model = load_model(tiny_model_dir, resolve_placement("cpu"))
        settings = TrainSettings(epochs=40, lr=3e-3, batch_size=1, seed=3, kl_coef=kl_coef)
        peft_model, stats = train_lora(model, tok, [example], LoraSettings(r=4, alpha=8), settings, mask_prompt=True)
        runs[kl_coef] = (stats, _kl_to_reference(peft_model, tok, example))
    (plain, kl_plain), (regularised, kl_regularised) = runs[0.0], runs[5.0]
    assert regularised.first_loss == pytest.approx(plain.first_loss, rel=1e-5)
    assert kl_plain > 0.05  # plain SFT did move the model
    assert kl_regularised < 0.5 * kl_plain
