"""An ARC-like model organism: small-grid tasks whose rule composes one or two primitives.

The tiny CPU model cannot solve real ARC tasks, so SEAL's ARC loop has no signal on CPU.
This family keeps ARC's shape (demonstrations, one query, an exact-match answer) but on
grids of a few cells, with rules a tiny model can learn: flips, rotations, colour maps,
crops, tilings and object moves, and compositions of two of them.

The split that makes it a test of adaptation is over *compositions*: every primitive is
seen in pretraining (alone and in most pairs), but a fixed share of the pairs is held
out, and the workflow's training-round and evaluation tasks use only held-out pairs
(the two from disjoint halves). The split depends on the compositions' names only
(a hash), never on a seed or a config value, so the pretraining corpus and the task
preparation agree without reading each other's settings.

Held-out examples are also *discriminating*: no pretraining composition maps their
input to their output, so no held-out (input, output) pair can occur in the corpus,
and a held-out task is never solved by applying a rule seen in pretraining.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

from .augment import GEOMETRIC, tile, upscale
from .grids import Grid
from .tasks import ArcTask, Example

GridFn = Callable[[Grid], Grid]

# Pairs go to the held-out side when their name's hash falls in this share of buckets.
HOLDOUT_BUCKETS, BUCKETS = 1, 5  # 20% of the pairs
SPLITS = ("pretrain", "train", "eval")  # train: the workflow's training rounds


@dataclass(frozen=True)
class Primitive:
    name: str
    apply: GridFn
    grows: bool  # doubles a side: inputs of a composition with it are kept small


@dataclass(frozen=True)
class Composition:
    """Primitives applied left to right; the name joins theirs with '+'."""

    parts: tuple[Primitive, ...]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts)

    @property
    def grows(self) -> bool:
        return any(p.grows for p in self.parts)

    def __call__(self, grid: Grid) -> Grid:
        for part in self.parts:
            grid = part.apply(grid)
        return grid


@dataclass(frozen=True)
class OrganismSettings:
    """Task shape; the corpus and the workflow's tasks may use different values."""

    max_side: int = 4  # input side at most (3 when the rule grows the grid)
    min_demos: int = 3
    max_demos: int = 3

    @classmethod
    def from_config(cls, cfg: dict) -> "OrganismSettings":
        return cls(int(cfg["max_side"]), int(cfg["min_demos"]), int(cfg["max_demos"]))


# --- primitives: pure functions on grids ---------------------------------------------------

def color_swap(a: int, b: int) -> GridFn:
    """Colours a and b trade places."""
    return lambda g: [[b if c == a else a if c == b else c for c in row] for row in g]


def _shift_colors(g: Grid) -> Grid:
    """Every non-background colour c becomes c + 1 (9 wraps to 1)."""
    return [[c % 9 + 1 if c else 0 for c in row] for row in g]


def recolor(color: int) -> GridFn:
    """Every non-background cell becomes ``color``."""
    return lambda g: [[color if c else 0 for c in row] for row in g]


def _gravity_down(g: Grid) -> Grid:
    """Non-background cells fall to the bottom of their column, keeping their order."""
    h = len(g)
    cols = []
    for col in zip(*g):
        cells = [c for c in col if c]
        cols.append([0] * (h - len(cells)) + cells)
    return [list(row) for row in zip(*cols)]


def _roll_right(g: Grid) -> Grid:
    """Columns shift right by one; the last wraps to the front (an object move that keeps the size)."""
    return [[row[-1], *row[:-1]] for row in g]


def _roll_down(g: Grid) -> Grid:
    return [list(g[-1]), *[list(row) for row in g[:-1]]]


def _crop(g: Grid) -> Grid:
    """The bounding box of the non-background cells (an all-background grid stays as it is)."""
    rows = [i for i, row in enumerate(g) if any(row)]
    cols = [j for j in range(len(g[0])) if any(row[j] for row in g)]
    if not rows:
        return [list(row) for row in g]
    return [list(g[i][cols[0] : cols[-1] + 1]) for i in range(rows[0], rows[-1] + 1)]


def _primitives() -> tuple[Primitive, ...]:
    geometric = [Primitive(n, GEOMETRIC[n].forward, False)
                 for n in ("rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose")]
    return (
        *geometric,
        Primitive("swap12", color_swap(1, 2), False),
        Primitive("shift_colors", _shift_colors, False),
        Primitive("recolor5", recolor(5), False),
        Primitive("gravity", _gravity_down, False),
        Primitive("roll_right", _roll_right, False),
        Primitive("roll_down", _roll_down, False),
        Primitive("crop", _crop, False),
        Primitive("tile_h", tile(1, 2).forward, True),
        Primitive("tile_v", tile(2, 1).forward, True),
        Primitive("upscale2", upscale(2).forward, True),
    )


PRIMITIVES: tuple[Primitive, ...] = _primitives()
PRIMITIVE_BY_NAME = {p.name: p for p in PRIMITIVES}


# --- compositions and their split ------------------------------------------------------------

def _probe_grids() -> list[Grid]:
    """Fixed grids on which compositions are compared: equal outputs on all = the same rule."""
    rng = random.Random(20250610)
    grids = [random_grid(rng, 4, [1, 2, 3, 7]) for _ in range(24)]
    return grids + [[[1, 2, 0], [0, 3, 0]], [[0, 0, 0], [0, 1, 2], [0, 0, 9]]]


def _signature(fn: GridFn, probes: Sequence[Grid]) -> tuple:
    return tuple(tuple(map(tuple, fn(g))) for g in probes)


