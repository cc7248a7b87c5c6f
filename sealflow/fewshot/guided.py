"""Guided decoding of ARC self-edits: the JSON layout is fixed, the policy picks the values.

A small policy (the tiny CPU model, or a 1B model before any RL) often writes text that
is not a tool configuration at all, and such self-edits only ever earn reward 0. With
``self_edits.decoding: guided`` the sampler writes the paper's JSON layout itself and
asks the policy for one value at a time, drawn from that slot's allowed choices by the
policy's own probability of each (what vLLM's ``choice`` structured output does). The
result is always a parseable configuration, and ReST-EM still learns which values pay
off: the SFT update raises the probability of the kept values in exactly these contexts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from ..backends import Backend, GenerationRequest
from ..ids import derived_seed
from .toolconfig import FLAG_KEYS, nested_layout

DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 5e-3, 1e-2)
DEFAULT_EPOCHS = tuple(range(1, 11))


@dataclass(frozen=True)
class Slot:
    key: str
    before: str  # fixed text written before the value
    values: tuple[str, ...]  # the value as JSON text


def slots(learning_rates: Sequence[float], epochs: Sequence[int]) -> tuple[list[Slot], str]:
    """The slots in the order ``toolconfig.to_json`` writes them, and the closing text.

    The fixed text comes from the same layout ``to_json`` serialises, with a marker in
    place of each value, so the two cannot drift apart. The space before a value belongs
    to the value: a BPE tokenizer writes ``": false`` as ``":`` ``Ġfalse`` but ``": true``
    as ``":`` ``Ġ`` ``true`` (whichever merges it learnt), so a prompt that ended with the
    space would leave "false" only the spelling the model never saw (``f`` ``al`` ``se``)
    and the policy would pick "true" every time."""
    choices = {
        **{key: ("true", "false") for key in FLAG_KEYS},
        "strategy": ('"train_using_all_tokens"', '"train_using_output_tokens"'),
        "learning_rate": tuple(json.dumps(float(lr)) for lr in learning_rates),
        "num_train_epochs": tuple(str(int(e)) for e in epochs),
    }
    text = json.dumps(nested_layout({key: f"@{key}@" for key in choices}))
    parts = re.split(r'"@(\w+)@"', text)  # before, key, before, key, ..., closing
    layout = []
    for before, key in zip(parts[0:-1:2], parts[1::2]):
        fixed = before.rstrip(" ")
        space = before[len(fixed):]
        layout.append(Slot(key, fixed, tuple(space + value for value in choices[key])))
    return layout, parts[-1]


def guided_completions(backend: Backend, prompts: Sequence[str], seeds: Sequence[int], k: int, temperature: float,
                       top_p: float, learning_rates: Sequence[float] = DEFAULT_LEARNING_RATES,
                       epochs: Sequence[int] = DEFAULT_EPOCHS) -> list[list[str]]:
    """``k`` JSON tool configurations per prompt, one backend call per slot for all of them.

    Each choice is offered with the first character that follows it (``,`` or ``}``), so
    the policy also says where the value ends: "1}" and "10}" compete fairly."""
    layout, closing = slots(learning_rates, epochs)
    followers = [s.before[0] for s in layout[1:]] + [closing[0]]
    texts = [["" for _ in range(k)] for _ in prompts]
    for index, (slot, follower) in enumerate(zip(layout, followers)):
        choices = tuple(value + follower for value in slot.values)
        budget = max(len(c) for c in choices)  # never more tokens than characters: the longest choice fits
        requests = [
            GenerationRequest(prompt + texts[p][sample] + slot.before, n=1, max_new_tokens=budget,
                              temperature=temperature, top_p=top_p, seed=derived_seed(seeds[p], sample, index),
                              choices=choices)
            for p, prompt in enumerate(prompts) for sample in range(k)
        ]
        picked = backend.generate(requests)
        for position, answer in enumerate(picked):
            p, sample = divmod(position, k)
            texts[p][sample] += slot.before + answer[0][: -len(follower)]
    return [[text + closing for text in row] for row in texts]
