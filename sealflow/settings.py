"""Training settings as plain dataclasses: importable without torch or peft.

The Snakefile reads them at parse time, so keeping them light keeps every Snakemake
start (and every SLURM job, which starts Snakemake twice) fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    @classmethod
    def from_config(cls, cfg: dict) -> "LoraSettings":
        return cls(int(cfg["r"]), int(cfg["alpha"]), float(cfg["dropout"]), tuple(cfg["target_modules"]))

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
            bias="none",
        )


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 256
    seed: int = 0
    gradient_checkpointing: bool = False  # recompute activations in backward: memory for about a third more compute
    kl_coef: float = 0.0  # weight of KL(model before training || trained model) on the label tokens; needs a PeftModel

    @classmethod
    def from_config(cls, cfg: dict, seed: int = 0, **overrides) -> "TrainSettings":
        values = dict(
            epochs=int(cfg["epochs"]), lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]),
            grad_accum=int(cfg["grad_accum"]), max_seq_len=int(cfg["max_seq_len"]), seed=seed,
            gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
            kl_coef=float(cfg.get("kl_coef", 0.0)),
        )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class TrainExample:
    """``prompt`` is context whose tokens carry no loss when masked; ``completion`` is learnt."""

    completion: str
    prompt: str = ""


@dataclass
class TrainPlan:
    """What to train for one adapter; ``valid=False`` writes an inert (zero) adapter."""

    edit_id: str
    repeat: int
    out_dir: str
    examples: list[TrainExample]
    settings: TrainSettings
    mask_prompt: bool = False
    valid: bool = True
    reason: str | None = None
    info: dict = field(default_factory=dict)
