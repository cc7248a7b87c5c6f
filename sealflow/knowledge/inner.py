"""Knowledge-domain training plans: self-edit -> title-prefixed sequences -> LoRA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..ids import adapter_dir, derived_seed, slot_of
from ..inner_loop import TrainPlan
from ..lora import TrainExample, TrainSettings
from ..records import Passage, SelfEdit
from .sequences import training_texts


@dataclass(frozen=True)
class InnerSettings:
    split: str = "lines"
    include_passage: bool = True
    eval_repeats: int = 1
    reuse_training: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "InnerSettings":
        return cls(cfg["split"], bool(cfg["include_passage"]), int(cfg["eval_repeats"]), bool(cfg["reuse_training"]))

    @property
    def trained_repeats(self) -> int:
        """Adapters per edit: one per repeat, or one reused for every repeat."""
        return 1 if self.reuse_training else self.eval_repeats


def plans_for_edits(edits: Sequence[SelfEdit], passages: Mapping[str, Passage], root: str,
                    inner: InnerSettings, train: TrainSettings, seed: int) -> list[TrainPlan]:
    plans = []
    for edit in edits:
        texts = training_texts(passages[edit.input_id], edit.completion, inner.split, inner.include_passage)
        # An edit contributing nothing of its own is invalid: reward 0 with its reason.
        valid = texts.n_from_edit > 0
        slot = slot_of(edit.id)
        for repeat in range(inner.trained_repeats):
            settings = TrainSettings(**{**train.__dict__, "seed": derived_seed(seed, edit.id, repeat)})
            plans.append(TrainPlan(
                edit_id=edit.id, repeat=repeat, out_dir=adapter_dir(str(root), slot, repeat),
                examples=[TrainExample(t) for t in texts.texts] if valid else [], settings=settings,
                valid=valid, reason=texts.reason, info={"input_id": edit.input_id, "n_sequences": len(texts.texts)},
            ))
    return plans
