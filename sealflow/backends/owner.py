"""One owner of the device at a time: the training model or the generation engine.

A job that both trains and generates (ARC test-time training, then answering) needs the
Hugging Face model for training and a backend for generation. A vLLM engine reserves
``backend.gpu_memory_utilization`` of the GPU when it starts (KV cache included) and keeps
it; an HF model loaded beside it, with its activations and optimizer state, gets what is
left, about 9 GB of an 80 GB GPU at 0.85. So :class:`DeviceOwner` hands the device over:
asking for the model shuts an engine down first, asking for an engine frees the model
first. The Hugging Face backend generates with the training model itself, so it is
built on that model and nothing is handed over (one load for the whole job).
"""

from __future__ import annotations

import gc
import logging
from typing import Callable

from ..devices import Placement
from . import make_backend, resolved_name
from .base import Backend, BackendSettings

log = logging.getLogger(__name__)


def release_device_memory(placement: Placement) -> None:
    """Return what freed tensors held to the device (the caching allocator keeps it otherwise)."""
    gc.collect()
    if placement.is_cuda:
        import torch

        torch.cuda.empty_cache()


class DeviceOwner:
    """The job's model and backend, never both on the device unless they are one model.

    ``load_model`` and ``build_backend`` default to :func:`sealflow.modeling.load_model` and
    :func:`sealflow.backends.make_backend`; ``handovers`` counts the shutdowns done to make room.
    """

    def __init__(self, model_path: str, placement: Placement, settings: BackendSettings, tokenizer,
                 load_model: Callable | None = None, build_backend: Callable | None = None):
        if load_model is None:
            from ..modeling import load_model
        self.model_path, self.placement, self.settings, self.tokenizer = model_path, placement, settings, tokenizer
        self._load_model = load_model
        self._build_backend = build_backend or make_backend
        self.shares_model = resolved_name(settings, placement) == "hf"
        self._model = None
        self._backend: Backend | None = None
        self.handovers = 0

    def model(self):
        """The training model; an engine that holds the device is shut down first."""
        if self._backend is not None and not self.shares_model:
            log.info("device hand-over: shutting the %s engine down before the training model loads",
                     self.settings.name)
            self._close_backend()
            self.handovers += 1
        if self._model is None:
            self._model = self._load_model(self.model_path, self.placement)
        return self._model

    def backend(self) -> Backend:
        """The generation backend; a training model that holds the device is freed first (HF: shared)."""
        if self._backend is not None:
            return self._backend
        if self.shares_model:
            self._backend = self._build_backend(self.model_path, self.placement, self.settings, model=self.model(),
                                                tokenizer=self.tokenizer)
            return self._backend
        if self._model is not None:
            log.info("device hand-over: freeing the training model before the %s engine starts", self.settings.name)
            self._model = None
            release_device_memory(self.placement)
            self.handovers += 1
        self._backend = self._build_backend(self.model_path, self.placement, self.settings)
        return self._backend

    def _close_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
            del backend
            release_device_memory(self.placement)

    def close(self) -> None:
        self._close_backend()
        self._model = None
        release_device_memory(self.placement)

    def __enter__(self) -> "DeviceOwner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
