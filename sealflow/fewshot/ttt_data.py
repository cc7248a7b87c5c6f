"""Test-time training data for one task under one tool configuration.

Training sequences come only from the task's demonstrations (leave-one-out and
leave-two-out, then the augmentations the configuration switches on); the test input
is never seen during training, so solving it is a fair reward.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from sealflow.fewshot.augment import augment_tasks, leave_one_out, leave_two_out
from sealflow.fewshot.prompts import ttt_completion, ttt_prompt
from sealflow.fewshot.toolconfig import ToolConfig
from sealflow.fewshot.tasks import ArcTask


@dataclass(frozen=True)
class TTTExample:
    prompt: str
    completion: str  # the loss covers this alone, or the prompt too (ToolConfig.train_on_prompt)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "TTTExample":
        return cls(str(row["prompt"]), str(row["completion"]))


def build_ttt_examples(
    task: ArcTask,
    config: ToolConfig,
    rng: random.Random | int = 0,
    n_max: int = 250,
    max_chars: int | None = None,
) -> list[TTTExample]:
    """At most ``n_max`` training examples; those longer than ``max_chars`` are dropped."""
    demos_only = ArcTask(task.id, list(task.train), [])
    base = leave_one_out(demos_only) + leave_two_out(demos_only)
    examples = []
    for sub in augment_tasks(base, config.flags, rng, n_max):
        query = sub.test[0]
        assert query.output is not None  # built from demonstrations, which all have outputs
        example = TTTExample(ttt_prompt(sub.train, query.input), ttt_completion(query.output))
        if max_chars is None or len(example.prompt) + len(example.completion) <= max_chars:
            examples.append(example)
    return examples
