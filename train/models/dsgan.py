"""DSGAN's degradation generator (Fritsche, Gu, Timofte, "Frequency Separation for Real-World
Super-Resolution", ICCVW 2019), as SRResCGAN used it to make its training LR images (METHODS.md 3.2).

Not an SR network (it maps an image to an image of the same size), so it is not in the SRNet
registry; :mod:`realsr.degrade.learned` runs it as the ``dsgan`` degradation.

Architecture (official ``RaoUmer/SRResCGAN`` ``training_codes/models/DSGAN.py``, identical to
``manuelfritsche/real-world-sr`` ``dsgan/model.py``):

- ``block_input``: conv3x3 3->64 (bias, zero padding 1) -> PReLU with *one* shared slope;
- ``res_blocks``: 8 x [conv3x3 64->64 -> PReLU (one slope) -> conv3x3 64->64] + identity skip,
  nothing after the addition;
- ``block_output``: conv3x3 64->3 -> sigmoid. No global skip: the output is the sigmoid itself.

Values: input RGB float in [0, 1] (``TF.to_tensor`` of the bicubic-downscaled image), output RGB
in (0, 1). 594,380 parameters (1,792 + 1 + 8 x (2 x 36,928 + 1) + 1,731). The official state dict
(``300_G.pth``) uses these module names, so it loads without a key map. Every layer is a 3x3
convolution (18 of them), so an output pixel sees 18 input pixels around it
(:data:`RECEPTIVE_RADIUS`); zero padding at the image border.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from realsr.errors import UsageError

#: parameters of the official generator (8 residual blocks, 64 features)
PARAMETERS = 594_380
#: input pixels on each side that one output pixel depends on (18 stacked 3x3 convolutions)
RECEPTIVE_RADIUS = 18


class ResidualBlock(nn.Module):
    """conv3x3 -> PReLU (one slope) -> conv3x3, plus the input."""

    def __init__(self, features: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.prelu(self.conv1(x)))


class DSGANGenerator(nn.Module):
    """The DSGAN generator: (B, 3, h, w) in [0, 1] -> (B, 3, h, w) in (0, 1) (see the module docstring)."""

    def __init__(self, n_res_blocks: int = 8, features: int = 64):
        super().__init__()
        self.block_input = nn.Sequential(nn.Conv2d(3, features, 3, padding=1), nn.PReLU())
        self.res_blocks = nn.ModuleList(ResidualBlock(features) for _ in range(n_res_blocks))
        self.block_output = nn.Conv2d(features, 3, 3, padding=1)
        self.receptive_radius = 2 + 2 * n_res_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block_input(x)
        for block in self.res_blocks:
            y = block(y)
        return torch.sigmoid(self.block_output(y))


def check_fit(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """:class:`UsageError` unless ``state`` has exactly ``model``'s parameter names and shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:3]) + (f" and {len(xs) - 3} more" if len(xs) > 3 else "")

        parts = [f"missing {few(missing)}" if missing else "", f"unexpected {few(unexpected)}" if unexpected else "",
                 f"wrong shape {few(shapes)}" if shapes else ""]
        raise UsageError("not a DSGAN generator state dict (" + "; ".join(p for p in parts if p) + ")", path)


def n_blocks_of(state: dict[str, torch.Tensor]) -> int:
    """The number of residual blocks a DSGAN state dict holds (0 when it holds none)."""
    idx = {k.split(".")[1] for k in state if k.startswith("res_blocks.") and k.count(".") >= 2}
    return len(idx)


def load_dsgan(path: str | os.PathLike) -> DSGANGenerator:
    """The DSGAN generator with the weights of ``path`` (the official ``300_G.pth``, or any state dict
    of the same layout, read with ``weights_only``), in eval mode on the CPU, without gradients.
    :class:`UsageError` when the file is missing, unreadable or not a DSGAN generator; the names and
    shapes must fit exactly (the number of residual blocks is read off the file)."""
    from realsr.train.weights import load_state

    state = load_state(path, "DSGAN weights")
    conv = state.get("block_input.0.weight")
    features = int(conv.shape[0]) if conv is not None and conv.ndim == 4 else 64
    model = DSGANGenerator(n_res_blocks=n_blocks_of(state) or 8, features=features)
    check_fit(model, state, path)
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise UsageError("DSGAN weights hold NaN or infinity", path)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.eval().requires_grad_(False)
    return model
