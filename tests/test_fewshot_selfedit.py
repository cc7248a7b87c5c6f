import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sealflow.fewshot.augment import AugmentFlags
from sealflow.fewshot.toolconfig import (
    ToolConfig,
    check_budget,
    config_key,
    parse_self_edit,
    to_json,
    training_steps,
)

NESTED = {
    "data_generation": {
        "use_basic_augmentations": True,
        "use_size_augmentations": False,
        "use_chain_augmentations": False,
        "use_repeat_augmentations": True,
    },
    "training": {"strategy": "train_using_output_tokens", "learning_rate": 1e-4, "num_train_epochs": 3},
}
FLAT = {**NESTED["data_generation"], **NESTED["training"]}
EXPECTED = ToolConfig(True, False, False, True, "output_tokens", 1e-4, 3)


def reason(obj) -> str | None:
    return parse_self_edit(json.dumps(obj)).reason


def with_key(layout: dict, key: str, value) -> dict:
    out = json.loads(json.dumps(layout))
    for section in (out, *[v for v in out.values() if isinstance(v, dict)]):
        if key in section:
            section[key] = value
    return out


def without_key(layout: dict, key: str) -> dict:
    out = json.loads(json.dumps(layout))
    for section in (out, *[v for v in out.values() if isinstance(v, dict)]):
        section.pop(key, None)
    return out


def test_parses_both_layouts():
    assert parse_self_edit(json.dumps(NESTED)).config == EXPECTED
    assert parse_self_edit(json.dumps(FLAT)).config == EXPECTED
    short = with_key(FLAT, "strategy", "all_tokens")
    assert parse_self_edit(json.dumps(short)).config.strategy == "all_tokens"


def test_finds_json_in_fences_and_prose():
    text = "Sure! Here is my choice:\n```json\n" + json.dumps(NESTED, indent=2) + "\n```\nGood luck {not json}"
    result = parse_self_edit(text)
    assert result.ok and result.reason is None and result.config == EXPECTED
    assert parse_self_edit("{oops} then " + json.dumps(FLAT)).config == EXPECTED


def test_structural_reasons():
    assert parse_self_edit("").reason == "no_json"
    assert parse_self_edit("use basic augmentations please").reason == "no_json"
    assert parse_self_edit('{"data_generation": {"use_basic_augmentations": tru').reason == "invalid_json"
    assert parse_self_edit("[1, 2, 3] {").reason == "invalid_json"
    assert reason({"training": NESTED["training"]}) == "missing_key:data_generation"
    assert reason({**NESTED, "training": "fast"}) == "wrong_type:training"


def test_field_reasons_in_both_layouts():
    for layout in (NESTED, FLAT):
        for key in ("use_basic_augmentations", "use_repeat_augmentations", "strategy", "learning_rate", "num_train_epochs"):
            assert reason(without_key(layout, key)) == f"missing_key:{key}"
        assert reason(with_key(layout, "use_size_augmentations", "true")) == "wrong_type:use_size_augmentations"
        assert reason(with_key(layout, "use_chain_augmentations", 1)) == "wrong_type:use_chain_augmentations"
        assert reason(with_key(layout, "strategy", 3)) == "wrong_type:strategy"
        assert reason(with_key(layout, "strategy", "train_using_vibes")) == "out_of_range:strategy"
        assert reason(with_key(layout, "learning_rate", "1e-4")) == "wrong_type:learning_rate"
        assert reason(with_key(layout, "learning_rate", True)) == "wrong_type:learning_rate"
        for lr in (0, -1e-4, 0.5, 10**400):
            assert reason(with_key(layout, "learning_rate", lr)) == "out_of_range:learning_rate", lr
        assert parse_self_edit(json.dumps(with_key(layout, "learning_rate", 1e-4)).replace("0.0001", "NaN")).reason == "out_of_range:learning_rate"
        assert reason(with_key(layout, "num_train_epochs", 2.5)) == "wrong_type:num_train_epochs"
        assert reason(with_key(layout, "num_train_epochs", "3")) == "wrong_type:num_train_epochs"
        for epochs in (0, 21, -3):
            assert reason(with_key(layout, "num_train_epochs", epochs)) == "out_of_range:num_train_epochs"
        assert parse_self_edit(json.dumps(with_key(layout, "num_train_epochs", 4.0))).config.num_train_epochs == 4


def test_budget():
    config = EXPECTED  # 3 epochs
    assert training_steps(config, n_examples=10, batch_size=4) == 9
    assert check_budget(config, 10, 4, max_steps=9) is None
    assert check_budget(config, 10, 4, max_steps=8) == "over_budget"
    text = json.dumps(NESTED)
    assert parse_self_edit(text, n_examples=10, batch_size=4, max_steps=8).reason == "over_budget"
    assert parse_self_edit(text, n_examples=10, batch_size=4, max_steps=9).ok


def test_config_key_and_flags():
    same = ToolConfig(True, False, False, True, "output_tokens", 0.0001, 3)
    assert config_key(same) == config_key(EXPECTED)
    assert config_key(ToolConfig(True, False, False, True, "output_tokens", 2e-4, 3)) != config_key(EXPECTED)
    assert EXPECTED.flags == AugmentFlags(basic=True, repeat=True)
    assert not EXPECTED.train_on_prompt
    assert ToolConfig.from_dict(EXPECTED.to_dict()) == EXPECTED


configs = st.builds(
    ToolConfig,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["all_tokens", "output_tokens"]),
    st.floats(min_value=1e-7, max_value=1e-2, allow_nan=False),
    st.integers(1, 20),
)


@settings(max_examples=100, deadline=None)
@given(configs)
def test_to_json_round_trips(config):
    text = to_json(config)
    assert json.loads(text).keys() == {"data_generation", "training"}
    assert parse_self_edit(text).config == config
    assert parse_self_edit(f"Answer:\n```json\n{text}\n```").config == config


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_never_raises_on_text(text):
    result = parse_self_edit(text)
    assert (result.config is None) != (result.reason is None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=25), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(json_values, st.integers(0, 200), st.text(alphabet='{}[]":,tfn0123456789.e- ', max_size=10))
def test_never_raises_on_json_ish_text(value, cut, noise):
    text = json.dumps(value)
    for candidate in (text, text[:cut], noise + text, text[:cut] + noise + text[cut:], "{" * cut + text):
        result = parse_self_edit(candidate)
        assert (result.config is None) != (result.reason is None)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FLAT)), json_values, max_size=7))
def test_fuzzed_fields_give_a_known_reason(fields):
    result = parse_self_edit(json.dumps({**FLAT, **fields}))
    if not result.ok:
        kind, _, name = result.reason.partition(":")
        assert kind in {"wrong_type", "out_of_range"} and name in FLAT


def test_deeply_nested_text_does_not_raise():
    assert not parse_self_edit("{" + '"a":[' * 50_000).ok
    assert not parse_self_edit('{"a":' * 5_000 + "1" + "}" * 5_000).ok
