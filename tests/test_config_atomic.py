"""Config validation names the key; atomic writes never leave partial files."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from sealflow.atomic import atomic_dir, atomic_file, read_jsonl, write_jsonl
from sealflow.config import ConfigError, rule_resources, validate_config
from workflow import ROOT

SCHEMA = str(ROOT / "config/schema.yaml")


@pytest.fixture()
def config() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_default_and_shipped_configs_are_valid(config):
    validate_config(config, SCHEMA)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["knowledge"]["self_edits"].update(kk=3), "knowledge.self_edits.kk: unknown key"),
    (lambda c: c["knowledge"]["self_edits"].update(k="three"), "knowledge.self_edits.k:"),
    (lambda c: c.update(device="tpu"), "device:"),
    (lambda c: c["knowledge"]["inner_loop"]["lora"].update(r=0), "knowledge.inner_loop.lora.r:"),
    (lambda c: c["knowledge"]["data"].update(n_train=7), "knowledge.data.n_train=7 must be a multiple"),
    (lambda c: c["knowledge"]["restem"].update(keep_top_k=99), "knowledge.restem.keep_top_k=99"),
    (lambda c: c["backend"].update(name="server", base_url=None), "backend.base_url"),
])
def test_invalid_config_names_the_key(config, mutate, key):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate_config(bad, SCHEMA)
    assert key in str(err.value)


def test_gpu_resources_map_to_slurm(config):
    cfg = copy.deepcopy(config)
    validate_config(cfg, SCHEMA)
    cfg["resources"]["gpu"].update(gpus=1, gpu_type="h100", slurm_partition="gpu-h100")
    assert rule_resources(cfg, "inner_loop", "gpu") | {} == {"mem_mb": 8000, "runtime": 120, "cpus_per_task": 2,
                                                             "slurm_partition": "gpu-h100", "gpu": 1, "gpu_model": "h100"}
    cfg["resources"]["gpu"]["gpu_request"] = "gres"
    assert rule_resources(cfg, "inner_loop", "gpu")["gres"] == "gpu:h100:1"
    cfg["resources"]["rules"] = {"inner_loop": {"runtime": 600}}
    assert rule_resources(cfg, "inner_loop", "gpu")["runtime"] == 600
    assert "gpu" not in rule_resources(cfg, "rewards", "cpu")


def test_atomic_file_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and os.listdir(tmp_path) == []
    write_jsonl(target, [{"a": 1}, {"b": 2}])
    assert read_jsonl(target) == [{"a": 1}, {"b": 2}]


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "y").write_text("2")
            raise RuntimeError("boom")
    assert sorted(os.listdir(target)) == ["x"] and sorted(os.listdir(tmp_path)) == ["adapter"]


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"e.jsonl:2"):
        read_jsonl(path)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "f.jsonl", [{"a": 1}])
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "f.jsonl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_validation_fills_defaults_once_from_the_schema(config):
    """Optional keys get the schema's default (nested sections included); given values stay."""
    cfg = copy.deepcopy(config)
    del cfg["knowledge"]["inner_loop"]["split"], cfg["knowledge"]["heldout"], cfg["resources"]["rules"]
    cfg["knowledge"]["sft"]["max_seq_len"] = 77
    validate_config(cfg, SCHEMA)
    assert cfg["knowledge"]["inner_loop"]["split"] == "lines"
    assert cfg["knowledge"]["heldout"]["external"]["model"] == "gpt-4.1"  # a section absent as a whole
    assert cfg["knowledge"]["heldout"]["inner_loop"] == {}  # overrides have no defaults of their own
    assert cfg["knowledge"]["sft"]["max_seq_len"] == 77 and cfg["knowledge"]["sft"]["grad_accum"] == 1
    assert cfg["resources"]["rules"] == {}
    # A per-rule resource override is not filled: only what it gives overrides the resource set.
    cfg["resources"]["rules"] = {"knowledge_inner_loop": {"runtime": 600}}
    validate_config(cfg, SCHEMA)
    assert cfg["resources"]["rules"]["knowledge_inner_loop"] == {"runtime": 600}
    assert rule_resources(cfg, "knowledge_inner_loop", "gpu")["cpus_per_task"] == cfg["resources"]["gpu"]["threads"]


@pytest.mark.parametrize("section, typo, suggestion", [
    (("knowledge", "inner_loop"), "epoch", "knowledge.inner_loop.epochs"),
    (("knowledge", "sft"), "lrr", "knowledge.sft.lr"),
    (("knowledge", "heldout", "inner_loop"), "epocs", "knowledge.heldout.inner_loop.epochs"),
    (("knowledge", "scoring", "judge"), "modle", "knowledge.scoring.judge.model"),
    (("backend",), "batchsize", "backend.batch_size"),
    (("resources", "gpu"), "thread", "resources.gpu.threads"),
])
def test_a_typo_in_any_nested_section_is_refused_naming_the_key_and_the_near_one(config, section, typo, suggestion):
    cfg = copy.deepcopy(config)
    node = cfg
    for key in section:
        node = node.setdefault(key, {})
    node[typo] = 1
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    assert f"{'.'.join(section)}.{typo}: unknown key (did you mean '{suggestion}'?)" in str(err.value)


def test_an_unknown_key_far_from_every_known_one_gets_no_suggestion(config):
    cfg = copy.deepcopy(config)
    cfg["knowledge"]["sft"]["warmup_ratio"] = 0.1
    with pytest.raises(ConfigError, match=r"knowledge\.sft\.warmup_ratio: unknown key\n|knowledge\.sft\.warmup_ratio: unknown key$"):
        validate_config(cfg, SCHEMA)


def test_keep_top_k_above_k_is_refused_in_both_domains(config):
    fewshot = yaml.safe_load((ROOT / "config/fewshot.yaml").read_text())
    for cfg, domain in ((copy.deepcopy(config), "knowledge"), ({**copy.deepcopy(config), **fewshot}, "fewshot")):
        cfg[domain]["restem"]["keep_top_k"] = cfg[domain]["self_edits"]["k"] + 1
        with pytest.raises(ConfigError, match=rf"{domain}\.restem\.keep_top_k=\d+ exceeds {domain}\.self_edits\.k"):
            validate_config(cfg, SCHEMA)
