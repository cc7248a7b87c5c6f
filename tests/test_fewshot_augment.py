import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealflow.fewshot.augment import (
    GEOMETRIC,
    AugmentFlags,
    apply_to_task,
    augment_task,
    augmenters,
    canonical,
    color_permutation,
    dedup,
    leave_one_out,
    leave_two_out,
    mirror_concat,
    permute_examples,
    tile,
    translate,
    upscale,
)
from sealflow.fewshot.grids import grid_shape
from sealflow.fewshot.tasks import ArcTask, Example


def grids(max_side: int = 30):
    return st.integers(1, max_side).flatmap(
        lambda h: st.integers(1, max_side).flatmap(
            lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)
        )
    )

ALL = AugmentFlags(basic=True, size=True, chain=True, repeat=True)


def every_transform(seed: int = 0):
    return [*GEOMETRIC.values(), *augmenters(ALL, random.Random(seed)), color_permutation(random.Random(seed))]


def make_task(n_train: int = 3, side: int = 3) -> ArcTask:
    rng = random.Random(n_train * 100 + side)

    def grid():
        return [[rng.randrange(10) for _ in range(side)] for _ in range(side)]

    return ArcTask("t", [Example(grid(), grid()) for _ in range(n_train)], [Example(grid(), None)])


@settings(max_examples=40, deadline=None)
@given(grids(), st.integers(0, 10_000))
def test_every_inverse_restores_the_grid(grid, seed):
    for transform in every_transform(seed):
        assert transform.inverse(transform(grid)) == grid, transform.name


@settings(max_examples=40, deadline=None)
@given(grids(), st.integers(0, 10_000))
def test_colour_permutation_keeps_background(grid, seed):
    out = color_permutation(random.Random(seed))(grid)
    for row_in, row_out in zip(grid, out):
        for a, b in zip(row_in, row_out):
            assert (a == 0) == (b == 0)
    assert sorted(color_permutation(random.Random(seed))([list(range(10))])[0]) == list(range(10))


def test_geometric_transforms_are_the_eight_distinct_symmetries():
    grid = [[1, 2, 3], [4, 5, 6]]
    outs = {name: t(grid) for name, t in GEOMETRIC.items()}
    assert outs["rot90"] == [[3, 6], [2, 5], [1, 4]]
    assert outs["flip_h"] == [[3, 2, 1], [6, 5, 4]]
    assert outs["transpose"] == [[1, 4], [2, 5], [3, 6]]
    assert len({canonical(ArcTask("x", [Example(g, g)], [])) for g in outs.values()}) == 8


def test_size_transforms_shapes():
    grid = [[1, 2], [3, 4]]
    assert upscale(3)(grid)[:3] == [[1, 1, 1, 2, 2, 2]] * 3
    assert grid_shape(translate(2, 1)(grid)) == (4, 3)
    assert mirror_concat(0)(grid) == [[1, 2], [3, 4], [3, 4], [1, 2]]
    assert mirror_concat(1, reverse=True)(grid) == [[2, 1, 1, 2], [4, 3, 3, 4]]
    assert tile(2, 2)(grid) == [[1, 2, 1, 2], [3, 4, 3, 4], [1, 2, 1, 2], [3, 4, 3, 4]]
    with pytest.raises(ValueError):
        upscale(2).inverse([[1, 2, 3]])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 16), st.integers(0, 1000), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_augmented_tasks_fit_and_respect_n_max(n_train, side, seed, basic, size, chain, repeat):
    task = make_task(n_train, side)
    flags = AugmentFlags(basic, size, chain, repeat)
    out = augment_task(task, flags, random.Random(seed), n_max=40)
    assert 1 <= len(out) <= 40
    assert canonical(out[0]) == canonical(task)  # the unaugmented task always survives
    assert all(t.max_side() <= 30 for t in out)
    assert len({canonical(t) for t in out}) == len(out)
    for t in out:
        for e in t.train + t.test:
            assert len({len(r) for r in e.input}) == 1


def test_transforms_are_applied_consistently():
    task = make_task(2, 4)
    out = apply_to_task(task, GEOMETRIC["rot90"])
    for before, after in zip(task.train, out.train):
        assert after.input == GEOMETRIC["rot90"](before.input)
        assert after.output == GEOMETRIC["rot90"](before.output)
    assert out.test[0].output is None


def test_oversized_augmentations_are_dropped():
    task = make_task(2, 12)  # upscale3 (36) and tile2x2 (24 ok) but 36 must go
    out = augment_task(task, ALL, 0, n_max=10_000)
    assert not any("upscale3" in t.id for t in out)
    assert any("tile2x2" in t.id for t in out)


def test_flags_choose_the_transform_families():
    rng = random.Random(0)
    assert augmenters(AugmentFlags(), rng) == []
    names = lambda flags: {t.name for t in augmenters(flags, rng)}  # noqa: E731
    assert "rot90" in names(AugmentFlags(basic=True)) and "upscale2" not in names(AugmentFlags(basic=True))
    assert {"upscale2", "stretch_rows2", "stretch_cols2"} <= names(AugmentFlags(size=True))
    assert "rot90+upscale2" in names(AugmentFlags(chain=True))
    assert {"tile2x1", "tile1x2", "tile2x2"} == names(AugmentFlags(repeat=True))


def test_no_flags_gives_only_reordered_copies():
    task = make_task(3, 3)
    out = augment_task(task, AugmentFlags(), 0, n_max=100)
    assert 1 <= len(out) <= 2
    for t in out:
        assert sorted(map(str, t.train)) == sorted(map(str, task.train))


def test_augmentation_is_deterministic_given_the_seed():
    task = make_task(3, 5)
    a = [canonical(t) for t in augment_task(task, ALL, 7, n_max=30)]
    b = [canonical(t) for t in augment_task(task, ALL, 7, n_max=30)]
    assert a == b


def test_leave_out_counts():
    for n in range(1, 6):
        task = make_task(n, 2)
        loo = leave_one_out(task)
        assert len(loo) == n
        assert all(len(t.train) == n - 1 and len(t.test) == 1 for t in loo)
        l2o = leave_two_out(task)
        assert len(l2o) == (n * (n - 1) if n >= 3 else 0)
        assert all(len(t.train) == n - 2 for t in l2o)
    loo = leave_one_out(make_task(3, 2))
    assert [t.test[0] for t in loo] == make_task(3, 2).train


def test_dedup_and_permute_examples():
    task = make_task(4, 3)
    shuffled = permute_examples(task, random.Random(1))
    assert sorted(map(str, shuffled.train)) == sorted(map(str, task.train))
    renamed = ArcTask("other-id", task.train, task.test)
    assert dedup([task, renamed, task]) == [task]
