"""The conda environments match the code: vLLM's lower bound covers the API the code uses,
every rule that may run vLLM names an environment that installs it, and vLLM's dtype
follows the device."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from sealflow.backends.vllm_engine import VLLM_MIN_VERSION, _check_version, engine_dtype
from sealflow.config import RULE_ENV, VLLM_ENV, generation_env
from sealflow.devices import Placement

ROOT = Path(__file__).resolve().parents[1]
# vLLM names the code uses -> the first release that has them (the structured-outputs API
# replaced guided decoding: the class in 0.10.2, the server field and the removal of V0 in 0.11).
VLLM_API_SINCE = {"StructuredOutputsParams": "0.10.2", "structured_outputs": "0.11", "engine_core": "0.8"}


def _pip_requirements(env_file: Path) -> dict[str, Requirement]:
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return {Requirement(r).name: Requirement(r) for r in pip if not r.startswith("-")}


def _lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    assert bounds, f"{requirement} has no lower bound"
    return max(bounds)


def test_the_vllm_lower_bound_covers_every_vllm_api_the_code_uses():
    code = "".join(p.read_text() for p in (ROOT / "sealflow/backends").glob("*.py"))
    used = {name: since for name, since in VLLM_API_SINCE.items() if name in code}
    assert "StructuredOutputsParams" in used  # the scan sees the code
    needed = max(Version(v) for v in used.values())
    assert Version(VLLM_MIN_VERSION) >= needed
    env = _pip_requirements(ROOT / "envs/vllm.yaml")
    assert _lower_bound(env["vllm"]) >= Version(VLLM_MIN_VERSION)
    extra = re.search(r'^vllm = \["([^"]+)"\]', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert _lower_bound(Requirement(extra)) >= Version(VLLM_MIN_VERSION)
    with pytest.raises(RuntimeError, match="older than"):
        _check_version("0.10.1")
    _check_version("0.32.0+cpu")


def test_both_environments_install_the_project_and_agree_with_it():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for env_file in (ROOT / "envs").glob("*.yaml"):
        deps = yaml.safe_load(env_file.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        assert "-e ../" in pip, f"{env_file.name}: a --sdm conda job must be able to import sealflow"
        project = Requirement(re.search(r'"(transformers[^"]+)"', pyproject).group(1))
        assert _pip_requirements(env_file)["transformers"].specifier == project.specifier, env_file.name


def _rule_blocks() -> dict[str, tuple[str, str]]:
    """rule name -> (rules file, its text)."""
    blocks = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", path.read_text()):
            if block.startswith("rule "):
                blocks[block.split()[1].rstrip(":")] = (path.name, block)
    return blocks


def _generating_rules() -> list:
    rules = [(name, f, b) for name, (f, b) in _rule_blocks().items() if re.search(r'uses\([^)]*"backend"', b)]
    assert len(rules) >= 7
    return [pytest.param(name, f, b, id=name) for name, f, b in rules]


@pytest.mark.parametrize("name, rules_file, block", _generating_rules())
def test_every_rule_that_may_run_vllm_names_the_vllm_environment(name, rules_file, block):
    conda = re.search(r"conda:\s*\n\s*(\S+)", block).group(1)
    assert conda == "generation_conda()", f"{rules_file}: rule {name} generates but its conda env is {conda}"


@pytest.mark.parametrize("backend, env", [("vllm", VLLM_ENV), ("auto", VLLM_ENV), ("hf", RULE_ENV), ("server", RULE_ENV)])
def test_generation_env_has_vllm_exactly_where_vllm_may_run(backend, env):
    chosen = generation_env({"backend": {"name": backend}})
    assert chosen == env
    has_vllm = "vllm" in _pip_requirements(ROOT / "rules" / chosen)
    assert has_vllm == (backend in ("vllm", "auto"))


@pytest.mark.parametrize("device, dtype, expected", [
    ("cuda", torch.bfloat16, "bfloat16"), ("cuda", torch.float16, "float16"), ("cpu", torch.float32, "float32")])
def test_vllm_dtype_follows_the_device(device, dtype, expected):
    assert engine_dtype(Placement(torch.device(device), dtype)) == expected


def test_a_shard_with_more_adapters_than_lora_slots_is_named_and_the_paper_config_has_enough():
    from sealflow.backends.vllm_engine import lora_slot_shortfall

    assert lora_slot_shortfall(76, 8) and "backend.max_loras to 76" in lora_slot_shortfall(76, 8)
    assert lora_slot_shortfall(76, 76) is None
    paper = yaml.safe_load((ROOT / "config/paper-knowledge.yaml").read_text())
    k = paper["knowledge"]
    per_shard = k["self_edits"]["shard_size"] * k["self_edits"]["k"] * k["inner_loop"]["eval_repeats"] + 1
    assert lora_slot_shortfall(per_shard, paper["backend"]["max_loras"]) is None
    assert paper["backend"]["max_lora_rank"] >= k["inner_loop"]["lora"]["r"]
    fewshot = yaml.safe_load((ROOT / "config/paper-fewshot.yaml").read_text())
    f = fewshot["fewshot"]
    assert lora_slot_shortfall(f["self_edits"]["shard_size"] * f["self_edits"]["k"] + 1,
                               fewshot["backend"]["max_loras"]) is None
