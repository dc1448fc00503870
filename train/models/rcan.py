"""RCAN (Zhang et al., ECCV 2018) with BasicSR's parameter names; the official checkpoints
(yulunzhang/RCAN, also sanghyun-son/EDSR-PyTorch ``model/rcan.py``) load through
:meth:`RCAN.map_state`.

Data in [0, 1] RGB, with EDSR's frame (:class:`~realsr.train.models.edsr.MeanShifted`):
``(x - DIV2K mean) * 255``, conv3x3 3->nf, ``num_group`` residual groups, conv3x3 + global skip,
EDSR's upsampler (x2^n: n x [conv nf->4nf, shuffle 2]; x3: conv nf->9nf, shuffle 3), conv3x3
nf->3, ``/ 255 + mean``. A residual group is ``num_block`` RCABs then conv3x3, plus the group
input. An RCAB is conv3x3, ReLU, conv3x3, channel attention (global average pool, 1x1 nf->nf/r,
ReLU, 1x1 nf/r->nf, sigmoid, channel-wise product), times ``res_scale``, plus its input. The
official code ignores ``res_scale`` (the multiply is commented out), so keep it at 1 for
official weights.

The channel attention pools over the whole image, so tiled inference is not exactly whole-image
inference (no receptive radius is declared).

Parameters: 15,592,355 at x4 with the defaults (10 groups x 20 RCABs, nf 64, reduction 16); the
official 15,592,379 counts the two frozen ``MeanShift`` 1x1 convs too (2 x 12 values), which
:meth:`map_state` drops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from realsr.errors import UsageError

from .base import register
from .edsr import MeanShifted, indices, upsample_scale


class ChannelAttention(nn.Module):
    """``x * sigmoid(conv(relu(conv(avgpool(x)))))``; names ``attention.1`` / ``attention.3``."""

    def __init__(self, nf: int, reduction: int):
        super().__init__()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(nf, nf // reduction, 1), nn.ReLU(True),
                                       nn.Conv2d(nf // reduction, nf, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel attention block: ``x + res_scale * CA(conv(relu(conv(x))))``."""

    def __init__(self, nf: int, reduction: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(True), nn.Conv2d(nf, nf, 3, padding=1),
                                  ChannelAttention(nf, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.rcab(x)


class ResidualGroup(nn.Module):
    """``x + conv(RCAB^num_block(x))``."""

    def __init__(self, nf: int, num_block: int, reduction: int, res_scale: float):
        super().__init__()
        self.residual_group = nn.Sequential(*(RCAB(nf, reduction, res_scale) for _ in range(num_block)))
        self.conv = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.residual_group(x))


@register
class RCAN(MeanShifted):
    """RCAN; 15,592,355 parameters at x4 with the defaults (the official 10 x 20 configuration;
    BasicSR's own default is 16 RCABs per group)."""

    arch = "rcan"
    scales = (2, 3, 4, 8)

    def __init__(self, scale: int = 4, num_feat: int = 64, num_group: int = 10, num_block: int = 20,
                 reduction: int = 16, res_scale: float = 1.0):
        super().__init__(scale)
        if reduction < 1 or num_feat // reduction < 1:
            raise UsageError(f"rcan: reduction {reduction} must be between 1 and num_feat ({num_feat})")
        self._frame(num_feat, nn.Sequential(*(ResidualGroup(num_feat, num_block, reduction, res_scale)
                                              for _ in range(num_group))))

    #: official RCAN names -> BasicSR's (``body.G.body.<num_block>`` is the group's conv,
    #: ``body.<num_group>`` the conv after the body)
    _KEY_MAP = ((r"^head\.0\.", "conv_first."),
                (r"^body\.(\d+)\.body\.(\d+)\.body\.([02])\.(weight|bias)$", r"body.\1.residual_group.\2.rcab.\3.\4"),
                (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.", r"body.\1.residual_group.\2.rcab.3.attention.1."),
                (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.", r"body.\1.residual_group.\2.rcab.3.attention.3."),
                (r"^body\.(\d+)\.body\.\d+\.(weight|bias)$", r"body.\1.conv.\2"),
                (r"^body\.\d+\.(weight|bias)$", r"conv_after_body.\1"),
                (r"^tail\.0\.(\d+)\.", r"upsample.\1."), (r"^tail\.1\.", "conv_last."))

    @classmethod
    def args_from_state(cls, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """num_group, num_block (of group 0), num_feat, reduction and scale, where present."""
        out: dict[str, Any] = {}
        # 0 groups / blocks for foreign states: a cheap misfit in recognise()
        out["num_group"] = len(indices(state, r"body\.(\d+)\.conv\.weight"))
        out["num_block"] = len(indices(state, r"body\.0\.residual_group\.(\d+)\.rcab\.0\.weight"))
        w = state.get("conv_first.weight")
        if w is not None and w.ndim == 4:
            out["num_feat"] = nf = int(w.shape[0])
            squeeze = state.get("body.0.residual_group.0.rcab.3.attention.1.weight")
            if squeeze is not None and squeeze.ndim == 4 and 0 < squeeze.shape[0] <= nf:
                out["reduction"] = nf // int(squeeze.shape[0])
            if (scale := upsample_scale(state, nf)) is not None:
                out["scale"] = scale
        return out
