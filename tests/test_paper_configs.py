"""The paper configs follow the authors' recipes where this project claims they do."""

from __future__ import annotations

from pathlib import Path

import yaml

from sealflow.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
AUTHORS_ARC_TARGETS = {"q_proj", "v_proj", "gate_proj", "down_proj", "up_proj"}  # few-shot/self-edit.py, ttt.py


def _merged(name: str) -> dict:
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    validate_config(config, str(ROOT / "config/schema.yaml"))
    return config


def test_paper_fewshot_uses_the_authors_arc_lora_batches_and_update():
    fs = _merged("paper-fewshot.yaml")["fewshot"]
    inner, sft = fs["inner_loop"], fs["sft"]
    assert (inner["lora"]["r"], inner["lora"]["alpha"], inner["lora"]["dropout"]) == (128, 16, 0.0)
    assert set(inner["lora"]["target_modules"]) == AUTHORS_ARC_TARGETS
    assert (inner["batch_size"], inner["grad_accum"], inner["max_steps"]) == (2, 1, 375)
    # the RestEM command of the authors' few-shot README (BC-self-edit.py)
    assert (sft["lora"]["r"], sft["lora"]["alpha"]) == (16, 16)
    assert set(sft["lora"]["target_modules"]) == AUTHORS_ARC_TARGETS
    assert (sft["epochs"], sft["lr"], sft["batch_size"], sft["grad_accum"]) == (8, 5e-5, 5, 1)
    assert inner["gradient_checkpointing"] and sft["gradient_checkpointing"]


def test_paper_knowledge_deletes_scored_adapters_and_the_default_keeps_them():
    assert _merged("paper-knowledge.yaml")["keep_adapters"] is False
    assert _merged("config.yaml")["keep_adapters"] is True


def test_base_model_asks_for_a_gpu_only_when_it_builds_a_model():
    from sealflow.config import base_model_kind, rule_resources

    for name in ("paper-knowledge.yaml", "paper-fewshot.yaml"):
        config = _merged(name)
        assert base_model_kind(config) == "cpu"  # a pointer file
        assert "gpu" not in rule_resources(config, "base_model", base_model_kind(config))
    assert base_model_kind(_merged("test.yaml")) == "gpu"  # the tiny model is trained


def test_the_smollm2_configs_run_the_packaged_model_with_llama_module_names():
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1))
    llama_modules = {name.rsplit(".", 1)[-1] for name, _ in tiny.named_modules()}
    for name, domain in (("smollm2.yaml", "knowledge"), ("smollm2-fewshot.yaml", "fewshot")):
        config = _merged(name)
        assert config["domains"] == [domain] and config["device"] == "cpu"
        section = config[domain]
        assert section["base_model"] == {**section["base_model"], "path": None, "source": "smollm2-135m-instruct"}
        for stage in ("inner_loop", "sft"):
            targets = set(section[stage]["lora"]["target_modules"])
            assert targets and targets <= llama_modules, (name, stage, targets - llama_modules)


def test_held_out_self_edits_are_sampled_as_in_training_in_the_default_the_organism_the_paper_and_smollm2_configs():
    # Snakemake merges a --configfile over config/config.yaml key by key, so a config that left out
    # `heldout.sampling` or `heldout.adapt` would inherit the default's (0.5, base) without saying so.
    def heldout_temperature(config: dict) -> float:
        kn = config["knowledge"]
        return {**kn["self_edits"], **kn["heldout"]["sampling"]}["temperature"]

    for name, temperature, adapt in (("config.yaml", 0.5, "base"), ("knowledge-organism.yaml", 0.5, "base"),
                                     ("paper-knowledge.yaml", 1.0, "policy"), ("smollm2.yaml", 1.0, "policy")):
        config = _merged(name)
        assert heldout_temperature(config) == config["knowledge"]["self_edits"]["temperature"] == temperature, name
        assert config["knowledge"]["heldout"]["adapt"] == adapt, name
    for name in ("paper-knowledge.yaml", "smollm2.yaml"):  # their own keys, not the default's
        own = yaml.safe_load((ROOT / "config" / name).read_text())["knowledge"]["heldout"]
        assert {"sampling", "adapt", "k"} <= set(own), name
