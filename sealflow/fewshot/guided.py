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
from dataclasses import dataclass
from typing import Sequence

from ..backends import Backend, GenerationRequest
from ..knowledge.selfedits import derived_seed
from .selfedit import FLAG_KEYS

DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 5e-3, 1e-2)
DEFAULT_EPOCHS = tuple(range(1, 11))


@dataclass(frozen=True)
class Slot:
    key: str
    before: str  # fixed text written before the value
    values: tuple[str, ...]  # the value as JSON text


def slots(learning_rates: Sequence[float], epochs: Sequence[int]) -> tuple[list[Slot], str]:
    """The slots in the order ``selfedit.to_json`` writes them, and the closing text."""
    flags = ("true", "false")
    layout = [Slot(FLAG_KEYS[0], '{"data_generation": {"%s": ' % FLAG_KEYS[0], flags)]
    layout += [Slot(key, ', "%s": ' % key, flags) for key in FLAG_KEYS[1:]]
    layout.append(Slot("strategy", '}, "training": {"strategy": ',
                       ('"train_using_all_tokens"', '"train_using_output_tokens"')))
    layout.append(Slot("learning_rate", ', "learning_rate": ', tuple(json.dumps(float(lr)) for lr in learning_rates)))
    layout.append(Slot("num_train_epochs", ', "num_train_epochs": ', tuple(str(int(e)) for e in epochs)))
    return layout, "}}"


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
        requests = [
            GenerationRequest(prompt + texts[p][sample] + slot.before, n=1, max_new_tokens=16,
                              temperature=temperature, top_p=top_p, seed=derived_seed(seeds[p], sample, index),
                              choices=tuple(value + follower for value in slot.values))
            for p, prompt in enumerate(prompts) for sample in range(k)
        ]
        picked = backend.generate(requests)
        for position, answer in enumerate(picked):
            p, sample = divmod(position, k)
            texts[p][sample] += slot.before + answer[0][: -len(follower)]
    return [[text + closing for text in row] for row in texts]
