"""Whether a model's sequences begin with a begin-of-text token: the tokenizer's own rule.

Training (``lora.encode_example``) and generation (the few-shot prompts) both ask here,
so an adapter never learns from a sequence the model does not see when it answers.

* Llama 3: the tokenizer prepends ``<|begin_of_text|>`` itself and the chat template
  renders ``{{ bos_token }}`` first, so every sequence starts with it.
* SmolLM2: ``bos_token`` is ``<|im_start|>``, but the tokenizer never prepends it and the
  chat template writes it only to open each turn; prepending it would make
  ``<|im_start|><|im_start|>system``, a sequence the model never reads.
* Qwen2 and GPT-2 style tokenizers: no BOS, or one equal to EOS: none.
"""

from __future__ import annotations

from typing import Any


def starts_with_bos(tokenizer: Any) -> bool:
    """True when the model's sequences begin with ``tokenizer.bos_token``."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or bos == getattr(tokenizer, "eos_token", None):
        return False
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and "bos_token" in template:
        return True
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None or not callable(tokenizer):
        return False
    return tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos_id]


def bos_text(tokenizer: Any) -> str:
    """The begin-of-text token as text ("" when the model's sequences have none)."""
    return tokenizer.bos_token if starts_with_bos(tokenizer) else ""


def bos_ids(tokenizer: Any, ids: list[int]) -> list[int]:
    """The ids to put before ``ids``: the BOS id once, never twice, or nothing."""
    if not starts_with_bos(tokenizer) or ids[:1] == [tokenizer.bos_token_id]:
        return []
    return [tokenizer.bos_token_id]
