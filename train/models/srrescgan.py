"""SRResCGAN's super-resolution generator G_SR (Umer et al., CVPRW 2020; also SRResCycGAN's G_SR),
as in METHODS.md 3.1, with the official checkpoint's parameter names (it loads without a key map).

Data in [0, 255] RGB. ``y = clip(x_up - P(z), 0, 255)`` where ``x_up`` is the bilinear x``scale``
upsampling of the LR image (align_corners=False), ``z`` the ResDNet residual (weight-normalised
5x5 conv, ``depth`` pre-activation blocks with PReLU and reflect padding, the first without skip,
weight-normalised 5x5 transposed conv) and ``P`` the L2 projection onto the ball of radius
``exp(alpha) * sigma * sqrt(C*H*W - 1)``, sigma being the wavelet-MAD noise estimate of ``x_up``.

The projection norm and sigma are global over the image: for tiled inference ``local_forward``
returns ``[x_up, z]`` (6 channels) and ``finish`` applies the projection on the assembled image, so
tiled output equals untiled output (the official tiled "chop" forward does not).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import SRNet, register

#: Daubechies-7 high-pass decomposition filter (14 taps), in the order the official estimator
#: correlates with
DB7_HIGH = (-0.07785205408506236, 0.39653931948230575, -0.7291320908465551, 0.4697822874053586,
            0.14390600392910627, -0.22403618499416572, -0.07130921926705004, 0.0806126091510659,
            0.03802993693503463, -0.01657454163101562, -0.012550998556013784, 0.00042957797300470274,
            0.0018016407039998328, 0.0003537138000010399)


def wmad_sigma(x: torch.Tensor) -> torch.Tensor:
    """Noise standard deviation per image (B,) in the units of ``x`` [0, 255]: the median absolute
    diagonal (HH) db7 wavelet coefficient / 0.6745, averaged over channels. The coefficients are
    computed on ``x / 255`` (as the official code, for images whose maximum exceeds 1; decided per
    image here, per batch there) with reflect padding of 7 and stride 2 along rows then columns;
    the median is the lower median (torch's). No gradient flows through it; it runs in fp32 even
    inside a bf16/fp16 autocast region (the median of half-precision coefficients is quantised)."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        b, c = x.shape[:2]
        peak = x.flatten(1).amax(dim=1).view(b, 1, 1, 1)
        x = torch.where(peak > 1, x / 255.0, x).float()
        k = torch.tensor(DB7_HIGH, dtype=x.dtype, device=x.device).view(1, 1, -1, 1).repeat(c, 1, 1, 1)
        p = len(DB7_HIGH) // 2
        d = F.conv2d(F.pad(x, (0, 0, p, p), mode="reflect"), k, stride=(2, 1), groups=c)
        d = F.pad(d, (p, p, 0, 0), mode="reflect").transpose(2, 3)
        d = F.conv2d(d, k, stride=(2, 1), groups=c)
        med = d.abs().flatten(2).median(dim=2).values / 0.6745  # (B, C)
        return med.mean(dim=1) * 255.0


def l2_project(z: torch.Tensor, sigma: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``z * eps / max(||z||, eps)`` per image, ``eps = exp(alpha) * sigma * sqrt(C*H*W - 1)``, the
    norm over all of an image's elements."""
    n = z[0].numel()
    eps = (torch.exp(alpha.float()) * sigma.float() * math.sqrt(n - 1)).view(-1, 1, 1, 1)
    norm = z.float().flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (z.float() * (eps / torch.maximum(norm, eps))).to(z.dtype)


class WNConv(nn.Module):
    """A weight-normalised (dim 0) convolution or transposed convolution with bias, holding the
    parameters ``weight_g``, ``weight_v``, ``bias`` like ``torch.nn.utils.weight_norm``."""

    def __init__(self, cin: int, cout: int, k: int, transposed: bool = False, padding: int = 0):
        super().__init__()
        self.transposed, self.padding = transposed, padding
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        v = torch.empty(shape)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1, 1).clone())
        self.bias = nn.Parameter(torch.zeros(cout))

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        return v * (self.weight_g / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, self.weight(), self.bias, padding=self.padding)
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class PreActBlock(nn.Module):
    """PReLU -> reflect pad 1 -> WN conv3x3 -> PReLU -> reflect pad 1 -> WN conv3x3 (+ x if skip)."""

    def __init__(self, features: int, skip: bool):
        super().__init__()
        self.skip = skip
        self.relu1 = nn.PReLU(features, init=0.1)
        self.conv1 = WNConv(features, features, 3)
        self.relu2 = nn.PReLU(features, init=0.1)
        self.conv2 = WNConv(features, features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.pad(self.relu1(x), (1, 1, 1, 1), mode="reflect"))
        out = self.conv2(F.pad(self.relu2(out), (1, 1, 1, 1), mode="reflect"))
        return x + out if self.skip else out


class ResDNet(nn.Module):
    """The residual branch: reflect pad 2 + WN conv5x5, ``depth`` blocks, WN transposed conv5x5."""

    def __init__(self, depth: int, features: int, channels: int):
        super().__init__()
        self.conv1 = WNConv(channels, features, 5)
        self.layer1 = nn.Sequential(*(PreActBlock(features, skip=i > 0) for i in range(depth)))
        self.conv_out = WNConv(features, channels, 5, transposed=True, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.layer1(self.conv1(F.pad(x, (2, 2, 2, 2), mode="reflect"))))


@register
class SRResCGAN(SRNet):
    """G_SR of SRResCGAN / SRResCycGAN: 380,356 parameters at the defaults."""

    arch = "srrescgan"
    pixel_range = 255.0
    scales = (2, 3, 4)

    def __init__(self, scale: int = 4, depth: int = 5, features: int = 64, channels: int = 3):
        super().__init__(scale)
        self.channels = channels
        self.model = ResDNet(depth, features, channels)
        self.alpha = nn.Parameter(torch.tensor([math.log(2.0)]))
        self.receptive_radius = 1 + math.ceil((4 + 2 * depth) / scale)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)

    def local_forward(self, x: torch.Tensor) -> torch.Tensor:
        x_up = self.upsample(x)
        return torch.cat([x_up, self.model(x_up)], dim=1)

    def _residual(self, x_up: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``clip(x_up - P(z), 0, 255)`` with sigma from ``x_up``: the image-global part."""
        return (x_up - l2_project(z, wmad_sigma(x_up), self.alpha.to(z.device))).clamp(0.0, 255.0)

    @property
    def min_input_size(self) -> int:
        """The noise estimate reflect-pads the output by 7 px (db7): the output side must exceed 7."""
        return 7 // self.scale + 1

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        return self._residual(y[:, :self.channels], y[:, self.channels:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_up = self.upsample(x)
        return self._residual(x_up, self.model(x_up))

    @classmethod
    def args_from_state(cls, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        blocks = {k.split(".")[2] for k in state if k.startswith("model.layer1.")}
        v = state.get("model.conv1.weight_v")
        out = {"depth": len(blocks)} if blocks else {}
        if v is not None:
            out.update(features=int(v.shape[0]), channels=int(v.shape[1]))
        return out
