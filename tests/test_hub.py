"""Hub ids are fetched once by a local rule; every job then loads a local folder, hub offline.

The hub is out of reach here, so a fake one stands in: a monkeypatched
``snapshot_download`` for the stages, and for the workflow a Hugging Face cache laid out
as the hub client writes it (``models--org--name/snapshots/<commit>/``), which
``snapshot_download`` answers from when the hub is offline.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from workflow import copy_workflow, planned_jobs, run_snakemake

ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "sealflow-test/tiny-qwen2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_cache(cache: Path, model_dir: Path) -> Path:
    """``model_dir`` as the hub client caches ``HUB_ID`` at ``COMMIT`` (the main ref)."""
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


def _rules() -> dict[str, str]:
    out = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", path.read_text())[1:]:
            out[re.match(r"rule (\w+):", block).group(1)] = block
    return out


def test_internet_stages_run_in_local_rules_and_gpu_rules_never_reach_it():
    from sealflow.stages import NETWORK_STAGES

    rules = _rules()
    stage_of = {name: re.search(r'stage="([\w.]+)"', block).group(1) for name, block in rules.items()}
    local = {name for name, block in rules.items() if re.search(r"(?m)^    localrule: True", block)}
    gpu = {name for name, block in rules.items() if re.search(r'res\("\w+", "gpu"\)', block)}
    networked = {name for name, stage in stage_of.items() if stage in NETWORK_STAGES}
    assert set(stage_of.values()) >= NETWORK_STAGES  # every listed stage is some rule's
    assert networked <= local, f"rules reaching the internet but not local: {sorted(networked - local)}"
    assert not networked & gpu
    assert {"knowledge_grade_answers", "knowledge_heldout_grade", "knowledge_heldout_external_self_edits",
            "base_model_fetch"} <= networked
    assert "base_model" not in gpu  # a pointer or a tiny build needs no GPU


def test_every_stage_but_the_internet_ones_runs_with_the_hub_offline():
    from sealflow.stages import hub_environment

    assert hub_environment("knowledge.inner_loop") == {"HF_HUB_OFFLINE": "1"}
    assert hub_environment("knowledge_heldout.evaluate") == {"HF_HUB_OFFLINE": "1"}
    assert hub_environment("base.base_model") == {"HF_HUB_OFFLINE": "1"}
    assert hub_environment("base.fetch_model") == {}


def _base_config(tmp_path: Path, **base) -> dict:
    return {"seed": 0, "knowledge": {"base_model": {"path": HUB_ID, **base}}}


def test_fetch_then_point_at_the_local_snapshot(tiny_model_dir, tmp_path, monkeypatch):
    import huggingface_hub

    from sealflow.modeling import load_model, resolve_model_path
    from sealflow.stages import base

    snapshot = _fake_cache(tmp_path / "cache", tiny_model_dir)
    calls = []

    def fake_download(repo_id, revision=None, cache_dir=None, **_):
        calls.append((repo_id, revision, cache_dir))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    cfg = _base_config(tmp_path, revision="v1", cache_dir=str(tmp_path / "cache"))
    base.fetch_model(cfg, domain="knowledge", fetched=str(tmp_path / "fetched.json"))
    record = json.loads((tmp_path / "fetched.json").read_text())
    assert calls == [(HUB_ID, "v1", str(tmp_path / "cache"))]
    assert record == {"hub_id": HUB_ID, "revision": "v1", "commit": COMMIT, "path": str(snapshot.resolve())}
    base.base_model(cfg, domain="knowledge", out=str(tmp_path / "model"), fetched=str(tmp_path / "fetched.json"))
    assert resolve_model_path(tmp_path / "model") == str(snapshot.resolve())  # a local folder, not the hub id
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model(tmp_path / "model") is not None
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["commit"] == COMMIT and meta["hub_id"] == HUB_ID
    # A hub id that was not fetched is refused, naming the key; a failed fetch names it too.
    with pytest.raises(FileNotFoundError, match="knowledge.base_model.path"):
        base.base_model(cfg, domain="knowledge", out=str(tmp_path / "other"))

    def unreachable(repo_id, **_):
        raise OSError("no route to host")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(RuntimeError, match=r"knowledge.base_model.path 'sealflow-test/tiny-qwen2'.*no route"):
        base.fetch_model(cfg, domain="knowledge", fetched=str(tmp_path / "f2.json"))


@pytest.mark.workflow
def test_workflow_fetches_a_hub_id_once_then_jobs_load_the_local_folder(tiny_model_dir, tmp_path):
    wd = copy_workflow(tmp_path / "wd")
    snapshot = _fake_cache(tmp_path / "hub-cache", tiny_model_dir)
    (wd / "hub.yaml").write_text(yaml.safe_dump({"knowledge": {"base_model": {"path": HUB_ID}}}))
    cfg = ("--configfile", "config/test.yaml", "hub.yaml")
    target = "results/test/knowledge/round1/self_edits/shard0.jsonl"
    jobs = planned_jobs(wd, target, *cfg)
    assert jobs["base_model_fetch"] == 1 and jobs["base_model"] == 1
    # The fetch sees the (fake) hub; the jobs after it get an empty cache: only a local path loads.
    run_snakemake(wd, "results/test/knowledge/base/fetched.json", *cfg,
                  env={"HF_HUB_CACHE": str(tmp_path / "hub-cache"), "HF_HUB_OFFLINE": "1"})
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    run_snakemake(wd, target, *cfg, env={"HF_HUB_CACHE": str(empty)})
    pointer = (wd / "results/test/knowledge/base/model/pointer.txt").read_text().strip()
    assert pointer == str(snapshot.resolve())
    edits = [json.loads(line) for line in open(wd / target)]
    assert edits and all(e["policy"] == pointer for e in edits)
    assert planned_jobs(wd, target, *cfg) == {}  # fetched once
