"""Stop ``generate`` early at stop strings, row by row.

Closed-book answers stop at the first newline, but ``generate`` would otherwise run the
whole token budget and the cut (:func:`sealflow.backends.base.apply_stop`) happened
afterwards. A row is finished as soon as its decoded new text holds a stop string;
``generate`` pads finished rows and ends when every row is finished. Each row's tokens
up to its stop are the same as without the criterion (finished rows do not change the
others' computation), so the cut text is identical, only sooner.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList


class StopOnStrings(StoppingCriteria):
    """Per row: True once the text generated after ``prompt_len`` tokens contains a stop string."""

    def __init__(self, tokenizer, stop: Sequence[str], prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, tuple(s for s in stop if s), prompt_len
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.done is None or self.done.shape[0] != input_ids.shape[0]:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        rows = [i for i in range(input_ids.shape[0]) if not self.done[i]]
        if rows:
            texts = self.tokenizer.batch_decode(input_ids[rows, self.prompt_len:], skip_special_tokens=True)
            for i, text in zip(rows, texts):
                if any(s in text for s in self.stop):
                    self.done[i] = True
        return self.done.clone()


def stop_criteria(tokenizer, stop: Sequence[str], prompt_len: int) -> StoppingCriteriaList | None:
    """``stopping_criteria`` for ``generate``, or None when there is no stop string."""
    if not any(stop):
        return None
    return StoppingCriteriaList([StopOnStrings(tokenizer, stop, prompt_len)])
