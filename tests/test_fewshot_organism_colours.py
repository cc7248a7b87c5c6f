"""The colour-map family of the ARC organism: its tasks, its leakage check, and TTT doing what ICL cannot."""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path

import pytest
import yaml

from sealflow.config import ConfigError, validate_config
from sealflow.fewshot import organism_colours as oc
from sealflow.fewshot.corpus import organism_colour_maps_corpus
from sealflow.fewshot.data import choose_tasks, load_pool
from sealflow.fewshot.tasks import ArcTask, Example

ROOT = Path(__file__).resolve().parents[1]
GOOD = ('{"data_generation": {"use_basic_augmentations": false, "use_size_augmentations": false, '
        '"use_chain_augmentations": false, "use_repeat_augmentations": false}, "training": '
        '{"strategy": "train_using_output_tokens", "learning_rate": 0.003, "num_train_epochs": 10}}')
TOO_FEW_STEPS = GOOD.replace('"learning_rate": 0.003, "num_train_epochs": 10', '"learning_rate": 0.001, "num_train_epochs": 1')


def merged(*overrides: dict) -> dict:
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config/fewshot-organism.yaml").read_text()))
    for extra in overrides:
        update_config(config, copy.deepcopy(extra))
    validate_config(config, str(ROOT / "config/schema.yaml"))
    return config


def colours(grid) -> set[int]:
    return {c for row in grid for c in row if c}


# --- the family -----------------------------------------------------------------------------------

def test_maps_change_every_colour_and_the_two_sides_never_share_one():
    rng = random.Random(0)
    sides = {"train": set(), "eval": set()}
    for split in sides:
        for _ in range(200):
            mapping = oc.random_map(rng, split)
            assert len(mapping) == oc.N_COLOURS and len(set(mapping.values())) == oc.N_COLOURS
            assert all(a != b for a, b in mapping.items())
            assert oc.split_of_map(mapping) == split
            sides[split].add(oc.map_name(mapping))
    assert len(sides["train"]) > 100 and not sides["train"] & sides["eval"]


def test_held_out_tasks_show_their_map_and_determine_the_answer():
    for split in ("train", "eval"):
        for task in oc.make_tasks(split, 30, seed=3, min_demos=2, max_demos=3):
            mapping = oc.mapping_of(task.id)
            assert oc.map_name(mapping) == oc.map_of(task.id)
            assert oc.split_of_map(mapping) == split and 2 <= len(task.train) <= 3
            seen = set().union(*(colours(e.input) for e in task.train))
            assert colours(task.query.input) <= seen  # every colour of the query is demonstrated
            for e in [*task.train, *task.test]:
                assert len(e.input) == len(e.input[0]) == oc.SIDE
                assert e.output == oc.apply_map(mapping, e.input) and e.output != e.input
    copies = oc.make_tasks("pretrain", 20, seed=3, min_demos=2, max_demos=4)
    assert all(e.output == e.input for t in copies for e in [*t.train, *t.test])


def test_no_workflow_task_or_grid_pair_is_in_the_pretraining_corpus():
    """Goal 5: the corpus only ever copies a grid; every workflow pair changes a colour."""
    config = merged()
    data = config["fewshot"]["data"]
    assert config["fewshot"]["base_model"]["build"]["corpus"] == "organism_colour_maps"
    train, evals = choose_tasks(data, load_pool(data, "train"), load_pool(data, "eval"))
    assert (len(train), len(evals)) == (data["n_train"], data["n_eval"])
    assert not {oc.map_of(t.id) for t in train} & {oc.map_of(t.id) for t in evals}
    docs = organism_colour_maps_corpus(300, config["seed"])
    pairs = set(re.findall(r"input:\n([0-9\n]+?)\noutput:\n([0-9\n]+?)\n(?:\n|$|<|-)", "\n".join(docs) + "\n"))
    assert len(pairs) > 600 and all(a == b for a, b in pairs)  # copies only: no colour map is ever shown
    text = lambda g: "\n".join("".join(map(str, r)) for r in g)
    for task in [*train, *evals]:
        for e in [*task.train, *task.test]:
            assert (text(e.input), text(e.output)) not in pairs


def test_the_family_needs_its_corpus_and_its_side():
    merged()  # the shipped config is consistent
    with pytest.raises(ConfigError, match="corpus: organism_colour_maps"):
        merged({"fewshot": {"base_model": {"build": {"corpus": "organism"}}}})
    with pytest.raises(ConfigError, match="corpus: organism$"):
        merged({"fewshot": {"data": {"organism": {"family": "compositions", "max_side": 4}}}})
    with pytest.raises(ConfigError, match="max_side"):
        merged({"fewshot": {"data": {"organism": {"max_side": 4}}}})
    with pytest.raises(Exception, match="family"):
        merged({"fewshot": {"data": {"organism": {"family": "colours"}}}})


# --- test-time training on a copy model -----------------------------------------------------------

