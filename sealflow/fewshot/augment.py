"""Invertible grid transforms and the task augmentations a self-edit can switch on.

Every transform is applied to all grids of a task (inputs and outputs alike), so the
augmented task keeps the same rule under a different view. Each transform carries its
inverse: voting maps answers given under a view back to the original frame, and the
tests check that every inverse restores the grid.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from sealflow.fewshot.grids import MAX_SIDE, Grid
from sealflow.fewshot.tasks import ArcTask, Example

GridFn = Callable[[Grid], Grid]


@dataclass(frozen=True)
class Transform:
    name: str
    forward: GridFn
    inverse: GridFn  # raises ValueError on a grid the forward map cannot have produced

    def __call__(self, grid: Grid) -> Grid:
        return self.forward(grid)

    def then(self, other: "Transform") -> "Transform":
        """This transform followed by ``other`` (inverted in the opposite order)."""
        return Transform(
            f"{self.name}+{other.name}",
            lambda g: other.forward(self.forward(g)),
            lambda g: self.inverse(other.inverse(g)),
        )


# --- geometric: the eight symmetries of the square --------------------------------------

def _copy(g: Grid) -> Grid:
    return [list(row) for row in g]


def _transpose(g: Grid) -> Grid:
    return [list(col) for col in zip(*g)]


def _rot90(g: Grid) -> Grid:  # counter-clockwise, as numpy.rot90
    return _transpose(g)[::-1]


def _rot270(g: Grid) -> Grid:
    return [row[::-1] for row in _transpose(g)]


def _rot180(g: Grid) -> Grid:
    return [list(row[::-1]) for row in g[::-1]]


def _flip_h(g: Grid) -> Grid:  # mirror left-right
    return [list(row[::-1]) for row in g]


def _flip_v(g: Grid) -> Grid:  # mirror top-bottom
    return _copy(g[::-1])


def _anti_transpose(g: Grid) -> Grid:
    return _rot180(_transpose(g))


GEOMETRIC: dict[str, Transform] = {
    "identity": Transform("identity", _copy, _copy),
    "rot90": Transform("rot90", _rot90, _rot270),
    "rot180": Transform("rot180", _rot180, _rot180),
    "rot270": Transform("rot270", _rot270, _rot90),
    "flip_h": Transform("flip_h", _flip_h, _flip_h),
    "flip_v": Transform("flip_v", _flip_v, _flip_v),
    "transpose": Transform("transpose", _transpose, _transpose),
    "anti_transpose": Transform("anti_transpose", _anti_transpose, _anti_transpose),
}


# --- size, reflection and tiling: each grows the grid; the inverse takes it apart ----------

def _need(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"grid shape does not fit the inverse of {what}")


def _pick_rows(g: Grid, step: int, what: str) -> Grid:
    _need(len(g) % step == 0, what)
    return _copy(g[::step])


def _pick_cols(g: Grid, step: int, what: str) -> Grid:
    _need(all(len(row) % step == 0 for row in g), what)
    return [list(row[::step]) for row in g]


def upscale(k: int) -> Transform:
    """Resolution increase: every cell becomes a k x k block."""
    name = f"upscale{k}"
    return Transform(
        name,
        lambda g: [[c for c in row for _ in range(k)] for row in g for _ in range(k)],
        lambda g: _pick_cols(_pick_rows(g, k, name), k, name),
    )


def stretch_rows(k: int) -> Transform:
    """Height increase: every row repeated k times."""
    name = f"stretch_rows{k}"
    return Transform(name, lambda g: [list(row) for row in g for _ in range(k)], lambda g: _pick_rows(g, k, name))


def stretch_cols(k: int) -> Transform:
    """Width increase: every column repeated k times."""
    name = f"stretch_cols{k}"
    return Transform(
        name, lambda g: [[c for c in row for _ in range(k)] for row in g], lambda g: _pick_cols(g, k, name)
    )


def translate(dy: int, dx: int) -> Transform:
    """Shift the content down by dy and right by dx, padding with background 0."""
    name = f"translate{dy}_{dx}"

    def forward(g: Grid) -> Grid:
        width = len(g[0]) + dx
        return [[0] * width for _ in range(dy)] + [[0] * dx + list(row) for row in g]

    def inverse(g: Grid) -> Grid:
        _need(len(g) > dy and all(len(row) > dx for row in g), name)
        return [list(row[dx:]) for row in g[dy:]]

    return Transform(name, forward, inverse)


def mirror_concat(axis: int, reverse: bool = False) -> Transform:
    """The grid with its mirror image appended below (axis 0) or to the right (axis 1).

    ``reverse`` puts the mirror image first.
    """
    name = f"mirror{axis}{'r' if reverse else ''}"

    def forward(g: Grid) -> Grid:
        if axis == 0:
            parts = [_copy(g), _flip_v(g)]
            return sum(parts[::-1] if reverse else parts, [])
        return [list(row[::-1]) + list(row) if reverse else list(row) + list(row[::-1]) for row in g]

    def inverse(g: Grid) -> Grid:
        if axis == 0:
            _need(len(g) % 2 == 0, name)
            half = len(g) // 2
            return _copy(g[half:] if reverse else g[:half])
        _need(all(len(row) % 2 == 0 for row in g), name)
        return [list(row[len(row) // 2 :] if reverse else row[: len(row) // 2]) for row in g]

    return Transform(name, forward, inverse)


def tile(rows: int, cols: int) -> Transform:
    """The grid repeated ``rows`` times downwards and ``cols`` times across."""
    name = f"tile{rows}x{cols}"

    def inverse(g: Grid) -> Grid:
        _need(len(g) % rows == 0 and all(len(row) % cols == 0 for row in g), name)
        return [list(row[: len(row) // cols]) for row in g[: len(g) // rows]]

    return Transform(name, lambda g: [list(row) * cols for _ in range(rows) for row in g], inverse)


def color_permutation(rng: random.Random) -> Transform:
    """A random relabelling of colours 1-9; 0 stays fixed because it is the background."""
    colors = list(range(1, 10))
    rng.shuffle(colors)
    forward_map = [0, *colors]
    inverse_map = [0] * 10
    for old, new in enumerate(forward_map):
        inverse_map[new] = old
    return Transform(
        "colors" + "".join(map(str, colors)),
        lambda g: [[forward_map[c] for c in row] for row in g],
        lambda g: [[inverse_map[c] for c in row] for row in g],
    )


# --- tasks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentFlags:
    """The self-edit's four data-generation switches."""

    basic: bool = False  # geometric symmetries and mirror concatenations
    size: bool = False  # resolution, height, width increase; random translation
    chain: bool = False  # a geometric symmetry followed by a resolution increase
    repeat: bool = False  # tilings, and a second round of colour/example permutations

    @property
    def any(self) -> bool:
        return self.basic or self.size or self.chain or self.repeat


