"""Texts the model reads: the self-edit prompt, and the test-time training/answering format.

Both stay compact because the tiny model has about 1024 positions. Grids use the
digit-per-cell rendering of ``grids.grid_to_text``.
"""

from __future__ import annotations

from typing import Sequence

from .grids import Grid, grid_to_text
from .tasks import ArcTask, Example

SELF_EDIT_INSTRUCTIONS = """\
Choose how to fine-tune a model on the examples above so it learns their rule.
Data tools (true or false each):
- use_basic_augmentations: rotations, flips, mirrored copies
- use_size_augmentations: larger cells, stretched rows or columns, shifts
- use_chain_augmentations: a rotation or flip followed by larger cells
- use_repeat_augmentations: tiled grids and extra shuffled, recoloured copies
Training: strategy "train_using_all_tokens" or "train_using_output_tokens",
a learning_rate (float) and num_train_epochs (integer).
Reply with one JSON object only:
{"data_generation": {"use_basic_augmentations": ..., "use_size_augmentations": ..., \
"use_chain_augmentations": ..., "use_repeat_augmentations": ...}, \
"training": {"strategy": ..., "learning_rate": ..., "num_train_epochs": ...}}
"""


def _block(example: "Example") -> str:
    text = f"input:\n{grid_to_text(example.input)}\noutput:\n"
    if example.output is not None:
        text += grid_to_text(example.output) + "\n"
    return text


def self_edit_prompt(task: "ArcTask") -> str:
    """The task's demonstrations, then what the self-edit may choose and its format."""
    demos = "\n".join(_block(e) for e in task.train)
    return f"{demos}\n---\n{SELF_EDIT_INSTRUCTIONS}"


def ttt_prompt(train_examples: Sequence["Example"], query_input: Grid) -> str:
    """Demonstrations as input/output blocks, then the query input awaiting its output."""
    blocks = [_block(e) for e in train_examples]
    blocks.append(f"input:\n{grid_to_text(query_input)}\noutput:\n")
    return "\n".join(blocks)


def ttt_completion(output_grid: Grid) -> str:
    """The answer as the model should write it; the newline marks its end."""
    return grid_to_text(output_grid) + "\n"