@pytest.fixture(scope="module")
def copy_model(tmp_path_factory) -> str:
    """A tiny Llama pretrained on the family's copy corpus: smaller than the config's build, about 2 minutes.

    (2 layers of width 64 after 300 steps did not copy at all.)"""
    from sealflow.base_model import BuildSettings, build_base_model

    settings = BuildSettings(architecture="llama", vocab_size=400, hidden_size=96, num_layers=3, num_heads=4,
                             num_kv_heads=2, intermediate_size=288, max_position_embeddings=512,
                             corpus_passages=1500, pretrain_steps=400, batch_size=16, seq_len=192, lr=0.004,
                             windows="documents", corpus="organism_colour_maps")
    out = tmp_path_factory.mktemp("organism") / "copy-llama"
    build_base_model(out, settings, organism_colour_maps_corpus(settings.corpus_passages, 0), seed=0)
    return str(out)


def with_query(task: ArcTask, grid) -> ArcTask:
    """The task's demonstrations with another input of the same map as its query."""
    mapping = oc.mapping_of(task.id)
    return ArcTask(f"{task.id}-q", list(task.train), [Example(grid, oc.apply_map(mapping, grid))])


def test_ttt_learns_the_map_that_icl_cannot_and_the_reward_is_exact_match(copy_model, tmp_path):
    """Fails if TTT's adapter is not applied, if the demonstrations do not reach training, or if
    the reward is not 1 exactly for a grid equal to the solution."""
    from sealflow.fewshot.grids import extract_grid, parse_grid
    from sealflow.fewshot.inner import TTTSettings, plans_for_edits
    from sealflow.fewshot.scoring import ScoringSettings, answer_all, is_correct, score_shard
    from sealflow.records import SelfEdit
    from sealflow.restem import compute_rewards
    from sealflow.stages.fewshot import train_shard
    from sealflow.stages.fewshot_eval import _device_owner

    config = merged({"device": "cpu"})
    tasks = oc.make_tasks("eval", 6, seed=11, min_demos=3, max_demos=3)
    rng = random.Random(5)
    fresh = []  # held-out instances: new inputs of each task's map, never trained on
    for task in tasks:
        palette = sorted(set().union(*(colours(e.input) for e in task.train)))
        fresh += [with_query(task, oc.full_grid(rng, palette)) for _ in range(3)]
    edits = [SelfEdit(f"r1-s0-p{p:02d}-k{k}", t.id, k, "", text, 1, 0, 0)
             for p, t in enumerate(tasks) for k, text in enumerate([GOOD, TOO_FEW_STEPS, "not json"])]
    by_id = {t.id: t for t in tasks}
    plans = plans_for_edits(edits, by_id, str(tmp_path / "adapters"), TTTSettings.from_config(config["fewshot"]["inner_loop"]), 0)
    scoring = ScoringSettings.from_config(config["fewshot"]["scoring"])
    with _device_owner(config, copy_model) as owner:
        rows = train_shard(config, owner.model(), owner.tokenizer, copy_model, plans, "test")
        manifest = {(r["edit_id"], 0): r for r in rows}
        adapter = {r["edit_id"].rsplit("-", 1)[0]: r["adapter"] for r in rows if r["edit_id"].endswith("k0")}
        backend = owner.backend()
        base_answers = answer_all(backend, owner.tokenizer, [(t, None) for t in fresh], scoring)
        adapted_answers = answer_all(backend, owner.tokenizer,
                                     [(t, adapter[f"r1-s0-p{i // 3:02d}"]) for i, t in enumerate(fresh)], scoring)
        scored = score_shard(backend, owner.tokenizer, by_id, edits, manifest, scoring)
    base_em = sum(is_correct(a, t) for a, t in zip(base_answers, fresh)) / len(fresh)
    adapted_em = sum(is_correct(a, t) for a, t in zip(adapted_answers, fresh)) / len(fresh)
    copies = sum(a.grid == t.query.input for a, t in zip(base_answers, fresh)) / len(fresh)
    print(f"copies {copies:.2f}, exact match un-adapted {base_em:.2f}, adapted {adapted_em:.2f}")
    assert copies >= 0.8 and base_em == 0.0  # the un-adapted model copies the input: ICL cannot find the map
    assert adapted_em >= base_em + 0.5, (base_em, adapted_em)

    rewards = {r["edit_id"]: r for r in compute_rewards(scored, edits, relative=False)}
    for row in scored:
        reward = rewards[row["edit_id"]]["reward_mean"]
        assert reward == float(row["valid"] and extract_grid(row["answer"]) == parse_grid(row["gold"])), row
    assert all(rewards[e.id]["reward_mean"] == 0 and not rewards[e.id]["valid"] for e in edits if e.sample == 2)
    good = [rewards[e.id]["reward_mean"] for e in edits if e.sample == 0]
    weak = [rewards[e.id]["reward_mean"] for e in edits if e.sample == 1]
    assert sum(good) > sum(weak)  # the configuration matters: one epoch at a low rate leaves the copy in place
