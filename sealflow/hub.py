"""Models named by hub id: fetched once where the internet is, then loaded from disk.

Compute nodes often have no internet. ``base_model_fetch`` (a local rule, run where
Snakemake runs) downloads a hub id's snapshot; ``base_model`` then points at that
folder, so every job loads a local path, and the stages run with ``HF_HUB_OFFLINE=1``
(:func:`sealflow.stages.run`). No torch here: the rules call :func:`is_hub_id`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping


class FetchError(RuntimeError):
    """A hub id could not be fetched (the message names the config key)."""


def is_hub_id(path: str | os.PathLike) -> bool:
    """A ``base_model.path`` that is not a folder on this machine is a hub id."""
    return not Path(path).expanduser().exists()


def fetch_snapshot(repo_id: str, revision: str | None, cache_dir: str | None, key: str) -> dict[str, Any]:
    """Download (or find in the cache) ``repo_id`` at ``revision``; its local folder and commit."""
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir)
    except Exception as err:  # network, auth, unknown repo: all end the same way for the user
        raise FetchError(f"{key}.path {repo_id!r} is no folder on this machine and could not be fetched from the "
                         f"hub ({type(err).__name__}: {err}); check the id, the network of the machine running "
                         "Snakemake, or give a local path") from err
    folder = Path(local).resolve()
    if not (folder / "config.json").is_file():
        raise FetchError(f"{key}.path {repo_id!r}: the fetched snapshot {folder} has no config.json")
    return {"hub_id": repo_id, "revision": revision, "commit": folder.name, "path": str(folder)}


def fetched_path(record: Mapping[str, Any]) -> str:
    """The local folder a fetch record names, checked to be still there."""
    path = str(record["path"])
    if not Path(path, "config.json").is_file():
        raise FetchError(f"the snapshot of {record.get('hub_id')} at {path} is gone; rerun base_model_fetch")
    return path
