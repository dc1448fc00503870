"""DDNSR's dual-input degradation network (Li, Chen, Li, Liu, Pattern Anal. Appl. 2023; METHODS.md
4.1; official ``muys1845/DDNSR`` ``method/networks.py`` ``degradation_network``).

``DegradationNet(hr, source)``: a clean HR batch ``(B, 3, H, W)`` and a *real, unpaired* LR batch
``(B, 3, H/s, W/s)`` (both RGB in [0, 1]) -> a synthetic LR ``(B, 3, H/s, W/s)`` that should look
like the real LR (its noise, blur, colour) while keeping the HR's content. Not an SR network, so it
is not in the SRNet registry; :mod:`realsr.train.ddnsr` trains it and
:mod:`realsr.degrade.learned` runs it as ``realsr degrade --mode network``.

Layers (all convolutions ``padding='same'`` with a bias; LReLU slope 0.2 = ``tf.nn.leaky_relu``):

- HR branch: conv3x3 nf; then per stride-2 stage ``i = 1 .. log2(s)``: conv3x3 ``nf * 2^i`` + LReLU,
  conv4x4 stride 2 ``nf * 2^i`` + LReLU; conv3x3 nf -> ``y`` (nf channels at LR resolution);
- source branch: ``source_layers`` x (conv3x3 ``nf * 2^i`` + LReLU), i = 0 .. 3 (64 .. 512), stride 1;
- ``y + conv3x3(ResBlock^blocks(conv3x3(concat(y, source features))))``: the residual lives in
  feature space (METHODS.md 4.6.1); ResBlock = conv3x3 + LReLU, conv3x3, identity skip;
- conv3x3 -> 3 channels, no activation, no clipping.

``input_type="single"`` is the paper's ablation: the source input is replaced by zeros (the branch
still exists, so the two variants have the same parameters). Scale 4 is the paper's (two stride-2
stages, 128 then 256 channels); other powers of two add or drop stages the same way.

TF ``'same'`` padding of the stride-2 4x4 convolutions on even inputs pads 1 on each side, the same
as PyTorch ``padding=1``; every stage input here is even because H and W are multiples of ``s``.
Initialisation is PyTorch's default, not Keras' Glorot-uniform (a documented deviation).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError

#: the model-file format name of a saved degradation network
FORMAT = "realsr-degradation/1"
ARCH = "ddnsr_degradation"
INPUT_TYPES = ("dual", "single")


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=1)  # k3 s1 and k4 s2 (even input): TF 'same'


class _ResBlock(nn.Module):
    def __init__(self, nf: int):
        super().__init__()
        self.c1, self.c2 = _conv(nf, nf), _conv(nf, nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.leaky_relu(self.c1(x), 0.2))


class DegradationNet(nn.Module):
    """DDNSR's degradation network (see the module docstring); ``scale`` a power of two."""

    def __init__(self, scale: int = 4, nf: int = 64, blocks: int = 8, source_layers: int = 4,
                 input_type: str = "dual"):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise UsageError(f"the DDNSR degradation network needs a power-of-2 scale, not {scale}")
        if input_type not in INPUT_TYPES:
            raise UsageError(f"input_type must be one of {', '.join(INPUT_TYPES)}, not {input_type!r}")
        if nf < 1 or blocks < 0 or source_layers < 1:
            raise UsageError("the degradation network needs nf >= 1, blocks >= 0 and source_layers >= 1")
        self.scale, self.input_type = int(scale), input_type
        self.arch_args: dict[str, Any] = {"scale": scale, "nf": nf, "blocks": blocks,
                                          "source_layers": source_layers, "input_type": input_type}
        stages = int(math.log2(scale))
        hr: list[nn.Module] = [_conv(3, nf)]
        c = nf
        for i in range(1, stages + 1):
            hr += [_conv(c, nf << i), nn.LeakyReLU(0.2), _conv(nf << i, nf << i, 4, 2), nn.LeakyReLU(0.2)]
            c = nf << i
        hr.append(_conv(c, nf))
        self.hr_branch = nn.Sequential(*hr)
        src: list[nn.Module] = []
        c = 3
        for i in range(source_layers):
            src += [_conv(c, nf << i), nn.LeakyReLU(0.2)]
            c = nf << i
        self.source_branch = nn.Sequential(*src)
        self.fuse = _conv(nf + c, nf)
        self.body = nn.Sequential(*[_ResBlock(nf) for _ in range(blocks)])
        self.body_out = _conv(nf, nf)
        self.out = _conv(nf, 3)
        # LR pixels one output pixel depends on: the LR-side 3x3 convs (fuse, 2 per block, body_out,
        # out), plus the wider of the two branches: the source's one per layer; the HR branch's
        # reach in HR px (head 1, per stage i the 3x3 reaching 2^(i-1) and the 4x4 s2 reaching
        # 2^i) in LR px, rounded up, plus its LR-resolution tail conv
        hr_reach = math.ceil((1 + sum(3 * 2 ** (i - 1) for i in range(1, stages + 1))) / scale) + 1
        self.receptive_radius = 2 * blocks + 3 + max(source_layers, hr_reach) + 1

    def forward(self, hr: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``hr`` (B, 3, H, W), ``source`` (B, 3, H/s, W/s), both [0, 1] RGB -> LR (B, 3, H/s, W/s),
        unclipped."""
        s = self.scale
        if hr.shape[-2] % s or hr.shape[-1] % s:
            raise ValueError(f"HR {hr.shape[-1]}x{hr.shape[-2]} is not a multiple of the scale x{s}")
        want = (hr.shape[-2] // s, hr.shape[-1] // s)
        if tuple(source.shape[-2:]) != want:
            raise ValueError(f"the source LR must be {want[1]}x{want[0]} (HR / {s}), got "
                             f"{source.shape[-1]}x{source.shape[-2]}")
        y = self.hr_branch(hr)
        n = self.source_branch(source if self.input_type == "dual" else torch.zeros_like(source))
        y = y + self.body_out(self.body(self.fuse(torch.cat([y, n], 1))))
        return self.out(y)


def save_degradation(path: str | os.PathLike, net: DegradationNet, extra: dict[str, Any] | None = None) -> None:
    """Write ``net`` as a safetensors file with ``{"format", "arch", "arch_args", "scale"}`` metadata
    (atomically); ``extra``: more JSON metadata (training run, iteration)."""
    from realsr.train.weights import write_safetensors

    meta = {"format": FORMAT, "arch": ARCH, "arch_args": json.dumps(net.arch_args, sort_keys=True),
            "scale": str(net.scale)}
    if extra:
        meta["extra"] = json.dumps(extra, sort_keys=True)
    write_safetensors(path, {k: v.detach().cpu() for k, v in net.state_dict().items()}, meta)


def load_degradation(path: str | os.PathLike) -> DegradationNet:
    """A :class:`DegradationNet` from a file :func:`save_degradation` wrote (e.g.
    ``RUN/degradation.safetensors`` of a DDNSR run), in eval mode on the CPU. :class:`UsageError`
    for a missing or unreadable file, another kind of file, or weights that do not fit."""
    from realsr.train.weights import load_error_detail, read_safetensors

    state, meta = read_safetensors(path)
    if meta.get("format") != FORMAT or meta.get("arch") != ARCH:
        raise UsageError(f"not a DDNSR degradation network file (format {meta.get('format')!r}, arch "
                         f"{meta.get('arch')!r}); train one with method: ddnsr (RUN/degradation.safetensors)", path)
    try:
        args = json.loads(meta["arch_args"])
        net = DegradationNet(**args)
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise UsageError(f"the degradation network's weights do not fit its arguments ({load_error_detail(e)})", path) from None
    return net.eval()
