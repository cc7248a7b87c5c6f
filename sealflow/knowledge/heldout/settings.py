"""Settings of one held-out evaluation, merged from ``knowledge.*`` and ``knowledge.heldout.*``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ...settings import LoraSettings, TrainSettings
from ..scoring_settings import ScoringSettings
from .methods import heldout_config

@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides one (method, setting) evaluation besides the data and model."""

    k: int = 1
    eval_repeats: int = 1
    split: str = "lines"
    include_passage: bool = True
    lora: LoraSettings = LoraSettings()
    train: TrainSettings = TrainSettings()
    cpt_lora: LoraSettings = LoraSettings()
    cpt_train: TrainSettings = TrainSettings()
    scoring: ScoringSettings = ScoringSettings()
    continual_passages: int | None = None
    seed: int = 0
    parallel_adapters: int = 1  # LoRAs trained at once in one batched pass (single and cpt)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "EvalSettings":
        kcfg = config["knowledge"]
        hcfg = heldout_config(config)
        inner = {**kcfg["inner_loop"], **(hcfg["inner_loop"] or {})}
        cpt = {**inner, **(hcfg["cpt"] or {})}
        return cls(
            k=int(hcfg["k"]), eval_repeats=int(hcfg["eval_repeats"]),
            split=str(inner["split"]), include_passage=bool(inner["include_passage"]),
            lora=LoraSettings.from_config(inner["lora"]), train=TrainSettings.from_config(inner),
            cpt_lora=LoraSettings.from_config(cpt["lora"]), cpt_train=TrainSettings.from_config(cpt),
            scoring=heldout_scoring(config),
            continual_passages=hcfg["continual_passages"], seed=int(config["seed"]),
            parallel_adapters=int(inner["parallel_adapters"]),
        )


def heldout_scoring(config: Mapping[str, Any]) -> ScoringSettings:
    """``knowledge.scoring`` with ``heldout.scoring`` over it: all that grading reads."""
    return ScoringSettings.from_config({**config["knowledge"]["scoring"], **heldout_config(config)["scoring"]})


def sampling_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``knowledge.self_edits`` with ``heldout.sampling`` over it and ``k = heldout.k``."""
    hcfg = heldout_config(config)
    return {**config["knowledge"]["self_edits"], **(hcfg["sampling"] or {}), "k": int(hcfg["k"])}


def seeded(settings: TrainSettings, seed: int) -> TrainSettings:
    return replace(settings, seed=seed)
