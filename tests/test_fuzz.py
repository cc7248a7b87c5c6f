"""Untrusted input, fuzzed: any self-edit text or bytes, and any config value, gives a valid
row or a clear error, never a traceback from deep inside a stage.

Example counts are kept small for ``make test``; ``HYPOTHESIS_PROFILE=thorough`` runs more.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealflow.atomic import read_jsonl
from sealflow.config import ConfigError, validate_config
from sealflow.fewshot.tasks import ArcTask, Example
from sealflow.fewshot.toolconfig import parse_self_edit
from sealflow.knowledge.inner import InnerSettings, plans_for_edits
from sealflow.knowledge.inner import training_texts
from sealflow.records import Passage, Question, SelfEdit, read_edits, undecodable
from sealflow.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "config/schema.yaml")

# Every code point, lone surrogates included (legal in JSON as \ud800 escapes).
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=300)
PASSAGE = Passage("p0", "Quillon Pass", "Quillon Pass crosses the Ashen Range.",
                  (Question("Which range does Quillon Pass cross?", "the Ashen Range"),))


def _edit(completion: str, sample: int = 0) -> SelfEdit:
    return SelfEdit(id=f"r1-s0-p00-k{sample}", input_id=PASSAGE.id, sample=sample, prompt="P", completion=completion,
                    round=1, shard=0, seed=0)


@given(ANY_TEXT)
def test_any_knowledge_self_edit_becomes_training_text_or_a_named_reason(text):
    texts = training_texts(PASSAGE, text, "lines", include_passage=True)
    if texts.n_from_edit:
        assert texts.reason is None and not any(undecodable(t) for t in texts.texts)
    else:
        assert texts.reason  # invalid: reward 0 with this reason
    (plan,) = plans_for_edits([_edit(text)], {PASSAGE.id: PASSAGE}, "root", InnerSettings(), TrainSettings(), 0)
    assert plan.valid == bool(texts.n_from_edit) and (plan.valid or plan.reason)


@given(ANY_TEXT)
def test_any_arc_self_edit_parses_to_a_config_or_a_named_reason(text):
    result = parse_self_edit(text, n_examples=4, batch_size=2, max_steps=50)
    assert (result.config is None) != (result.reason is None)


@given(st.binary(max_size=200))
def test_any_bytes_in_a_self_edit_file_give_a_row_or_an_error_naming_file_and_line(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("edits") / "shard0.jsonl"
    good = json.dumps(_edit("- Quillon Pass crosses the Ashen Range.").to_dict()).encode()
    fuzzed = (b'{"id": "r1-s0-p00-k1", "input_id": "p0", "sample": 1, "prompt": "P", "completion": "' + raw
              + b'", "round": 1, "shard": 0, "seed": 0}')
    path.write_bytes(good + b"\n" + fuzzed + b"\n")
    try:
        edits = read_edits(str(path))
    except ValueError as err:
        assert f"{path}:2" in str(err)  # the line that is not JSON, named
        return
    except (KeyError, TypeError) as err:  # valid JSON of the wrong shape: a record error, also clear
        pytest.fail(f"unclear error for {raw!r}: {err!r}")
    assert len(edits) == 2
    plans = plans_for_edits(edits[1:], {PASSAGE.id: PASSAGE}, "root", InnerSettings(), TrainSettings(), 0)
    assert all(p.valid or p.reason for p in plans)


@pytest.fixture(scope="module")
def tokenized_world(tiny_model_dir):
    from sealflow.modeling import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@settings(max_examples=25)
@given(ANY_TEXT)
def test_every_valid_knowledge_text_tokenizes(tokenized_world, text):
    """What a plan keeps is something the tokenizer takes (undecodable text never reaches it)."""
    from sealflow.lora import TrainExample, encode_example

    for line in training_texts(PASSAGE, text, "lines", include_passage=True).texts:
        ids, labels = encode_example(tokenized_world, TrainExample(line), 64, mask_prompt=False)
        assert ids and len(ids) == len(labels)


def test_undecodable_self_edits_get_inert_adapters_and_reward_zero(tiny_model_dir, tmp_path):
    """Through a real shard: the undecodable edit is a row with its reason, the others train."""
    from sealflow.devices import resolve_placement
    from sealflow.inner_loop import run_shard
    from sealflow.lora import LoraSettings
    from sealflow.modeling import load_model, load_tokenizer

    edits = [_edit("- Quillon Pass crosses the Ashen Range.", 0), _edit("- Quillon \ud800 Pass is high.", 1)]
    plans = plans_for_edits(edits, {PASSAGE.id: PASSAGE}, str(tmp_path), InnerSettings(),
                            TrainSettings(epochs=1, batch_size=2, max_seq_len=64), 0)
    model = load_model(tiny_model_dir, resolve_placement("cpu"))
    rows = run_shard(model, load_tokenizer(tiny_model_dir), "tiny", plans, LoraSettings(r=2, alpha=4))
    assert [(r["status"], r["reason"]) for r in rows] == [("trained", None), ("inert", "undecodable")]


# ---- config sections: any JSON value --------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
BASE_CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())
SECTIONS = [("backend",), ("resources",), ("knowledge", "data"), ("knowledge", "self_edits"),
            ("knowledge", "inner_loop"), ("knowledge", "scoring"), ("knowledge", "restem"), ("knowledge", "sft"),
            ("knowledge", "heldout"), ("knowledge", "base_model")]


@pytest.mark.parametrize("section", SECTIONS, ids=".".join)
@settings(max_examples=30)
@given(value=JSON)
def test_any_value_of_a_config_section_is_accepted_or_refused_naming_a_key(section, value):
    cfg = copy.deepcopy(BASE_CONFIG)
    node = cfg
    for key in section[:-1]:
        node = node[key]
    node[section[-1]] = value
    try:
        validate_config(cfg, SCHEMA)
    except ConfigError as err:
        assert str(err).split("\n")[-1].strip()  # every line names a key path
        for line in str(err).splitlines()[1:]:
            assert ":" in line


def test_examples_cut_to_nothing_make_an_invalid_adapter_with_a_reason(tiny_model_dir, tmp_path):
    """Truncation is counted; an adapter that took no step is not a trained self-edit."""
    from sealflow.devices import resolve_placement
    from sealflow.inner_loop import TrainPlan, run_shard
    from sealflow.lora import LoraSettings, TrainExample
    from sealflow.modeling import load_model, load_tokenizer

    long_prompt = "word " * 40
    plans = [TrainPlan("r1-s0-p00-k0", 0, str(tmp_path / "a"), [TrainExample("the answer", long_prompt)],
                       TrainSettings(epochs=1, batch_size=1, max_seq_len=8), mask_prompt=True),
             TrainPlan("r1-s0-p00-k1", 0, str(tmp_path / "b"), [TrainExample("short line here"),
                                                                 TrainExample("the answer", long_prompt)],
                       TrainSettings(epochs=1, batch_size=1, max_seq_len=8), mask_prompt=True)]
    model = load_model(tiny_model_dir, resolve_placement("cpu"))
    rows = run_shard(model, load_tokenizer(tiny_model_dir), "tiny", plans, LoraSettings(r=2, alpha=4))
    assert (rows[0]["valid"], rows[0]["reason"], rows[0]["dropped_examples"]) == (False, "no_training_step", 1)
    assert (rows[1]["valid"], rows[1]["dropped_examples"], rows[1]["steps"]) == (True, 1, 1)
    assert rows[1]["truncated_examples"] >= 1  # the long one at least
    # rerun: the kept adapter keeps its verdict
    again = run_shard(model, load_tokenizer(tiny_model_dir), "tiny", plans, LoraSettings(r=2, alpha=4))
    assert [(r["status"], r["valid"], r["reason"]) for r in again] == [("kept", False, "no_training_step"),
                                                                       ("kept", True, None)]
