"""Stage of rules/base.smk: build a tiny round-0 policy offline, or point at a real one (converting GGUF once)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from ..atomic import atomic_dir
from ..base_model import BuildSettings, build_base_model
from ..gguf_source import ensure_converted
from ..provenance import write_meta

log = logging.getLogger(__name__)

# Which corpus teaches each domain's tiny model its formats.
_CORPORA = {
    "knowledge": ("sealflow.knowledge.corpus", "knowledge_corpus"),
    "fewshot": ("sealflow.fewshot.corpus", "fewshot_corpus"),
}


def corpus_for(domain: str, settings: BuildSettings, seed: int) -> list[str]:
    module, name = _CORPORA[domain]
    return getattr(importlib.import_module(module), name)(settings.corpus_passages, seed)


def base_model(config: dict, *, domain: str, out: str, gguf: str | None = None) -> None:
    """The round-1 policy: a tiny model built here, or ``pointer.txt`` naming a real one (a hub
    id, a local folder, or the cached conversion of a GGUF ``source``; ``gguf`` is its file)."""
    base_cfg = config[domain]["base_model"]
    if base_cfg.get("source"):
        folder, record = ensure_converted(base_cfg["source"], key=f"{domain}.base_model.source")
        with atomic_dir(out) as tmp:
            (Path(tmp) / "pointer.txt").write_text(str(folder) + "\n")
        write_meta(Path(out), config, model=str(folder), built=False, gguf=gguf, **record)
        log.info("%s base model: %s from %s", domain, folder, base_cfg["source"])
        return
    if base_cfg.get("path"):
        # A real model (hub id or local path): record a pointer; loading code resolves it.
        with atomic_dir(out) as tmp:
            (Path(tmp) / "pointer.txt").write_text(str(base_cfg["path"]) + "\n")
        write_meta(Path(out), config, model=base_cfg["path"], built=False)
        log.info("%s base model: %s", domain, base_cfg["path"])
        return
    settings = BuildSettings.from_config(base_cfg["build"])
    corpus = corpus_for(domain, settings, config["seed"])
    log.info("%s corpus: %d documents, %d characters", domain, len(corpus), sum(map(len, corpus)))
    stats = build_base_model(out, settings, corpus, config["seed"])
    write_meta(Path(out), config, seed=config["seed"], built=True, architecture=settings.architecture, **stats)
    log.info("built %s base model: %s", domain, stats)