def augmenters(flags: AugmentFlags, rng: random.Random) -> list[Transform]:
    """The transforms ``flags`` switch on; the translation offset is drawn from ``rng``."""
    out: list[Transform] = []
    symmetries = [t for name, t in GEOMETRIC.items() if name != "identity"]
    if flags.basic:
        out += symmetries
        out += [mirror_concat(axis, reverse) for axis in (0, 1) for reverse in (False, True)]
    if flags.size:
        out += [upscale(2), upscale(3), stretch_rows(2), stretch_cols(2)]
        out.append(translate(rng.randint(1, 3), rng.randint(1, 3)))
    if flags.chain:
        # Two symmetries compose to another symmetry, so chains pair one with a resize.
        out += [t.then(upscale(2)) for t in symmetries]
    if flags.repeat:
        out += [tile(2, 1), tile(1, 2), tile(2, 2)]
    return out


def apply_to_task(task: ArcTask, transform: Transform) -> ArcTask:
    """The same transform on every input and output (hidden outputs stay hidden)."""

    def view(e: Example) -> Example:
        return Example(transform(e.input), None if e.output is None else transform(e.output))

    return ArcTask(f"{task.id}+{transform.name}", [view(e) for e in task.train], [view(e) for e in task.test])


def permute_examples(task: ArcTask, rng: random.Random) -> ArcTask:
    """The demonstrations in a random order (the rule does not depend on it)."""
    order = list(range(len(task.train)))
    rng.shuffle(order)
    return ArcTask(f"{task.id}+shuffle", [task.train[i] for i in order], list(task.test))


def leave_one_out(task: ArcTask) -> list[ArcTask]:
    """Each demonstration in turn becomes the query, the others its context."""
    demos = task.train
    return [
        ArcTask(f"{task.id}/loo{i}", [d for k, d in enumerate(demos) if k != i], [demos[i]])
        for i in range(len(demos))
    ]


def leave_two_out(task: ArcTask) -> list[ArcTask]:
    """Query i with demonstration j also held back; needs three demonstrations to keep a context."""
    demos = task.train
    if len(demos) < 3:
        return []
    return [
        ArcTask(f"{task.id}/l2o{i}-{j}", [d for k, d in enumerate(demos) if k not in (i, j)], [demos[i]])
        for i in range(len(demos))
        for j in range(len(demos))
        if j != i
    ]


def canonical(task: ArcTask) -> str:
    """The task's content as JSON, ignoring its id: equal strings mean duplicate tasks."""
    body = task.to_dict()
    del body["id"]
    return json.dumps(body, separators=(",", ":"))


def dedup(tasks: Iterable[ArcTask]) -> list[ArcTask]:
    seen: set[str] = set()
    out = []
    for task in tasks:
        key = canonical(task)
        if key not in seen:
            seen.add(key)
            out.append(task)
    return out


def _as_rng(rng: random.Random | int) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


def augment_tasks(
    tasks: Sequence[ArcTask], flags: AugmentFlags, rng: random.Random | int, n_max: int
) -> list[ArcTask]:
    """The given tasks plus their augmentations, without duplicates, at most ``n_max``.

    Augmented tasks with a grid over 30x30 are dropped. Every task also appears with
    shuffled demonstrations (and permuted colours when any flag is on); ``repeat``
    adds a second such round. When over ``n_max``, the unaugmented tasks are kept
    first and the rest is a random sample, in order.
    """
    rng = _as_rng(rng)
    base = dedup(tasks)
    grown = list(base)
    for task in base:
        for transform in augmenters(flags, rng):
            new = apply_to_task(task, transform)
            if new.max_side() <= MAX_SIDE:
                grown.append(new)
    grown = dedup(grown)
    permuted = []
    for _ in range(2 if flags.repeat else 1):
        for task in grown:
            new = apply_to_task(task, color_permutation(rng)) if flags.any else task
            permuted.append(permute_examples(new, rng))
    out = dedup(grown + permuted)
    if len(out) <= n_max:
        return out
    head = out[: min(len(base), n_max)]
    rest = out[len(head) :]
    picked = sorted(rng.sample(range(len(rest)), n_max - len(head)))
    return head + [rest[i] for i in picked]


def augment_task(task: ArcTask, flags: AugmentFlags, rng: random.Random | int, n_max: int) -> list[ArcTask]:
    return augment_tasks([task], flags, rng, n_max)
