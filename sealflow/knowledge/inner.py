"""Knowledge-domain training plans: self-edit -> title-prefixed sequences -> LoRA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..inner_loop import TrainPlan
from ..lora import TrainExample, TrainSettings
from ..records import Passage, SelfEdit
from .selfedits import derived_seed
from .sequences import training_texts


@dataclass(frozen=True)
class InnerSettings:
    split: str = "lines"
    include_passage: bool = True
    eval_repeats: int = 1
    reuse_training: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "InnerSettings":
        return cls(cfg.get("split", "lines"), bool(cfg.get("include_passage", True)),
                   int(cfg.get("eval_repeats", 1)), bool(cfg.get("reuse_training", False)))

    @property
    def trained_repeats(self) -> int:
        """Adapters per edit: one per repeat, or one reused for every repeat."""
        return 1 if self.reuse_training else self.eval_repeats


def adapter_dir(root: str | Path, slot: str, repeat: int) -> Path:
    return Path(root) / slot / f"rep{repeat}"


def plans_for_edits(edits: Sequence[SelfEdit], passages: Mapping[str, Passage], root: str | Path,
                    inner: InnerSettings, train: TrainSettings, seed: int) -> list[TrainPlan]:
    plans = []
    for edit in edits:
        texts = training_texts(passages[edit.input_id], edit.completion, inner.split, inner.include_passage)
        # An edit contributing nothing of its own is invalid: reward 0 with its reason.
        valid = texts.n_from_edit > 0
        slot = edit.id.split("-", 2)[2]
        for repeat in range(inner.trained_repeats):
            settings = TrainSettings(**{**train.__dict__, "seed": derived_seed(seed, edit.id, repeat)})
            plans.append(TrainPlan(
                edit_id=edit.id, repeat=repeat, out_dir=str(adapter_dir(root, slot, repeat)),
                examples=[TrainExample(t) for t in texts.texts] if valid else [], settings=settings,
                valid=valid, reason=texts.reason, info={"input_id": edit.input_id, "n_sequences": len(texts.texts)},
            ))
    return plans
