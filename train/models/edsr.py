"""EDSR (Lim et al., CVPRW 2017) with BasicSR's parameter names (``conv_first``, ``body.N.conv1/conv2``,
``conv_after_body``, ``upsample.*``, ``conv_last``); the official EDSR-PyTorch checkpoints
(sanghyun-son/EDSR-PyTorch, ``head.0``, ``body.N.body.{0,2}``, ``body.<num_block>``, ``tail.0.*``,
``tail.1``, ``sub_mean`` / ``add_mean``) load through :meth:`EDSR.map_state`.

Data in [0, 1] RGB. As in BasicSR: ``x' = (x - mean) * 255`` with the DIV2K RGB mean
(0.4488, 0.4371, 0.4040), conv3x3 3->nf, ``num_block`` residual blocks (conv3x3, ReLU, conv3x3,
residual scaled by ``res_scale``, no BN), conv3x3 + global skip, upsampler (conv3x3 nf->4nf +
pixel shuffle 2, once per factor 2; x3: conv3x3 nf->9nf + pixel shuffle 3; no activation),
conv3x3 nf->3, then ``y / 255 + mean``. This equals the official network run at ``rgb_range``
255 (whose fixed ``MeanShift`` 1x1 convs add and subtract ``255 * mean``).

Parameter counts (this module = BasicSR's state dict; the mean is a non-persistent buffer):
EDSR-baseline (nf 64, 16 blocks, res_scale 1) x2 1,369,859, x3 1,554,499, x4 1,517,571; the
paper's EDSR (nf 256, 32 blocks, res_scale 0.1) x4 43,089,923. The official EDSR-PyTorch state
dicts hold 24 more values (``sub_mean`` and ``add_mean``: 3x3x1x1 weight + 3 bias each, frozen),
e.g. 1,517,595 at x4 baseline; :meth:`map_state` drops them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from .base import SRNet, register

#: DIV2K RGB mean in [0, 1] units (EDSR, RCAN, BasicSR)
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
#: the networks work on (x - mean) * IMG_RANGE
IMG_RANGE = 255.0


class Upsample(nn.Sequential):
    """EDSR's upsampler, BasicSR's indices: x2^n = n x (conv3x3 nf->4nf, PixelShuffle(2)) at
    ``0, 2, 4``; x3 = conv3x3 nf->9nf, PixelShuffle(3). No activation."""

    def __init__(self, scale: int, nf: int):
        if scale & (scale - 1) == 0:
            layers: list[nn.Module] = []
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(nf, 4 * nf, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers = [nn.Conv2d(nf, 9 * nf, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"upsampler supports 2^n and 3, not {scale}")
        super().__init__(*layers)


class MeanShifted(SRNet):
    """Shared frame of EDSR and RCAN: [0, 1] in and out, ``(x - DIV2K mean) * 255`` inside."""

    pixel_range = 1.0
    #: (regex, replacement) rules from the official code's parameter names to these
    _KEY_MAP: tuple[tuple[str, str], ...] = ()

    @classmethod
    def map_state(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official names -> BasicSR's; the fixed MeanShift convs (``sub_mean``/``add_mean``) dropped."""
        return rename(state, cls._KEY_MAP, drop=("sub_mean.", "add_mean."))

    def _frame(self, num_feat: int, body: nn.Module) -> None:
        """conv_first (3 -> num_feat), ``body``, conv_after_body, the upsampler and conv_last."""
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, num_feat, 3, padding=1)
        self.body = body
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = Upsample(self.scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first((x - self.mean) * IMG_RANGE)
        feat = feat + self.conv_after_body(self.body(feat))
        return self.conv_last(self.upsample(feat)) / IMG_RANGE + self.mean


def rename(state: dict[str, torch.Tensor], rules: Iterable[tuple[str, str]],
           drop: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """``state`` with each key rewritten by the first matching ``(pattern, replacement)`` rule
    (keys no rule matches stay); keys starting with one of ``drop`` are left out."""
    out = {}
    for k, v in state.items():
        if k.startswith(drop):
            continue
        for pat, rep in rules:
            new, n = re.subn(pat, rep, k)
            if n:
                k = new
                break
        out[k] = v
    return out


def indices(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern``'s first group over the keys of ``state``."""
    return sorted({int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))})


def upsample_scale(state: dict[str, torch.Tensor], nf: int) -> int | None:
    """The scale an ``upsample.*`` stack in ``state`` implements (None when it is not one of ours)."""
    convs = indices(state, r"upsample\.(\d+)\.weight")
    if not convs or convs != list(range(0, 2 * len(convs), 2)):
        return None
    ratio = state[f"upsample.{convs[0]}.weight"].shape[0] // max(nf, 1)
    if ratio == 9 and len(convs) == 1:
        return 3
    return 2 ** len(convs) if ratio == 4 else None


class ResBlock(nn.Module):
    """BasicSR's ``ResidualBlockNoBN``: ``x + res_scale * conv2(relu(conv1(x)))``."""

    def __init__(self, nf: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(torch.relu(self.conv1(x)))


@register
class EDSR(MeanShifted):
    """EDSR; defaults = EDSR-baseline (1,517,571 parameters at x4). The paper's EDSR is
    ``num_feat=256, num_block=32, res_scale=0.1`` (43,089,923 at x4)."""

    arch = "edsr"
    scales = (2, 3, 4)

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, res_scale: float = 1.0):
        super().__init__(scale)
        self._frame(num_feat, nn.Sequential(*(ResBlock(num_feat, res_scale) for _ in range(num_block))))

    #: official EDSR-PyTorch names -> BasicSR's (``body.<num_block>`` is the conv after the body)
    _KEY_MAP = ((r"^head\.0\.", "conv_first."),
                (r"^body\.(\d+)\.body\.0\.(weight|bias)$", r"body.\1.conv1.\2"),
                (r"^body\.(\d+)\.body\.2\.(weight|bias)$", r"body.\1.conv2.\2"),
                (r"^body\.\d+\.(weight|bias)$", r"conv_after_body.\1"),
                (r"^tail\.0\.(\d+)\.", r"upsample.\1."), (r"^tail\.1\.", "conv_last."))

    @classmethod
    def args_from_state(cls, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """num_block, num_feat, scale; ``res_scale`` 0.1 for the paper's EDSR shape (256 x 32),
        which the weights cannot show but the official large models were trained with."""
        out: dict[str, Any] = {}
        blocks = indices(state, r"body\.(\d+)\.conv1\.weight")
        out["num_block"] = len(blocks)  # 0 for foreign states: a cheap misfit in recognise()
        w = state.get("conv_first.weight")
        if w is not None and w.ndim == 4:
            out["num_feat"] = nf = int(w.shape[0])
            if (scale := upsample_scale(state, nf)) is not None:
                out["scale"] = scale
            if nf == 256 and len(blocks) == 32:
                out["res_scale"] = 0.1
        return out
