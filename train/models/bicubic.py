"""``bicubic``: MATLAB ``imresize`` bicubic upscaling as a parameter-free "model", so every report
has its baseline and the inference path (tiles, ensemble, devices) can be checked without weights."""

from __future__ import annotations

import torch

from realsr.degrade.ops import resize

from .base import SRNet, register


@register
class Bicubic(SRNet):
    """Upscale by ``scale`` with MATLAB's bicubic (a = -0.5) and symmetric padding. [0, 1] data."""

    arch = "bicubic"
    pixel_range = 1.0
    receptive_radius = 2
    scales = tuple(range(1, 17))  # any integer scale the command line takes (--scale 1-16)

    def __init__(self, scale: int = 4):
        super().__init__(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return resize(x, (h * self.scale, w * self.scale), "bicubic")
