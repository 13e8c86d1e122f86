"""Which torch device a command runs on: the one home of the ``auto`` rule."""

from __future__ import annotations

import torch

AUTO_DEVICE = "auto"
"""The device name that picks the first CUDA GPU where torch sees one, else the CPU."""


def pick_device(device: str = AUTO_DEVICE) -> torch.device:
    """``device`` as a :class:`torch.device`; ``auto`` is ``cuda`` where torch sees a GPU, else ``cpu``."""
    if device == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
