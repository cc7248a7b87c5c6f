"""Knowledge-domain training plans: self-edit -> title-prefixed sequences -> LoRA.

As in the paper, each implication (or segment) is its own short sequence prefixed
with the passage title, so the LoRA learns facts attached to their topic; the
passage itself is appended so a bad self-edit can at worst match the
"train on the passage" baseline. Unusable samples come back with a reason
instead of raising, because a sampled self-edit is allowed to be garbage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..ids import adapter_dir, baseline_edit_id, baseline_slot, derived_seed, parse_slot, slot_of
from ..settings import TrainExample, TrainPlan, TrainSettings
from ..records import UNDECODABLE, Passage, SelfEdit, undecodable

SPLITS: tuple[str, ...] = ("lines", "segments", "none")
EMPTY_COMPLETION = "empty_completion"
NO_USABLE_LINES = "no_usable_lines"

# Bullets and numbering a list-writing LM puts in front of items ("- ", "3. ", "(2) ", "Implication 4:").
_BULLET = re.compile(
    r"^\s*(?:[-*\u2022\u00b7\u2013>]+\s*|\(?\d{1,3}[.)](?!\d)\s*|(?:Implication|Fact|Statement)\s*\d*\s*[:.]\s*)+"
)
_SEPARATOR = re.compile(r"\n[ \t]*(?:-{3,}|\*{3,}|={3,})?[ \t]*\n")
_HAS_WORD = re.compile(r"\w")
_QA_ANSWER = re.compile(r"^\s*Answer\s*\d*\s*:", re.M)
_QA_QUESTION = re.compile(r"\n(?=\s*Question\s*\d*\s*:)")


@dataclass
class TrainingTexts:
    texts: list[str] = field(default_factory=list)
    n_from_edit: int = 0  # how many of ``texts`` came from the self-edit (the rest is the passage)
    reason: str | None = None  # why the self-edit contributed nothing, else None


def passage_text(passage: Passage) -> str:
    return _with_title(passage, passage.context.strip())


def _with_title(passage: Passage, body: str) -> str:
    title = passage.title.strip()
    return f"{title}\n{body}" if title else body


def _clean_line(line: str) -> str:
    return _BULLET.sub("", line).strip()


def _is_header(line: str) -> bool:
    """Preambles like "Sure, here are the implications:" carry no facts."""
    return line.endswith(":") and len(line.split()) <= 8


def _usable(text: str, min_words: int) -> bool:
    return bool(_HAS_WORD.search(text)) and len(text.split()) >= min_words


def _clean_block(block: str) -> str:
    lines = (_clean_line(line) for line in block.splitlines())
    return "\n".join(line for line in lines if line and not _is_header(line))


def _is_self_qa(text: str) -> bool:
    return bool(_QA_ANSWER.search(text))


def _restore_qa_cue(text: str) -> str:
    """The self-qa prompt ends with "Question 1: ", so the completion starts mid-pair."""
    return text if text.lstrip().startswith("Question") else "Question 1: " + text.lstrip()


def _split_lines(text: str, min_words: int) -> list[str]:
    if _is_self_qa(text):
        pairs = (p.strip() for p in _QA_QUESTION.split(_restore_qa_cue(text)))
        return [p for p in pairs if _usable(p, min_words)]
    lines = (_clean_line(line) for line in text.splitlines())
    return [line for line in lines if not _is_header(line) and _usable(line, min_words)]


def _split_segments(text: str, min_words: int, lines_per_segment: int) -> list[str]:
    if _is_self_qa(text):
        text = _restore_qa_cue(text)
    blocks = [_clean_block(b) for b in _SEPARATOR.split(text)]
    blocks = [b for b in blocks if b]
    if len(blocks) == 1 and lines_per_segment > 0:
        lines = blocks[0].split("\n")
        blocks = ["\n".join(lines[i : i + lines_per_segment]) for i in range(0, len(lines), lines_per_segment)]
    return [b for b in blocks if _usable(b, min_words)]


def _dedupe(items: list[str]) -> list[str]:
    """A degenerate sample repeating one line should not weight that line more."""
    return list(dict.fromkeys(items))


def training_texts(
    passage: Passage,
    completion: str,
    split: str = "lines",
    include_passage: bool = True,
    *,
    min_words: int = 3,
    lines_per_segment: int = 5,
) -> TrainingTexts:
    """Sequences for one self-edit: title-prefixed pieces, then optionally the passage."""
    if split not in SPLITS:
        raise ValueError(f"unknown knowledge.inner_loop.split {split!r} (expected one of {', '.join(SPLITS)})")
    text = completion.strip() if isinstance(completion, str) else ""
    reason: str | None = None
    if not isinstance(completion, str) or undecodable(completion):
        pieces: list[str] = []
        reason = UNDECODABLE  # not text a tokenizer can take: reward 0, not a crashed shard
    elif not text:
        pieces = []
        reason = EMPTY_COMPLETION
    else:
        if split == "lines":
            pieces = _split_lines(text, min_words)
        elif split == "segments":
            pieces = _split_segments(text, min_words, lines_per_segment)
        else:
            whole = _clean_block(text)
            pieces = [whole] if _usable(whole, min_words) else []
        pieces = _dedupe(pieces)
        if not pieces:
            reason = NO_USABLE_LINES
    texts = [_with_title(passage, piece) for piece in pieces]
    if include_passage:
        texts.append(passage_text(passage))
    return TrainingTexts(texts=texts, n_from_edit=len(pieces), reason=reason)


def passage_only_texts(passage: Passage) -> TrainingTexts:
    """The "train on the passage only" baseline, shaped like ``training_texts``."""
    return TrainingTexts(texts=[passage_text(passage)], n_from_edit=0, reason=None)



REWARD_BASELINES: tuple[str, ...] = ("base", "passage")


@dataclass(frozen=True)
class InnerSettings:
    split: str = "lines"
    include_passage: bool = True
    eval_repeats: int = 1
    reuse_training: bool = False
    reward_baseline: str = "base"  # base: the un-adapted policy; passage: a LoRA on the passage alone

    def __post_init__(self):
        if self.reward_baseline not in REWARD_BASELINES:
            raise ValueError(f"unknown knowledge.inner_loop.reward_baseline {self.reward_baseline!r} "
                             f"(expected one of {', '.join(REWARD_BASELINES)})")

    @classmethod
    def from_config(cls, cfg: dict) -> "InnerSettings":
        return cls(cfg["split"], bool(cfg["include_passage"]), int(cfg["eval_repeats"]), bool(cfg["reuse_training"]),
                   str(cfg.get("reward_baseline", "base")))

    @property
    def trained_repeats(self) -> int:
        """Adapters per edit: one per repeat, or one reused for every repeat."""
        return 1 if self.reuse_training else self.eval_repeats


def _settings_for(train: TrainSettings, seed: int) -> TrainSettings:
    return TrainSettings(**{**train.__dict__, "seed": seed})


def plans_for_edits(edits: Sequence[SelfEdit], passages: Mapping[str, Passage], root: str,
                    inner: InnerSettings, train: TrainSettings, seed: int) -> list[TrainPlan]:
    """One plan per (edit, repeat); with ``reward_baseline: passage`` also one per (passage, repeat)
    that trains on the passage alone, the adapter each of its edits is measured against."""
    plans = []
    for edit in edits:
        texts = training_texts(passages[edit.input_id], edit.completion, inner.split, inner.include_passage)
        # An edit contributing nothing of its own is invalid: reward 0 with its reason.
        valid = texts.n_from_edit > 0
        slot = slot_of(edit.id)
        for repeat in range(inner.trained_repeats):
            plans.append(TrainPlan(
                edit_id=edit.id, repeat=repeat, out_dir=adapter_dir(str(root), slot, repeat),
                examples=[TrainExample(t) for t in texts.texts] if valid else [],
                settings=_settings_for(train, derived_seed(seed, edit.id, repeat)),
                valid=valid, reason=texts.reason, info={"input_id": edit.input_id, "n_sequences": len(texts.texts)},
            ))
    if inner.reward_baseline == "passage":
        positions = {edit.input_id: parse_slot(slot_of(edit.id))[0] for edit in edits}
        for input_id, position in positions.items():
            texts = passage_only_texts(passages[input_id])
            baseline_id = baseline_edit_id(input_id)
            for repeat in range(inner.trained_repeats):
                plans.append(TrainPlan(
                    edit_id=baseline_id, repeat=repeat, out_dir=adapter_dir(str(root), baseline_slot(position), repeat),
                    examples=[TrainExample(t) for t in texts.texts],
                    settings=_settings_for(train, derived_seed(seed, baseline_id, repeat)),
                    valid=True, reason=None, info={"input_id": input_id, "n_sequences": len(texts.texts)},
                ))
    return plans
