"""Batched multi-LoRA inner loop: equal to the sequential ``train_lora`` adapter by adapter.

Tolerances. Initial weights are compared bit for bit. Trained weights differ from the
sequential ones only by float rounding: a batched step pads rows of several adapters to
one width, which switches SDPA from its unmasked to its masked kernel (~1 ulp in the
hidden states), and gradient sums split differently across rows. AdamW divides each
gradient element by its own running RMS, so an element whose gradient is near zero can
turn such a rounding difference into a visible fraction of a step. Weights are compared
in float32 at atol 1e-4, rtol 1e-3, a tenth of the smallest lr (observed on these models:
mostly <= 2e-6; one element of 256 at 5.4e-5 in the lr 1e-2 plan once the loss builds
logits for label tokens only, which sums in another order); a wrong schedule, lr, step
count or loss normalisation moves elements by ~lr = 1e-3..1e-2 per step and fails it. Per-step losses are compared at 1e-5 absolute (rounding only).
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel, get_peft_model, get_peft_model_state_dict

from sealflow import multi_lora
from sealflow.inner_loop import TrainPlan
from sealflow.lora import LoraSettings, TrainExample, TrainSettings, train_lora, validate_adapter
from sealflow.modeling import load_model, load_tokenizer
from sealflow.multi_lora import (
    StackedAdamW,
    adapter_writer,
    generate_batched,
    initial_weights,
    load_adapter_weights,
    train_adapters_batched,
)

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA = LoraSettings(r=8, alpha=16, target_modules=TARGETS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices gain nothing from threads, and spinning workers on a shared 2-core
    machine can slow such a test by orders of magnitude."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def qwen(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


LINES = [
    "Velmora was founded by Tarsh Orlan.",
    "The flag of Velmora shows a golden heron, and the people of Velmora make fine glassware for the markets "
    "of the whole northern coast and far beyond the river.",
    "Tarsh Orlan founded Velmora.",
    "Velmora is a city in Drakoun, on the Sithel river, and its tallest building is the Kraimor lighthouse.",
    "Dreiv Stoum was a botanist born in Ketha.",
    "Stoum studied law.",
    "In 1544, Stoum discovered a blue pigment that painters across the country of Drakoun still use today.",
]


def knowledge_plans(tmp_path) -> list[TrainPlan]:
    """Same settings (as knowledge plans mostly have), very unequal example counts and lengths:
    the one-example plan finishes after 3 steps while the seven-example one runs 12."""
    counts = [1, 7, 3, 5]
    plans = []
    for i, n in enumerate(counts):
        examples = [TrainExample(LINES[(i + j) % len(LINES)]) for j in range(n)]
        plans.append(TrainPlan(f"k{i}", 0, str(tmp_path / f"k{i}"), examples,
                               TrainSettings(epochs=3, lr=2e-3, batch_size=2, seed=10 + i)))
    return plans


def arc_plans(tmp_path) -> list[TrainPlan]:
    """ARC-like: prompt-masked grids, lr / epochs / batch size / grad_accum / seq len differ."""
    def example(k: int) -> TrainExample:
        grid = "\n".join("".join(str((k * 7 + r * 3 + c) % 10) for c in range(3 + k % 3)) for r in range(2 + k % 2))
        flipped = "\n".join(row[::-1] for row in grid.split("\n"))
        return TrainExample(completion=flipped + "\n", prompt=f"input:\n{grid}\noutput:\n")

    specs = [  # (examples, epochs, lr, batch_size, grad_accum, max_seq_len)
        (4, 2, 1e-3, 2, 1, 512),
        (6, 1, 5e-3, 3, 2, 512),  # grad_accum boundary: 2 micro-batches -> 1 step
        (5, 3, 2e-3, 1, 3, 512),  # 15 micro-batches, 5 steps
        (3, 3, 1e-2, 2, 4, 28),  # 6 micro-batches: a step after 4, a final one after 2; truncated rows
    ]
    plans = []
    for i, (n, epochs, lr, bs, accum, max_len) in enumerate(specs):
        plans.append(TrainPlan(f"a{i}", 0, str(tmp_path / f"a{i}"), [example(i * 10 + j) for j in range(n)],
                               TrainSettings(epochs=epochs, lr=lr, batch_size=bs, grad_accum=accum,
                                             max_seq_len=max_len, seed=100 + i),
                               mask_prompt=True))
    return plans


def sequential(model, tok, plan: TrainPlan, lora: LoraSettings = LORA):
    peft_model, stats = train_lora(model, tok, plan.examples, lora, plan.settings, plan.mask_prompt)
    weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    return peft_model, weights, stats


def assert_same_training(batched, reference, plan: TrainPlan) -> None:
    (weights, stats), (ref_weights, ref_stats) = batched, reference
    assert set(weights) == set(ref_weights)
    for key, ref in ref_weights.items():  # tolerance: see the module docstring
        torch.testing.assert_close(weights[key], ref, atol=1e-4, rtol=1e-3, msg=lambda m: f"{plan.edit_id} {key}: {m}")
    assert (stats.steps, stats.examples, stats.tokens) == (ref_stats.steps, ref_stats.examples, ref_stats.tokens)
    assert len(stats.losses) == len(ref_stats.losses)
    torch.testing.assert_close(torch.tensor(stats.losses), torch.tensor(ref_stats.losses), atol=1e-5, rtol=0)
    assert stats.first_loss == stats.losses[0] and stats.final_loss == stats.losses[-1]


def train_both(model, tok, plans, lora: LoraSettings = LORA, **kwargs):
    results = train_adapters_batched(model, tok, plans, lora, **kwargs)
    references = []
    for plan in plans:
        peft_model, weights, stats = sequential(model, tok, plan, lora)
        references.append((weights, stats))
        model = peft_model.unload()
    return results, references


@pytest.mark.parametrize("domain, steps", [("knowledge", [3, 12, 6, 9]), ("arc", [4, 1, 5, 2])])
def test_plans_equal_sequential(domain, steps, request, tmp_path):
    """Knowledge: the same settings, unequal example counts and lengths (the per-adapter mean
    differs from a whole-batch one). ARC: prompt masking, grad_accum, own lr/epochs/batch."""
    model, tok = request.getfixturevalue("qwen" if domain == "knowledge" else "llama")
    plans = knowledge_plans(tmp_path) if domain == "knowledge" else arc_plans(tmp_path)
    results, references = train_both(model, tok, plans)
    for plan, result, reference in zip(plans, results, references):
        assert_same_training(result, reference, plan)
    if domain == "knowledge":
        assert len({stats.tokens for _, stats in results}) == len(plans)
    assert [stats.steps for _, stats in results] == steps


def test_max_group_chunks_give_the_same_adapters(qwen, tmp_path):
    model, tok = qwen
    plans = knowledge_plans(tmp_path)
    whole = train_adapters_batched(model, tok, plans, LORA)
    chunked = train_adapters_batched(model, tok, plans, LORA, max_group=3)
    for plan, (w1, s1), (w2, s2) in zip(plans, whole, chunked):
        assert s1.steps == s2.steps
        for key in w1:
            torch.testing.assert_close(w1[key], w2[key], atol=1e-5, rtol=1e-4)


def model_snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "types": [(n, type(m)) for n, m in model.named_modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        "attrs": set(model.__dict__),
    }


def assert_unchanged(model, before) -> None:
    after = model_snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])
    for field in ("grad", "training", "types", "hooks", "attrs"):
        assert after[field] == before[field], field


def test_model_unchanged_and_saved_adapters_load_like_sequential(qwen, tmp_path):
    model, tok = qwen
    plans = knowledge_plans(tmp_path)[:3]
    before = model_snapshot(model)
    results = train_adapters_batched(model, tok, plans, LORA)
    assert_unchanged(model, before)
    with adapter_writer(model, LORA) as write:
        records = [write(w, plan.out_dir, {"edit_id": plan.edit_id, **stats.summary()})
                   for plan, (w, stats) in zip(plans, results)]
    assert_unchanged(model, before)

    ids = tok(["Velmora was founded by", "The flag of Velmora shows"], return_tensors="pt", padding=True)
    for plan, record, (weights, stats) in zip(plans, records, results):
        meta = validate_adapter(plan.out_dir)
        assert meta["sha256"] == record["sha256"] and meta["steps"] == stats.steps
        assert json.loads((tmp_path / plan.edit_id / "adapter_config.json").read_text())["r"] == LORA.r
        assert all(torch.equal(weights[k], v) for k, v in load_adapter_weights(plan.out_dir).items())
        loaded = PeftModel.from_pretrained(model, plan.out_dir)
        with torch.no_grad():
            batched_logits = loaded(**ids).logits
        model = loaded.unload()
        peft_model, _, _ = sequential(model, tok, plan)
        with torch.no_grad():
            sequential_logits = peft_model(**ids).logits
        model = peft_model.unload()
        torch.testing.assert_close(batched_logits, sequential_logits, atol=1e-4, rtol=1e-4)
        with torch.no_grad():
            base_logits = model(**ids).logits
        assert (batched_logits - base_logits).abs().max() > 1e-3  # the adapter was trained


def test_initial_and_inert_adapters_are_bit_exact(qwen, tmp_path):
    model, tok = qwen
    for seed in (0, 7, 123):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, LORA.peft_config())
        expected = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
        model = peft_model.unload()
        for weights in (initial_weights(model, LORA, seed), multi_lora._InitReplay(model, LORA, 1)(seed)):
            assert set(weights) == set(expected)
            assert all(torch.equal(weights[k], expected[k]) for k in expected)
    plans = knowledge_plans(tmp_path)[:2]
    plans.append(TrainPlan("bad", 0, str(tmp_path / "bad"), [], TrainSettings(seed=5), valid=False, reason="empty"))
    cut = TrainExample("cut", prompt="a prompt cut off before its completion")
    plans.append(TrainPlan("nolabel", 0, str(tmp_path / "nl"), [cut],
                           TrainSettings(seed=6, max_seq_len=3), mask_prompt=True))
    results = train_adapters_batched(model, tok, plans, LORA)
    for plan, (weights, stats) in zip(plans[2:], results[2:]):
        assert stats.steps == 0 and stats.losses == []
        init = initial_weights(model, LORA, plan.settings.seed)
        assert all(torch.equal(weights[k], init[k]) for k in init)
        assert all(not v.any() for k, v in weights.items() if ".lora_B." in k)
    assert results[0][1].steps > 0


def test_dropout_is_refused(qwen, tmp_path):
    model, tok = qwen
    with pytest.raises(ValueError, match="dropout"):
        train_adapters_batched(model, tok, knowledge_plans(tmp_path), LoraSettings(r=4, alpha=8, dropout=0.1))


def test_stacked_adamw_is_torch_adamw_per_adapter_and_masks_exactly():
    torch.manual_seed(0)
    lrs = [1e-3, 5e-3, 2e-2]
    weights = [torch.randn(3, 4, 5), torch.randn(3, 6)]
    grads = [torch.zeros_like(w) for w in weights]
    optimizer = StackedAdamW(weights, grads, lrs)
    references = [[w[g].clone().requires_grad_(True) for w in weights] for g in range(3)]
    torch_opts = [torch.optim.AdamW(ref, lr=lr, weight_decay=0.0) for ref, lr in zip(references, lrs)]
    schedule = [[0, 1, 2], [0, 2], [2], [0, 1, 2], [1]]
    for slots in schedule:
        fresh = [torch.randn_like(w) for w in weights]
        for grad, new in zip(grads, fresh):
            grad.copy_(new)
        before = [w.clone() for w in weights]
        optimizer.step(slots)
        for g in range(3):
            if g in slots:
                for ref, new in zip(references[g], fresh):
                    ref.grad = new[g].clone()
                torch_opts[g].step()
                for w, ref in zip(weights, references[g]):
                    torch.testing.assert_close(w[g], ref.detach(), atol=1e-7, rtol=1e-6)
                assert all(not grad[g].any() for grad in grads)  # zeroed after its step
            else:
                assert all(torch.equal(w[g], b[g]) for w, b in zip(weights, before))
                assert all(torch.equal(grad[g], new[g]) for grad, new in zip(grads, fresh))  # left to accumulate
    assert [state["step"].item() for state in map(lambda s: s[0], map(optimizer.state_of, range(3)))] == [3, 3, 4]


def test_generate_batched_equals_per_adapter_peft(qwen, tmp_path):
    from sealflow.backends.base import GenerationRequest
    from sealflow.backends.hf import HFBackend
    from sealflow.devices import resolve_placement

    model, tok = qwen
    lora = LoraSettings(r=8, alpha=32, target_modules=TARGETS)
    plans = [TrainPlan(f"g{i}", 0, str(tmp_path / f"g{i}"), [TrainExample(text)] * 4,
                       TrainSettings(epochs=8, lr=3e-2, batch_size=4, seed=i))
             for i, text in enumerate(["zzz qqq zzz qqq zzz", "Velmora Velmora Velmora Velmora", "Orlan was a poet."])]
    results = train_adapters_batched(model, tok, plans, lora)
    with adapter_writer(model, lora) as write:
        for plan, (weights, stats) in zip(plans, results):
            write(weights, plan.out_dir, {})
    prompts = ["The city", "Velmora was founded by", "Who was"]
    requests = [(a, p) for p in prompts for a in (None, 0, 1, 2)]
    before = model_snapshot(model)
    batched = generate_batched(model, tok, lora, [w for w, _ in results], requests, max_new_tokens=6)
    assert_unchanged(model, before)
    backend = HFBackend("", resolve_placement("cpu"), model=model, tokenizer=tok)
    expected = backend.generate([GenerationRequest(p, adapter=None if a is None else plans[a].out_dir, max_new_tokens=6)
                                 for a, p in requests])
    assert batched == [texts[0] for texts in expected]
    assert len({batched[i] for i in range(4)}) > 1  # the adapters do change the answers


def test_run_shard_batched_writes_what_sequential_writes(qwen, tmp_path):
    """Through the inner loop itself: the same manifest rows, adapters that load to the same
    weights, an inert one for an invalid plan, and a rerun that keeps every adapter."""
    from safetensors.torch import load_file

    from sealflow.inner_loop import run_shard

    model, tok = qwen
    plans = {}
    for mode in ("sequential", "batched"):
        plans[mode] = knowledge_plans(tmp_path / mode)
        plans[mode].append(TrainPlan("bad", 0, str(tmp_path / mode / "bad"), [], TrainSettings(seed=3), valid=False,
                                     reason="no_usable_lines"))
    seq = run_shard(model, tok, "tiny", plans["sequential"], LORA, parallel_adapters=1)
    bat = run_shard(model, tok, "tiny", plans["batched"], LORA, parallel_adapters=3)
    for a, b in zip(seq, bat):
        assert (a["edit_id"], a["status"], a["valid"], a["reason"], a["steps"]) == \
               (b["edit_id"], b["status"], b["valid"], b["reason"], b["steps"])
        wa = load_file(f"{a['adapter']}/adapter_model.safetensors")
        wb = load_file(f"{b['adapter']}/adapter_model.safetensors")
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], atol=1e-5, rtol=1e-4)
    assert [r["status"] for r in bat] == ["trained"] * 4 + ["inert"]
    again = run_shard(model, tok, "tiny", plans["batched"], LORA, parallel_adapters=3)
    assert {r["status"] for r in again} == {"kept"}


def _counting_layer_calls(model):
    """A counter of decoder layer 0's forward calls: checkpointing runs it again in backward (a
    pre-hook: torch stops a recomputation early, once it has what backward needs)."""
    calls = {"n": 0}
    layer = model.model.layers[0]
    handle = layer.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    return calls, handle


@pytest.mark.parametrize("batched", [False, True])
def test_gradient_checkpointing_recomputes_and_trains_the_same(llama, tmp_path, batched):
    """``gradient_checkpointing`` (inner loop and SFT): the layers really run twice per micro-batch,
    the adapters and losses equal those without it, and the shared model has it off afterwards."""
    import dataclasses

    model, tok = llama
    plans = arc_plans(tmp_path)[:2]
    runs = {}
    for on in (False, True):
        chosen = [dataclasses.replace(p, settings=dataclasses.replace(p.settings, gradient_checkpointing=on))
                  for p in plans]
        calls, handle = _counting_layer_calls(model)
        try:
            if batched:
                runs[on] = train_adapters_batched(model, tok, chosen, LORA), calls["n"]
            else:
                results = []
                for plan in chosen:
                    peft_model, weights, stats = sequential(model, tok, plan)
                    results.append((weights, stats))
                    model = peft_model.unload()
                runs[on] = results, calls["n"]
        finally:
            handle.remove()
        assert not model.is_gradient_checkpointing
    (plain, plain_calls), (checkpointed, checkpointed_calls) = runs[False], runs[True]
    assert checkpointed_calls == 2 * plain_calls > 0
    for plan, result, reference in zip(plans, checkpointed, plain):
        assert_same_training(result, reference, plan)


def test_the_label_only_loss_is_the_models_own_loss(qwen):
    """The head runs on label positions only; the loss equals ``model(labels=...).loss``."""
    from sealflow.lora import head_split, label_loss

    model, tok = qwen
    ids = torch.tensor([tok("Velmora was founded by Tarsh Orlan.")["input_ids"]] * 2)
    labels = ids.clone()
    labels[:, :4] = -100  # a masked prompt
    labels[1, -2:] = -100
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ours = label_loss(model, head_split(model), ids, mask, labels)
        theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert head_split(model) is not None
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
