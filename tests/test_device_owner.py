"""One owner of the device at a time (``sealflow.backends.owner``): an engine-backed backend
never starts while the training model is alive, and the model never loads while an engine runs."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import yaml

from sealflow.backends import BackendSettings
from sealflow.backends.owner import DeviceOwner
from sealflow.devices import Placement

ROOT = Path(__file__).resolve().parents[1]


class _Model:
    pass


class _Tracker:
    """Fake loader and backend factory that record who was alive when."""

    def __init__(self):
        self.models: list[weakref.ref] = []
        self.events: list[str] = []
        self.open_backends = 0

    def live_models(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.models)

    def load_model(self, path, placement):
        assert self.open_backends == 0 or self.shared, "the training model loaded while an engine held the device"
        model = _Model()
        self.models.append(weakref.ref(model))
        self.events.append("load")
        return model

    def build_backend(self, path, placement, settings, **shared):
        self.shared = bool(shared)
        if not shared:
            assert self.live_models() == 0, "an engine started beside a live training model"
        tracker = self
        tracker.open_backends += 1
        tracker.events.append("engine" if not shared else "hf")

        class _Backend:
            def close(self):
                tracker.open_backends -= 1
                tracker.events.append("close")

        return _Backend()


def _owner(name: str, tracker: _Tracker) -> DeviceOwner:
    import torch

    tracker.shared = name == "hf"
    return DeviceOwner("m", Placement(torch.device("cpu"), torch.float32), BackendSettings(name=name), tokenizer=None,
                       load_model=tracker.load_model, build_backend=tracker.build_backend)


def test_an_engine_and_the_training_model_take_turns():
    tracker = _Tracker()
    with _owner("vllm", tracker) as owner:
        owner.backend()            # sample self-edits
        model = owner.model()      # test-time training: the engine goes first
        assert tracker.open_backends == 0
        del model
        owner.backend()            # answer: the model is freed first
        assert tracker.live_models() == 0
        assert owner.handovers == 2
    assert tracker.events == ["engine", "close", "load", "engine", "close"]
    assert tracker.open_backends == 0


def test_the_hf_backend_shares_the_training_model_without_a_handover():
    tracker = _Tracker()
    with _owner("hf", tracker) as owner:
        owner.backend()
        owner.model()
        owner.backend()
        assert owner.handovers == 0
    assert tracker.events == ["load", "hf", "close"]  # one load for the whole job


@pytest.mark.workflow
def test_the_arc_oracle_stage_never_keeps_its_training_model_beside_an_engine(tiny_llama_dir, tmp_path, monkeypatch):
    """The real stage with ``backend.name: vllm``: the 'engine' here is an HF backend on its own
    model copy, built only after every training model of the job has been freed."""
    from snakemake.utils import update_config

    import sealflow.backends.owner as owner_module
    import sealflow.modeling as modeling
    from sealflow.atomic import write_jsonl
    from sealflow.backends.hf import HFBackend
    from sealflow.config import validate_config
    from sealflow.fewshot.tasks import ArcTask, Example
    from sealflow.stages import fewshot_eval

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config/test-fewshot.yaml").read_text()))
    config["backend"]["name"] = "vllm"
    config["fewshot"]["evaluation"]["oracle"] = config["fewshot"]["evaluation"]["oracle"][:1]
    validate_config(config, str(ROOT / "config/schema.yaml"))

    training_models: list[weakref.ref] = []
    real_load = modeling.load_model

    def load_for_training(path, placement):
        model = real_load(path, placement)
        training_models.append(weakref.ref(model))
        return model

    engines = []

    def start_engine(path, placement, settings, **shared):
        assert not shared
        gc.collect()
        alive = [ref for ref in training_models if ref() is not None]
        assert not alive, "an engine started while the training model was alive"
        engines.append(path)
        return HFBackend(path, placement, BackendSettings(name="hf"))

    monkeypatch.setattr(modeling, "load_model", load_for_training)
    monkeypatch.setattr(owner_module, "make_backend", start_engine)
    demos = [Example([[i, 0], [0, 1]], [[0, i], [1, 0]]) for i in range(1, 4)]
    tasks = tmp_path / "eval.jsonl"
    write_jsonl(tasks, [ArcTask("t1", demos, [Example([[5, 0], [0, 1]], [[0, 5], [1, 0]])]).to_dict()])
    fewshot_eval.oracle(config, tasks=str(tasks), policy=str(tiny_llama_dir), root=str(tmp_path / "adapters"),
                        manifest=str(tmp_path / "manifest.json"), detail=str(tmp_path / "oracle.csv"))
    assert len(training_models) == 1 and engines == [str(tiny_llama_dir)]  # trained, then one engine answered
    import csv

    rows = list(csv.DictReader((tmp_path / "oracle.csv").open()))
    assert [(r["input_id"], r["valid"]) for r in rows] == [("t1", "True")]  # the one (task, config), trained
