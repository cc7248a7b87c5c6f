"""Guided decoding of ARC self-edits: choice drawing, the JSON layout, and a real tiny model."""

from __future__ import annotations

import json

import pytest

from sealflow.backends.base import GenerationRequest, draw_choices
from sealflow.fewshot.guided import guided_completions, slots
from sealflow.fewshot.toolconfig import ToolConfig, parse_self_edit, to_json


def test_greedy_draw_takes_the_likeliest_choice():
    assert draw_choices([-3.0, -0.5, -2.0], n=4, temperature=0, top_p=1.0, seed=1) == [1, 1, 1, 1]


def test_draw_is_seeded_and_follows_the_probabilities():
    logprobs = [0.0, -1.0]  # about 73% / 27%
    first = draw_choices(logprobs, n=2000, temperature=1.0, top_p=1.0, seed=7)
    assert first == draw_choices(logprobs, n=2000, temperature=1.0, top_p=1.0, seed=7)
    share = first.count(0) / len(first)
    assert 0.68 < share < 0.78


def test_top_p_drops_the_unlikely_tail():
    picks = draw_choices([0.0, -0.1, -8.0], n=500, temperature=1.0, top_p=0.9, seed=3)
    assert set(picks) == {0, 1}


def test_draw_needs_a_choice():
    with pytest.raises(ValueError):
        draw_choices([], n=1, temperature=1.0, top_p=1.0, seed=0)


def test_slot_layout_writes_exactly_what_to_json_writes():
    config = ToolConfig(True, False, True, False, "output_tokens", 0.003, 7)
    layout, closing = slots([0.001, 0.003], [1, 7, 10])
    values = [" true", " false", " true", " false", ' "train_using_output_tokens"', " 0.003", " 7"]
    text = "".join(slot.before + value for slot, value in zip(layout, values)) + closing
    assert text == to_json(config)
    for slot, value in zip(layout, values):
        assert value in slot.values
        assert not slot.before.endswith(" ")  # the space is the value's: see the next test


def test_choices_keep_the_tokenization_the_model_learnt(tiny_llama_dir):
    """A prompt ending in a space would split " false" from its merged token and bias every flag to true."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    layout, _ = slots([0.001], [1])
    for slot in layout:
        before_ids = tokenizer(slot.before, add_special_tokens=False)["input_ids"]
        for value in slot.values:
            whole = tokenizer(slot.before + value, add_special_tokens=False)["input_ids"]
            assert whole[: len(before_ids)] == before_ids  # the fixed text tokenizes the same inside the JSON
            assert whole[len(before_ids):] == tokenizer(value, add_special_tokens=False)["input_ids"]


class RecordingBackend:
    """Picks the last choice of every request and records what it was asked."""

    def __init__(self):
        self.requests: list[GenerationRequest] = []

    def generate(self, requests):
        self.requests.extend(requests)
        return [[r.choices[-1]] * r.n for r in requests]

    def close(self):
        pass


def test_guided_completions_are_valid_configurations_built_slot_by_slot():
    backend = RecordingBackend()
    out = guided_completions(backend, ["P1:", "P2:"], seeds=[1, 2], k=3, temperature=1.0, top_p=1.0,
                             learning_rates=[1e-3, 5e-3], epochs=[2, 4])
    assert len(out) == 2 and all(len(row) == 3 for row in out)
    parsed = parse_self_edit(out[0][0])
    assert parsed.ok, parsed.reason
    assert parsed.config == ToolConfig(False, False, False, False, "output_tokens", 5e-3, 4)
    assert len(backend.requests) == 7 * 2 * 3  # one request per slot, prompt and sample
    last = backend.requests[-1]
    assert last.prompt.startswith("P2:") and last.prompt.endswith('"num_train_epochs":')
    assert last.choices == (" 2}", " 4}")  # the space before and the closing character travel with the value
    assert len({r.seed for r in backend.requests}) == len(backend.requests)
    json.loads(out[1][2])


def test_hf_backend_draws_choices_by_the_models_probabilities(tiny_llama_dir):
    from sealflow.backends.hf import HFBackend
    from sealflow.devices import resolve_placement

    backend = HFBackend(str(tiny_llama_dir), resolve_placement("cpu"))
    prompt = "input:\n12\noutput:\n"
    choices = ("true,", "false,", "0.001}")
    scores = backend.choice_logprobs(backend.model, prompt, choices)
    # the same numbers by a plain forward pass over each full sequence
    import torch

    tok = backend.tokenizer
    for choice, score in zip(choices, scores):
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(choice, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = backend.model(input_ids=torch.tensor([p_ids + c_ids])).logits[0]
        lp = torch.log_softmax(logits.float(), -1)
        expected = sum(float(lp[len(p_ids) - 1 + t, c]) for t, c in enumerate(c_ids))
        assert score == pytest.approx(expected, abs=1e-4)
    greedy = backend.generate([GenerationRequest(prompt, n=3, temperature=0.0, choices=choices)])[0]
    assert greedy == [choices[max(range(3), key=lambda i: scores[i])]] * 3
    sampled = backend.generate([GenerationRequest(prompt, n=20, temperature=1.0, seed=5, choices=choices)])[0]
    assert set(sampled) <= set(choices)
