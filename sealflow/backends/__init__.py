"""Generation backends: Hugging Face ``generate`` and vLLM, behind one interface."""

from __future__ import annotations

from ..devices import Placement
from .base import Backend, BackendSettings, GenerationRequest, apply_stop

__all__ = ["Backend", "BackendSettings", "GenerationRequest", "apply_stop", "make_backend", "resolved_name"]


def _vllm_usable(placement: Placement) -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return placement.is_cuda


def resolved_name(settings: BackendSettings, placement: Placement) -> str:
    """``backend.name`` with ``auto`` decided: vLLM where it is installed and a GPU is present, else hf."""
    if settings.name == "auto":
        return "vllm" if _vllm_usable(placement) else "hf"
    return settings.name


def make_backend(model_path: str, placement: Placement, settings: BackendSettings, **kwargs) -> Backend:
    """Build the backend named in config (``backend.name``)."""
    name = resolved_name(settings, placement)
    if name == "hf":
        from .hf import HFBackend

        return HFBackend(model_path, placement, settings, **kwargs)
    if name == "vllm":
        from .vllm_engine import VLLMBackend

        return VLLMBackend(model_path, placement, settings)
    if name == "server":
        from .vllm_server import ServerBackend

        return ServerBackend(model_path, settings)
    raise ValueError(f"config key 'backend.name' must be hf, vllm, server or auto, got {name!r}")
