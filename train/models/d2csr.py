"""D2C-SR (Li et al., ECCV 2022): a divergence network of 4 tree-structured branches and a
convergence network that fuses their outputs with per-pixel softmax weights (METHODS.md 1.1-1.3,
from the official MegEngine code ``megvii-research/D2C-SR`` ``model/model.py``).

Data in [0, 1] RGB. The official frame: ``x - DIV2K mean`` (rgb_range 1, std 1; no x255 as in
EDSR/RCAN), and the mean added back to every branch output.

Divergence network (:class:`DivergenceNet`), every conv 3x3 with bias unless stated:

- head: conv 3 -> nf, giving ``h``;
- a node body is ``num_group`` residual groups then a conv, with no skip around the node. A
  residual group is ``num_block`` RCABs then a conv, plus its input (RCAN's, without res_scale).
  ``node="edsr"`` uses ``num_group * num_block`` EDSR residual blocks instead: the "D2C structure on
  another backbone" option;
- tree: parents ``p_i = node_i(h)`` (i = 1, 2), leaves ``l_ij = node_ij(p_i)`` (j = 1, 2);
- per leaf "deep residual" fusion with its own two convs: ``t = ra(l_ij) + p_i; t = rb(t) + h``;
- per leaf tail: EDSR's upsampler (no activation) then conv nf -> 3, plus the mean.

Convergence network (:class:`ConvergenceNet`): the 4 outputs concatenated (12 channels) -> conv
12->nf -> ReLU -> conv nf->nf -> ReLU -> conv nf->4 -> ReLU, all without bias; a softmax over the 4
channels gives per-pixel weights that sum to 1 (the ReLU before the softmax is the official code's);
``SR = sum_k w_k * o_k``.

Parameters with the defaults (nf 64, 2 groups x 4 RCABs per node, reduction 16), counted from the
official layer list: x2 5,178,700; x3 5,917,260; x4 5,769,548; x8 6,360,396 (divergence +
convergence; the MeanShift is a buffer here). The official code is MegEngine only, so no official
PyTorch weights exist to map.

``forward(x)`` is the fused output; :meth:`D2CSR.outputting` switches it to one branch or to the
weight maps (4 channels), so tiled inference, self-ensemble and ``realsr eval --branches`` reuse
the ordinary inference path. Channel attention pools over the whole input, so tiled inference is
close to, not equal to, whole-image inference.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError

from .base import SRNet, register
from .edsr import DIV2K_MEAN, ResBlock, Upsample
from .rcan import ResidualGroup

#: branch names in output order (parent, child), as the paper's tree
BRANCHES = ("11", "12", "21", "22")


def _conv(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


def node_body(kind: str, nf: int, num_group: int, num_block: int, reduction: int) -> nn.Sequential:
    """One tree node: ``num_group`` RCAN residual groups + conv (``rcan``), or
    ``num_group * num_block`` EDSR residual blocks + conv (``edsr``); no skip around the node."""
    if kind == "rcan":
        layers: list[nn.Module] = [ResidualGroup(nf, num_block, reduction, 1.0) for _ in range(num_group)]
    elif kind == "edsr":
        layers = [ResBlock(nf, 1.0) for _ in range(num_group * num_block)]
    else:
        raise UsageError(f"d2csr: node must be 'rcan' or 'edsr', not {kind!r}")
    return nn.Sequential(*layers, _conv(nf, nf))


class DivergenceNet(nn.Module):
    """Head, 2 parent nodes, 4 leaf nodes, per-leaf residual convs and tails; returns the 4 branch
    outputs, each (B, 3, s*h, s*w) in [0, 1] units (not clamped), in :data:`BRANCHES` order."""

    def __init__(self, scale: int, nf: int, num_group: int, num_block: int, reduction: int, node: str):
        super().__init__()
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = _conv(3, nf)
        self.parents = nn.ModuleList(node_body(node, nf, num_group, num_block, reduction) for _ in range(2))
        self.leaves = nn.ModuleList(node_body(node, nf, num_group, num_block, reduction) for _ in range(4))
        # res_conv1..8 of the official code: (ra, rb) per leaf
        self.res_convs = nn.ModuleList(nn.ModuleList([_conv(nf, nf), _conv(nf, nf)]) for _ in range(4))
        self.tails = nn.ModuleList(nn.Sequential(Upsample(scale, nf), _conv(nf, 3)) for _ in range(4))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.head(x - self.mean)
        parents = [p(h) for p in self.parents]
        outs = []
        for k, (leaf, (ra, rb), tail) in enumerate(zip(self.leaves, self.res_convs, self.tails)):
            p = parents[k // 2]
            t = ra(leaf(p)) + p
            t = rb(t) + h
            outs.append(tail(t) + self.mean)
        return outs


class ConvergenceNet(nn.Module):
    """Per-pixel softmax fusion of the 4 branch outputs: ``(SR, weights)``; weights (B, 4, H, W)
    sum to 1 at every pixel."""

    def __init__(self, nf: int = 64, branches: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3 * branches, nf, 3, padding=1, bias=False), nn.ReLU(True),
                                  nn.Conv2d(nf, nf, 3, padding=1, bias=False), nn.ReLU(True),
                                  nn.Conv2d(nf, branches, 3, padding=1, bias=False), nn.ReLU(True))

    def forward(self, outs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        w = F.softmax(self.body(torch.cat(outs, 1)), dim=1)
        sr = sum(w[:, k:k + 1] * o for k, o in enumerate(outs))
        return sr, w


@register
class D2CSR(SRNet):
    """D2C-SR: :class:`DivergenceNet` (``self.divergence``) + :class:`ConvergenceNet`
    (``self.convergence``); 5,769,548 parameters at x4 with the defaults."""

    arch = "d2csr"
    scales = (2, 3, 4, 8)
    branch_names = BRANCHES

    def __init__(self, scale: int = 4, num_feat: int = 64, num_group: int = 2, num_block: int = 4,
                 reduction: int = 16, node: str = "rcan"):
        super().__init__(scale)
        if num_group < 1 or num_block < 1 or num_feat // reduction < 1:
            raise UsageError("d2csr: num_group and num_block must be >= 1 and num_feat // reduction >= 1")
        self.divergence = DivergenceNet(scale, num_feat, num_group, num_block, reduction, node)
        self.convergence = ConvergenceNet(num_feat, len(BRANCHES))
        self._output = "fused"

    @contextlib.contextmanager
    def outputting(self, what: str) -> Iterator["D2CSR"]:
        """Within the block ``forward`` returns ``what``: ``fused`` (default), a branch name of
        :data:`BRANCHES` (its RGB output), or ``weights`` (the 4 weight maps as channels)."""
        if what not in ("fused", "weights", *BRANCHES):
            raise UsageError(f"d2csr output must be fused, weights or one of {', '.join(BRANCHES)}, not {what!r}")
        old, self._output = self._output, what
        try:
            yield self
        finally:
            self._output = old

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.divergence(x)
        if self._output in BRANCHES:
            return outs[BRANCHES.index(self._output)]
        sr, w = self.convergence(outs)
        return w if self._output == "weights" else sr
