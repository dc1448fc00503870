"""ESRGAN's RRDBNet (Wang et al. 2018), with BasicSR's parameter names; ESRGAN's original names
(``RRDB_trunk``, ``trunk_conv``, ``upconv1`` ...) load through :meth:`RRDBNet.map_state`.

Data in [0, 1] RGB. conv3x3 3->nf, ``nb`` residual-in-residual dense blocks (3 dense blocks of 5
convs with growth ``gc``, LeakyReLU 0.2, residual scaling 0.2 at both levels), conv3x3, global skip,
two (nearest x2 -> conv3x3 -> LReLU) upsamplings, conv3x3 + LReLU, conv3x3 -> 3. Scales 2 and 1 use
BasicSR's pixel-unshuffle of the input (4 or 16 times the input channels), so the body always
works at a quarter of the output size.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import SRNet, register


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing all earlier outputs; ``x + 0.2 * conv5(...)``."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(nf + (i - 1) * gc, gc, 3, padding=1))
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{i}")(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


@register
class RRDBNet(SRNet):
    """RRDBNet; 16,697,987 parameters at x4 with the defaults (nf 64, nb 23, gc 32)."""

    arch = "rrdbnet"
    pixel_range = 1.0
    scales = (1, 2, 4)

    def __init__(self, scale: int = 4, nf: int = 64, nb: int = 23, gc: int = 32, channels: int = 3):
        super().__init__(scale)
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(channels * unshuffle ** 2, nf, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(nb)))
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            h, w = x.shape[-2:]
            r = self.unshuffle
            x = F.pad(x, (0, -w % r, 0, -h % r), mode="reflect") if (h % r or w % r) else x
            x = F.pixel_unshuffle(x, r)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        if self.unshuffle > 1:
            out = out[..., : h * self.scale, : w * self.scale]
        return out

    #: ESRGAN's original parameter names -> BasicSR's
    _KEY_MAP = ((r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."), (r"^trunk_conv\.", "conv_body."),
                (r"^upconv1\.", "conv_up1."), (r"^upconv2\.", "conv_up2."), (r"^HRconv\.", "conv_hr."))

    @classmethod
    def map_state(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in state.items():
            for pat, rep in cls._KEY_MAP:
                k = re.sub(pat, rep, k)
            out[k] = v
        return out

    @classmethod
    def args_from_state(cls, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        blocks = {k.split(".")[1] for k in state if k.startswith("body.")}
        out: dict[str, Any] = {"nb": len(blocks)} if blocks else {}
        if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
            out["nf"] = int(state["conv_first.weight"].shape[0])
            out["gc"] = int(state["body.0.rdb1.conv1.weight"].shape[0])
            cin = int(state["conv_first.weight"].shape[1])
            cout = int(state["conv_last.weight"].shape[0]) if "conv_last.weight" in state else 3
            out["channels"] = cout
            out["scale"] = {1: 4, 4: 2, 16: 1}.get(cin // cout, 4)
        return out
