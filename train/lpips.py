"""LPIPS (Zhang et al. 2018), AlexNet variant, version 0.1: the NTIRE/AIM real-world SR convention
(METHODS.md 7.5), written here because there is no torchvision CPU build and nothing may be downloaded.

``LPIPS(d) = sum_l mean_hw( w_l . (f_l(x) / |f_l(x)| - f_l(y) / |f_l(y)|)^2 )`` over the five ReLU
outputs of AlexNet's convolutional part, with inputs in [-1, 1] first shifted and scaled by the
ImageNet-derived constants of the reference code, features unit-normalised along channels
(eps 1e-10), and ``w_l`` the learned non-negative 1x1 "linear calibration" weights (``lin0`` ...
``lin4`` of the official ``v0.1/alex.pth``). The AlexNet weights come from a torchvision-format
state dict the user gives (``features.<i>.weight/bias``; the classifier is ignored).
Files are read with ``torch.load(weights_only=True)``; anything that needs unpickling is refused.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from realsr.errors import UsageError
from realsr.train.weights import load_error_detail, load_state

#: the reference code's input normalisation for [-1, 1] RGB
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: index of the ReLU after each of AlexNet's five convolutions in torchvision's ``features``
TAPS = (1, 4, 7, 9, 11)
CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layer for layer (same indices, so its state dict loads)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )


class LPIPS(nn.Module):
    """LPIPS-Alex v0.1. ``lin_path``: the calibration weights (``v0.1/alex.pth``); ``backbone_path``:
    torchvision AlexNet weights; ``random_backbone=True`` keeps a random AlexNet (plumbing tests only:
    the numbers then mean nothing)."""

    def __init__(self, lin_path: str | os.PathLike, backbone_path: str | os.PathLike | None = None,
                 random_backbone: bool = False):
        super().__init__()
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        lin = load_state(lin_path, "LPIPS calibration weights")
        try:
            for i, m in enumerate(self.lins):
                m.weight.data.copy_(lin[f"lin{i}.model.1.weight"])
        except (KeyError, RuntimeError) as e:
            raise UsageError(f"LPIPS calibration weights do not fit AlexNet v0.1 ({e})", lin_path) from None
        if backbone_path is not None:
            sd = load_state(backbone_path, "AlexNet weights")
            feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")} or sd
            try:
                self.features.load_state_dict(feats, strict=True)
            except RuntimeError as e:
                raise UsageError(f"not torchvision AlexNet weights ({load_error_detail(e)})", backbone_path) from None
        elif not random_backbone:
            raise UsageError("LPIPS needs AlexNet weights: give a torchvision alexnet state dict "
                             "(e.g. alexnet-owt-7be5be79.pth); nothing is downloaded")
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Distance per image (B,) between (B, 3, H, W) RGB batches, in [0, 1] when ``normalize``
        (mapped to [-1, 1]) or already in [-1, 1]."""
        if normalize:
            x, y = 2 * x - 1, 2 * y - 1
        fx, fy = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        total = x.new_zeros(x.shape[0])
        tap = 0
        for i, layer in enumerate(self.features):
            fx, fy = layer(fx), layer(fy)
            if i in TAPS:
                nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                total = total + self.lins[tap]((nx - ny) ** 2).mean(dim=(1, 2, 3))
                tap += 1
                if tap == len(TAPS):
                    break
        return total
