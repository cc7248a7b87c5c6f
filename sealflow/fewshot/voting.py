"""Answering under several views of a task and voting on the answers.

A model asked the same question rotated or mirrored often errs differently each
time; mapping every answer back to the original frame and taking the most common
one is more reliable than any single view.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

from sealflow.fewshot.augment import GEOMETRIC, apply_to_task
from sealflow.fewshot.grids import MAX_SIDE, Grid
from sealflow.fewshot.tasks import ArcTask

Inverse = Callable[[Grid], Grid]

DEFAULT_VIEWS = ("identity", "rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose", "anti_transpose")


def augmented_views(task: ArcTask, kinds: Sequence[str] = DEFAULT_VIEWS) -> list[tuple[ArcTask, Inverse]]:
    """(the task seen under a symmetry, the map from an answer back to the original frame)."""
    unknown = [k for k in kinds if k not in GEOMETRIC]
    if unknown:
        raise ValueError(f"unknown views {unknown}; choose from {sorted(GEOMETRIC)}")
    views = []
    for kind in kinds:
        transform = GEOMETRIC[kind]
        view = apply_to_task(task, transform)
        if view.max_side() <= MAX_SIDE:
            views.append((view, transform.inverse))
    return views


def vote(predictions: Sequence[tuple[Grid | None, Inverse]]) -> tuple[Grid | None, int]:
    """The most common answer in the original frame and its count; ties go to the earliest.

    Missing answers, and answers whose inverse does not apply, are not counted.
    """
    counts: dict[str, int] = {}
    grids: dict[str, Grid] = {}
    for grid, inverse in predictions:
        if grid is None:
            continue
        try:
            original = inverse(grid)
        except (ValueError, IndexError, TypeError):
            continue
        key = json.dumps(original)
        if key not in counts:  # dicts keep insertion order: first seen wins ties below
            counts[key] = 0
            grids[key] = original
        counts[key] += 1
    if not counts:
        return None, 0
    best = max(counts, key=lambda k: counts[k])  # max returns the first of equal maxima
    return grids[best], counts[best]
