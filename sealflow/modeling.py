"""Loading models and tokenizers: one code path for tiny local models and hub ids."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from .devices import Placement, resolve_placement


def resolve_model_path(path_or_pointer: str | os.PathLike) -> str:
    """A base-model folder may hold ``pointer.txt`` naming a hub id or path instead of weights."""
    path = Path(path_or_pointer)
    pointer = path / "pointer.txt"
    if pointer.is_file():
        return pointer.read_text().strip()
    return str(path_or_pointer)


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left
    return tokenizer


def load_model(path: str | os.PathLike, placement: Placement | None = None) -> torch.nn.Module:
    placement = placement or resolve_placement("auto")
    # On a GPU the weights load straight onto it (device_map; accelerate comes with peft), not
    # into host memory first: a 7B model is 15 GB of host RAM and a second copy otherwise.
    device_map = {"": placement.device} if placement.is_cuda else None
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(path), dtype=placement.dtype, device_map=device_map)
    model.to(placement.device)  # no-op where device_map placed it
    model.eval()
    return model