@lru_cache(maxsize=1)
def compositions() -> tuple[Composition, ...]:
    """Every single primitive, then every ordered pair with a behaviour of its own.

    A pair is dropped when it behaves like the identity, a single primitive or an earlier
    pair on the probe grids (rot90+rot90 is rot180), or when both parts grow the grid
    (outputs would exceed the small-grid budget).
    """
    probes = _probe_grids()
    seen = {_signature(lambda g: [list(r) for r in g], probes)}
    out: list[Composition] = []
    for p in PRIMITIVES:
        sig = _signature(p.apply, probes)
        if sig in seen:  # cannot happen with this catalogue; keeps the invariant explicit
            continue
        seen.add(sig)
        out.append(Composition((p,)))
    for a in PRIMITIVES:
        for b in PRIMITIVES:
            if a is b or (a.grows and b.grows):
                continue
            comp = Composition((a, b))
            sig = _signature(comp, probes)
            if sig not in seen:
                seen.add(sig)
                out.append(comp)
    return tuple(out)


def _bucket(name: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "big")


def split_of(comp: Composition) -> str:
    """pretrain | train | eval, from the name alone; single primitives are always pretrained."""
    if len(comp.parts) == 1 or _bucket(comp.name, "holdout") % BUCKETS >= HOLDOUT_BUCKETS:
        return "pretrain"
    return "train" if _bucket(comp.name, "half") % 2 == 0 else "eval"


def compositions_of(split: str) -> list[Composition]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return [c for c in compositions() if split_of(c) == split]


# --- grids and tasks ------------------------------------------------------------------------

def random_grid(rng: random.Random, max_side: int, palette: Sequence[int]) -> Grid:
    """A small grid with its content in a random sub-rectangle (so crops and moves change it)."""
    h, w = rng.randint(2, max_side), rng.randint(2, max_side)
    top, left = rng.randint(0, h - 1), rng.randint(0, w - 1)
    bottom, right = rng.randint(top, h - 1), rng.randint(left, w - 1)
    density = rng.uniform(0.4, 0.9)
    grid = [[0] * w for _ in range(h)]
    for i in range(top, bottom + 1):
        for j in range(left, right + 1):
            if rng.random() < density:
                grid[i][j] = rng.choice(palette)
    if not any(any(row) for row in grid):
        grid[top][left] = palette[0]
    return grid


def _key(grid: Grid) -> tuple:
    return tuple(map(tuple, grid))


def _example(comp: Composition, rng: random.Random, settings: OrganismSettings,
             palette: Sequence[int], avoid: Sequence[Composition]) -> Example | None:
    """One input and its output, or None when the input does not show the rule.

    The output must differ from the input, and (for held-out rules, ``avoid`` = the
    pretraining compositions) no composition in ``avoid`` may give the same output.
    """
    side = min(settings.max_side, 3) if comp.grows else settings.max_side
    grid = random_grid(rng, side, palette)
    out = comp(grid)
    if out == grid or any(other(grid) == out for other in avoid):
        return None
    return Example(grid, out)


def make_task(comp: Composition, rng: random.Random, task_id: str, settings: OrganismSettings,
              avoid: Sequence[Composition] = (), determined: bool = True, tries: int = 200) -> ArcTask:
    """Demonstrations and one query of ``comp``, all inputs distinct.

    With ``determined`` the query's answer follows from the demonstrations: every
    composition that fits them gives it (else the task is redrawn). The check costs a
    pass over all compositions, so the (many) pretraining tasks skip it.
    """
    n_demos = rng.randint(settings.min_demos, settings.max_demos)
    everything = compositions()
    for _ in range(tries):
        palette = rng.sample(range(1, 10), rng.randint(2, 3))
        if comp.name.startswith("swap12") or "+swap12" in comp.name:
            palette = sorted(set(palette[:1]) | {1, 2})  # the swapped colours must occur
        examples: list[Example] = []
        inputs: set[tuple] = set()
        for _ in range(tries):
            example = _example(comp, rng, settings, palette, avoid)
            if example is not None and _key(example.input) not in inputs:
                inputs.add(_key(example.input))
                examples.append(example)
                if len(examples) == n_demos + 1:
                    break
        if len(examples) < n_demos + 1:
            continue
        demos, query = examples[:-1], examples[-1]
        if not determined:
            return ArcTask(task_id, demos, [query])
        fitting = [c for c in everything if all(c(e.input) == e.output for e in demos)]
        if all(c(query.input) == query.output for c in fitting):
            return ArcTask(task_id, demos, [query])
    raise ValueError(f"no determined task of {comp.name} in {tries} tries (settings {settings})")


def composition_of(task_id: str) -> str:
    """The composition name an organism task id ends with (``org-eval-003-flip_h+swap12``)."""
    return task_id.split("-", 3)[3]


def make_tasks(split: str, n: int, seed: int, settings: OrganismSettings) -> list[ArcTask]:
    """``n`` tasks of the split's compositions, cycling through them in a seeded order.

    Held-out splits avoid the pretraining compositions (see ``_example``) and have
    determined answers; pretraining tasks are drawn without those checks.
    """
    comps = compositions_of(split)
    if not comps:
        raise ValueError(f"the organism has no {split} compositions")
    rng = random.Random(f"organism:{split}:{seed}")  # a string seed: independent of other splits' streams
    order = list(comps)
    rng.shuffle(order)
    held_out = split != "pretrain"
    avoid = compositions_of("pretrain") if held_out else []
    tasks = []
    for i in range(n):
        comp = order[i % len(order)]
        tasks.append(make_task(comp, rng, f"org-{split}-{i:03d}-{comp.name}", settings, avoid, determined=held_out))
    return tasks
