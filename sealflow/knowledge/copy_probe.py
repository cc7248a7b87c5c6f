"""Does a knowledge base model copy its passage into a self-edit? Measured when the model is built.

The policy samples self-edits, as round 1 will, for a few fresh passages (a world seed no
workflow data or corpus uses; nothing is trained on them). A self-edit helps the inner loop
only if its lines restate the passage's own facts, so the statistic that matters is the share
of lines that contain one of the passage's answer values: over eleven seeds of the embedded
default (1600 pretraining steps) it predicted the held-out gain of base self-edits over the
passage, Pearson r 0.91 (README, "The copy probe"); faithfulness did not (r 0.38). Lines that
start with the passage's subject but invent its values are the failure it exposes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from ..records import Passage
from .faithfulness import faithfulness, mean

# Far from any data seed a config is likely to use, and from the corpus's offset.
PROBE_SEED = 424_242


@dataclass(frozen=True)
class CopyProbe:
    passages: int
    lines: int
    subject_first: float  # share of lines that start with the passage's title
    value_copied: float  # share of lines that contain one of the passage's answers
    faithfulness: float  # mean over self-edits, as the training rounds report it

    def to_dict(self) -> dict:
        return asdict(self)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def copy_statistics(passages: Sequence[Passage], self_edits: Sequence[Sequence[str]]) -> CopyProbe:
    """The probe's statistics for ``self_edits[i]``, the self-edits sampled for ``passages[i]``."""
    if len(passages) != len(self_edits):
        raise ValueError(f"{len(passages)} passages but {len(self_edits)} lists of self-edits")
    lines = subject_first = copied = 0
    faithful: list[float] = []
    for passage, texts in zip(passages, self_edits):
        answers = [q.answer.lower() for q in passage.questions if q.answer.strip()]
        for text in texts:
            faithful.append(faithfulness(text, passage.context))
            for line in _lines(text):
                lines += 1
                subject_first += line.startswith(passage.title)
                copied += any(answer in line.lower() for answer in answers)
    share = lambda count: round(count / lines, 4) if lines else 0.0
    return CopyProbe(passages=len(passages), lines=lines, subject_first=share(subject_first),
                     value_copied=share(copied), faithfulness=round(mean(faithful), 4) if faithful else 0.0)


def probe_copying(backend, tokenizer, n_passages: int, sampling=None, seed: int = PROBE_SEED) -> CopyProbe:
    """Sample self-edits for each of ``n_passages`` fresh passages and measure them.

    ``sampling`` defaults to the embedded default's round-1 sampling (the settings the
    correlation above was measured with), fixed so that the probe is a property of the build
    alone: changing ``knowledge.self_edits`` neither reruns the build nor changes its record.
    """
    from ..worldgen import generate_entries
    from .sampling import SamplingSettings, sample_whole_self_edits

    if sampling is None:
        sampling = SamplingSettings(prompt="implications", k=4, temperature=0.5, top_p=0.95, max_new_tokens=96,
                                    start_with_title=True)

    passages = [entry.passage for entry in generate_entries(n_passages, seed)]
    _, _, self_edits = sample_whole_self_edits(backend, tokenizer, passages, range(len(passages)), sampling)
    return copy_statistics(passages, self_edits)
