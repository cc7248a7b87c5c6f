"""Scoring settings, importable without torch (the Snakefile reads them at parse time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoringSettings:
    grader: str = "f1"
    max_new_tokens: int = 16
    judge: dict | None = None
    question_prompt: str = "plain"  # plain | chat (see prompts.answer_prompt)

    @classmethod
    def from_config(cls, cfg: dict) -> "ScoringSettings":
        return cls(cfg["grader"], int(cfg["max_new_tokens"]), cfg.get("judge"), cfg["question_prompt"])
