"""The colour-map family of the ARC organism: a rule that in-context learning cannot find.

The composition family (``organism.py``) asks a tiny model to infer a held-out pair of
primitives from two or three demonstrations; measured, it cannot even apply the
pretrained rules in context, so every ARC number stays 0. This family keeps one thing
the tiny model does learn, copying a grid, and makes the held-out part something only
test-time training can supply:

* pretraining: copy tasks (the output is the input) on 3x3 grids. Grids of one size put
  every output cell at a fixed distance from its input cell, which a 4-layer model
  learns in a few hundred steps; grids of mixed sizes it did not learn to copy at all;
* training rounds and evaluation: the output is the input with its colours relabelled
  by a task's own map (three colours, none kept). The demonstrations show the map; a
  model that has only ever copied writes the input back, so in-context answers fail,
  and a LoRA trained on the demonstrations can learn the relabelling.

How test-time training is configured decides whether it works: too few steps leave
the copy in place, and the augmentations that recolour a task (every augmentation
here adds colour-permuted copies) teach maps that contradict the task's own.
Maps go to the training-round or the evaluation side by a hash of their name, so the
two never share a map, and no pretraining pair ever changes a colour.
"""

from __future__ import annotations

import hashlib
import random

from .grids import Grid
from .tasks import ArcTask, Example

SIDE = 3  # every grid of the family is SIDE x SIDE (see the module docstring)
N_COLOURS = 3  # colours per task, besides the background 0
FAMILY = "colour_maps"
SPLITS = ("pretrain", "train", "eval")


def full_grid(rng: random.Random, palette: list[int]) -> Grid:
    density = rng.uniform(0.5, 0.9)
    return [[rng.choice(palette) if rng.random() < density else 0 for _ in range(SIDE)] for _ in range(SIDE)]


def map_name(mapping: dict[int, int]) -> str:
    """``map152743``: 1 becomes 5, 2 becomes 7, 4 becomes 3."""
    return "map" + "".join(f"{a}{b}" for a, b in sorted(mapping.items()))


def split_of_map(mapping: dict[int, int]) -> str:
    digest = hashlib.sha256(f"colour-map:{map_name(mapping)}".encode()).digest()
    return "train" if digest[0] % 2 == 0 else "eval"


def apply_map(mapping: dict[int, int], grid: Grid) -> Grid:
    return [[mapping.get(c, c) for c in row] for row in grid]


def random_map(rng: random.Random, split: str) -> dict[int, int]:
    """Three colours to three distinct colours, none kept, on the side ``split`` of the hash."""
    while True:
        palette = rng.sample(range(1, 10), N_COLOURS)
        targets = rng.sample(range(1, 10), N_COLOURS)
        mapping = dict(zip(palette, targets))
        if all(a != b for a, b in mapping.items()) and split_of_map(mapping) == split:
            return mapping


def _colours(grid: Grid) -> set[int]:
    return {c for row in grid for c in row if c}


def copy_task(rng: random.Random, task_id: str, n_demos: int) -> ArcTask:
    """A pretraining task: the output is the input."""
    palette = rng.sample(range(1, 10), N_COLOURS)
    examples = [Example(g, [list(r) for r in g]) for g in (full_grid(rng, palette) for _ in range(n_demos + 1))]
    return ArcTask(task_id, examples[:-1], examples[-1:])


def map_task(rng: random.Random, task_id: str, n_demos: int, split: str, tries: int = 500) -> ArcTask:
    """A held-out task: distinct inputs, each showing the map; the query's colours all occur in the demonstrations."""
    mapping = random_map(rng, split)
    palette = sorted(mapping)
    for _ in range(tries):
        inputs = [full_grid(rng, palette) for _ in range(n_demos + 1)]
        demos, query = inputs[:-1], inputs[-1]
        if len({str(g) for g in inputs}) < len(inputs) or not all(_colours(g) for g in inputs):
            continue
        if not _colours(query) <= set().union(*map(_colours, demos)):
            continue  # the answer would not follow from the demonstrations
        examples = [Example(g, apply_map(mapping, g)) for g in inputs]
        return ArcTask(f"{task_id}-{map_name(mapping)}", examples[:-1], examples[-1:])
    raise ValueError(f"no determined task of {map_name(mapping)} in {tries} tries")


def make_tasks(split: str, n: int, seed: int, min_demos: int, max_demos: int) -> list[ArcTask]:
    """``n`` tasks of ``split``: copies for pretraining, colour maps of that side of the hash otherwise."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    rng = random.Random(f"organism-{FAMILY}:{split}:{seed}")
    tasks = []
    for i in range(n):
        n_demos = rng.randint(min_demos, max_demos)
        task_id = f"org-{split}-{i:03d}"
        tasks.append(copy_task(rng, f"{task_id}-copy", n_demos) if split == "pretrain"
                     else map_task(rng, task_id, n_demos, split))
    return tasks


def map_of(task_id: str) -> str:
    """The map name an organism task id ends with (``org-eval-003-map152743``)."""
    return task_id.split("-", 3)[3]


def mapping_of(task_id: str) -> dict[int, int]:
    """The colour map a held-out task id names (the inverse of ``map_name``)."""
    digits = map_of(task_id)[len("map"):]
    return {int(digits[i]): int(digits[i + 1]) for i in range(0, len(digits), 2)}
