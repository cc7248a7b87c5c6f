"""Stages of rules/base.smk: fetch a hub model where the internet is; build a tiny round-0
policy offline, or point at a real one (always a local folder; a GGUF file is converted once)."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_dir, write_json
from ..hub import fetch_snapshot, fetched_path, is_hub_id
from ..gguf_source import ensure_converted
from ..provenance import write_meta

if TYPE_CHECKING:  # the build imports torch; fetching and pointing at a model do not
    from ..base_model import BuildSettings

log = logging.getLogger(__name__)

# Which corpus teaches each domain's tiny model its formats (per base_model.build.corpus).
_CORPORA = {
    ("knowledge", "synthetic"): ("sealflow.knowledge.corpus", "knowledge_corpus"),
    ("fewshot", "synthetic"): ("sealflow.fewshot.corpus", "fewshot_corpus"),
    ("fewshot", "organism"): ("sealflow.fewshot.corpus", "organism_corpus"),
    ("fewshot", "organism_colour_maps"): ("sealflow.fewshot.corpus", "organism_colour_maps_corpus"),
}


def corpus_for(domain: str, settings: BuildSettings, seed: int) -> list[str]:
    if (domain, settings.corpus) not in _CORPORA:
        raise ValueError(f"{domain}.base_model.build.corpus {settings.corpus!r} is not a corpus of that domain "
                         f"(choose from {sorted(c for d, c in _CORPORA if d == domain)})")
    module, name = _CORPORA[domain, settings.corpus]
    return getattr(importlib.import_module(module), name)(settings.corpus_passages, seed)


def whole_token_share(model_dir: str | Path, words) -> float:
    """Share of ``words`` that the built tokenizer encodes as one token both after a space and at a line's start."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    words = list(words)
    one = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1
    whole = sum(one(" " + w) and one(w) for w in words)
    return whole / max(1, len(words))


def knowledge_copy_probe(model_dir: str | Path, passages: int) -> dict:
    """The built policy's round-1 sampling on fresh passages: how much of each self-edit restates them."""
    from ..backends import BackendSettings, make_backend
    from ..devices import resolve_placement
    from ..knowledge.copy_probe import probe_copying
    from ..modeling import load_tokenizer

    backend = make_backend(str(model_dir), resolve_placement("auto"), BackendSettings(name="hf"))
    return probe_copying(backend, load_tokenizer(str(model_dir)), passages).to_dict()


def fetch_model(config: dict, *, domain: str, fetched: str) -> None:
    """Download the hub id ``{domain}.base_model.path`` (a local rule: the one job that needs the hub)."""
    base_cfg = config[domain]["base_model"]
    record = fetch_snapshot(str(base_cfg["path"]), base_cfg.get("revision"), base_cfg.get("cache_dir"),
                            f"{domain}.base_model")
    write_json(fetched, record)
    log.info("%s base model %s at commit %s: %s", domain, record["hub_id"], record["commit"], record["path"])


def base_model(config: dict, *, domain: str, out: str, fetched: str | None = None,
               gguf: str | None = None) -> None:
    """The round-1 policy: a tiny model built here, or ``pointer.txt`` naming a real one (a local
    folder, a fetched hub id, or the cached conversion of a GGUF ``source``; ``gguf`` is its file)."""
    base_cfg = config[domain]["base_model"]
    if base_cfg.get("source"):
        folder, record = ensure_converted(base_cfg["source"], key=f"{domain}.base_model.source")
        with atomic_dir(out) as tmp:
            (Path(tmp) / "pointer.txt").write_text(str(folder) + "\n")
        write_meta(Path(out), config, model=str(folder), built=False, gguf=gguf, **record)
        log.info("%s base model: %s from %s", domain, folder, base_cfg["source"])
        return
    if base_cfg.get("path"):
        # A real model: a pointer to a local folder (a hub id's fetched snapshot), so jobs never need the hub.
        path, record = str(base_cfg["path"]), {}
        if fetched is not None:
            record = json.loads(Path(fetched).read_text())
            path = fetched_path(record)
        elif is_hub_id(path):
            raise FileNotFoundError(f"{domain}.base_model.path {path!r} is no folder on this machine and was not "
                                    "fetched (base_model_fetch)")
        with atomic_dir(out) as tmp:
            (Path(tmp) / "pointer.txt").write_text(path + "\n")
        write_meta(Path(out), config, model=base_cfg["path"], local_path=path, built=False,
                   **{k: record[k] for k in ("hub_id", "commit") if k in record})
        log.info("%s base model: %s (%s)", domain, base_cfg["path"], path)
        return
    from ..base_model import BuildSettings, build_base_model

    settings = BuildSettings.from_config(base_cfg["build"])
    corpus = corpus_for(domain, settings, config["seed"])
    log.info("%s corpus: %d documents, %d characters", domain, len(corpus), sum(map(len, corpus)))
    stats = build_base_model(out, settings, corpus, config["seed"])
    if domain == "knowledge":
        # The organism relies on names being one token each (see sealflow/worldgen.py).
        from ..worldgen import NAMES

        stats["whole_token_names"] = round(whole_token_share(out, NAMES), 4)
        if stats["whole_token_names"] < 0.9:
            log.warning("only %.0f%% of the world's names are one token: the tiny policy will copy them poorly "
                        "(raise knowledge.base_model.build.vocab_size)", 100 * stats["whole_token_names"])
        passages = int(base_cfg["build"].get("copy_probe_passages", 20))
        if passages:
            stats["copy_probe"] = knowledge_copy_probe(out, passages)
            log.info("copy probe: %s", stats["copy_probe"])
            if stats["copy_probe"]["value_copied"] < 0.25:
                log.warning("only %.0f%% of the base policy's self-edit lines restate a value of their passage: "
                            "expect base self-edits to help little more than the passage (pretrain longer: "
                            "knowledge.base_model.build.pretrain_steps)", 100 * stats["copy_probe"]["value_copied"])
    write_meta(Path(out), config, seed=config["seed"], built=True, architecture=settings.architecture, **stats)
    log.info("built %s base model: %s", domain, stats)
