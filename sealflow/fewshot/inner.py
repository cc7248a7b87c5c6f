"""ARC training plans: self-edit (JSON tool configuration) -> TTT examples -> LoRA.

A self-edit that does not parse, breaks the step budget, yields no training example
or (with ``skip_duplicates``) repeats an earlier configuration for the same task gets
an inert adapter and its reason; the reward step then scores it 0 without running it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..ids import adapter_dir, derived_seed, slot_of
from ..settings import TrainExample, TrainPlan, TrainSettings
from ..records import SelfEdit
from .toolconfig import DUPLICATE, ToolConfig, check_budget, config_key, parse_self_edit, training_steps
from .tasks import ArcTask
from .ttt_data import build_ttt_examples

NO_EXAMPLES = "no_examples"


@dataclass(frozen=True)
class TTTSettings:
    """What the configuration cannot choose: batch shape, step budget, data size."""

    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 512
    max_steps: int = 100
    n_max: int = 32  # TTT examples per task at most
    max_chars: int | None = None  # drop longer TTT examples
    skip_duplicates: bool = False
    gradient_checkpointing: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "TTTSettings":
        return cls(int(cfg["batch_size"]), int(cfg["grad_accum"]), int(cfg["max_seq_len"]),
                   int(cfg["max_steps"]), int(cfg["n_max"]), cfg["max_chars"], bool(cfg["skip_duplicates"]),
                   bool(cfg.get("gradient_checkpointing", False)))


def plan_for_config(task: ArcTask, config: ToolConfig | None, reason: str | None, edit_id: str, out_dir: str,
                    settings: TTTSettings, seed: int) -> TrainPlan:
    """One adapter's plan; ``config=None`` (with its ``reason``) plans an inert adapter."""
    inert = TrainSettings(batch_size=settings.batch_size, max_seq_len=settings.max_seq_len, seed=seed)
    info: dict = {"input_id": task.id, "n_examples": 0, "planned_steps": 0, "config": ""}
    if config is None:
        return TrainPlan(edit_id, 0, out_dir, [], inert, valid=False, reason=reason, info=info)
    info["config"] = config_key(config)
    examples = build_ttt_examples(task, config, random.Random(seed), settings.n_max, settings.max_chars)
    info["n_examples"] = len(examples)
    if not examples:
        return TrainPlan(edit_id, 0, out_dir, [], inert, valid=False, reason=NO_EXAMPLES, info=info)
    info["planned_steps"] = training_steps(config, len(examples), settings.batch_size)
    over = check_budget(config, len(examples), settings.batch_size, settings.max_steps)
    if over is not None:
        return TrainPlan(edit_id, 0, out_dir, [], inert, valid=False, reason=over, info=info)
    train = TrainSettings(epochs=config.num_train_epochs, lr=config.learning_rate, batch_size=settings.batch_size,
                          grad_accum=settings.grad_accum, max_seq_len=settings.max_seq_len, seed=seed,
                          gradient_checkpointing=settings.gradient_checkpointing)
    return TrainPlan(edit_id, 0, out_dir, [TrainExample(e.completion, e.prompt) for e in examples], train,
                     mask_prompt=not config.train_on_prompt, info=info)


def plans_for_edits(edits: Sequence[SelfEdit], tasks: Mapping[str, ArcTask], root: str,
                    settings: TTTSettings, seed: int) -> list[TrainPlan]:
    """One plan per edit (a single repeat: ARC rewards are exact, so one adapter decides)."""
    plans = []
    seen: dict[str, set[str]] = {}
    for edit in edits:
        task = tasks[edit.input_id]
        parsed = parse_self_edit(edit.completion)
        config, reason = parsed.config, parsed.reason
        if config is not None and settings.skip_duplicates:
            key = config_key(config)
            if key in seen.setdefault(task.id, set()):
                config, reason = None, DUPLICATE
            else:
                seen[task.id].add(key)
        out_dir = adapter_dir(str(root), slot_of(edit.id))
        plans.append(plan_for_config(task, config, reason, edit.id, out_dir, settings, derived_seed(seed, edit.id, 0)))
    return plans

