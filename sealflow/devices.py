"""Device and dtype choice: bf16 on GPUs that support it, float32 elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a placement is resolved: stages that load no model never pay for it
    import torch


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def resolve_placement(device: str = "auto") -> Placement:
    """Map the config's ``device: auto|cpu|cuda`` to a torch device and dtype."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config key 'device' must be auto, cpu or cuda, got {device!r}")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but no CUDA device is visible to this job")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return Placement(torch.device("cpu"), torch.float32)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Placement(torch.device("cuda"), dtype)
