"""The begin-of-text rule: an adapter trains on exactly the sequence the model reads when it answers.

Three tokenizers built here stand for the three conventions (sealflow.bos): Llama 3 (BOS first, rendered
by the chat template), SmolLM2 (``bos_token`` <|im_start|> that only opens chat turns) and Qwen2 (none).
The SmolLM2 tokenizer itself is checked in test_smollm2.py.
"""

from __future__ import annotations

import pytest

from sealflow.base_model import train_tokenizer
from sealflow.bos import bos_text, starts_with_bos
from sealflow.fewshot.sampling import policy_prompt, with_bos
from sealflow.lora import TrainExample, encode_example

TEXTS = ["Pafa discovered a copper alloy in 1631.", "input:\n01\n10\noutput:\n10\n01"] * 20


@pytest.fixture(scope="module")
def tokenizers():
    llama = train_tokenizer(TEXTS, "llama", 400)
    qwen = train_tokenizer(TEXTS, "qwen2", 400)
    smol = train_tokenizer(TEXTS, "qwen2", 400)  # Qwen2's ChatML template, with <|im_start|> named BOS
    smol.bos_token = "<|im_start|>"
    return {"llama": llama, "qwen2": qwen, "smollm2": smol}


def test_which_models_start_with_bos(tokenizers):
    assert starts_with_bos(tokenizers["llama"])
    assert not starts_with_bos(tokenizers["qwen2"]) and not starts_with_bos(tokenizers["smollm2"])
    assert bos_text(tokenizers["llama"]) == "<|begin_of_text|>" and bos_text(tokenizers["smollm2"]) == ""


@pytest.mark.parametrize("name", ["llama", "qwen2", "smollm2"])
def test_the_trained_sequence_is_the_sequence_the_model_reads(tokenizers, name):
    """Few-shot: the stored prompt (BOS stripped) plus the trainer's BOS equals the sampled prompt."""
    from sealflow.fewshot.tasks import ArcTask, Example

    tok = tokenizers[name]
    task = ArcTask("t", [Example([[0, 1]], [[1, 0]])], [Example([[1, 1]], [[1, 1]])])
    prompt = policy_prompt(task, tok)
    ids, labels = encode_example(tok, TrainExample(completion='{"lr": 0.001}', prompt=prompt), 10**6, True)
    read = tok(with_bos(tok, prompt), add_special_tokens=False)["input_ids"]
    assert ids[:len(read)] == read
    assert labels[:len(read)] == [-100] * len(read)
    first_two = tok.convert_ids_to_tokens(ids[:2])
    assert first_two[0] != first_two[1]  # never '<|im_start|><|im_start|>' nor a doubled BOS


@pytest.mark.parametrize("name", ["llama", "qwen2", "smollm2"])
def test_a_chat_prompt_that_already_holds_its_bos_gets_no_second_one(tokenizers, name):
    """Knowledge prompts are rendered chat templates, BOS included where the template writes one."""
    tok = tokenizers[name]
    chat = tok.apply_chat_template([{"role": "user", "content": "Passage: Pafa"}], tokenize=False,
                                   add_generation_prompt=True)
    ids, _ = encode_example(tok, TrainExample(completion="Pafa discovered", prompt=chat), 10**6, True)
    plain = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    assert ids == plain(chat) + plain("Pafa discovered") + [tok.eos_token_id]


def test_a_passage_alone_starts_with_bos_only_where_the_model_does(tokenizers):
    for name, expected in [("llama", True), ("qwen2", False), ("smollm2", False)]:
        tok = tokenizers[name]
        ids, _ = encode_example(tok, TrainExample("Pafa discovered a copper alloy in 1631."), 10**6, False)
        assert (ids[0] == tok.bos_token_id) is expected, name
