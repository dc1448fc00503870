"""D2C-SR training (METHODS.md 1.4-1.5): the divergence loss, its epoch schedule, and the
iteration of the divergence and convergence networks on the training engine (``method: d2c``).

Images are (B, 3, H, W) float in [0, 1] RGB. The official code loads BGR with ``cv2.imread``;
the divergence loss is symmetric in the channels (it uses their plain mean), so RGB gives the
same value.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from .config import D2CConfig
from .losses import pixel_loss

if TYPE_CHECKING:
    from .trainer import Trainer


def d2c_normalise(img: torch.Tensor) -> torch.Tensor:
    """The official ``norm``: the channel mean (B, 1, H, W), standardised by one scalar mean and
    standard deviation over the whole batch (not per image). MegEngine's ``F.std`` is the
    population deviation (divides by N), so ``correction=0``."""
    m = img.mean(dim=1, keepdim=True)
    return (m - m.mean()) / m.std(correction=0)


def triplet(anchor: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """``max(mean(anchor^2) - mean((anchor - negative)^2) + margin, 0)``: the official triplet term
    with the zero map as the positive."""
    return torch.clamp(anchor.pow(2).mean() - (anchor - negative).pow(2).mean() + margin, min=0)


def branch_residuals(outs: Sequence[torch.Tensor], hr: torch.Tensor) -> list[torch.Tensor]:
    """``|norm(o_k) - norm(HR)|`` per branch, each (B, 1, H, W)."""
    t = d2c_normalise(hr)
    return [(d2c_normalise(o) - t).abs() for o in outs]


def divergence_from_residuals(r: Sequence[torch.Tensor], margin_same: float = 2e-5, margin_diff: float = 5e-5,
                              sibling_weight: float = 0.8) -> torch.Tensor:
    """:func:`divergence_loss` on residuals already computed by :func:`branch_residuals`."""
    terms = []
    for i, j in itertools.permutations(range(len(r)), 2):
        sibling = i // 2 == j // 2
        t = triplet(r[i], r[j], margin_same if sibling else margin_diff)
        terms.append(t * sibling_weight if sibling else t)
    return torch.stack(terms).sum() / len(terms)


def divergence_loss(outs: Sequence[torch.Tensor], hr: torch.Tensor, margin_same: float = 2e-5,
                    margin_diff: float = 5e-5, sibling_weight: float = 0.8) -> torch.Tensor:
    """The unweighted D2C divergence loss: the mean over the 12 ordered branch pairs (i, j) of
    ``triplet(r_i, r_j, m)``, siblings (same parent: branches 0-1, 2-3) with ``margin_same`` and
    times ``sibling_weight``, cousins with ``margin_diff``. Multiply by the schedule's weight."""
    return divergence_from_residuals(branch_residuals(outs, hr), margin_same, margin_diff, sibling_weight)


@torch.no_grad()
def pairwise_distance(r: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over branch pairs of ``mean((r_i - r_j)^2)`` of residuals from :func:`branch_residuals`."""
    return torch.stack([(r[i] - r[j]).pow(2).mean() for i, j in itertools.combinations(range(len(r)), 2)]).mean()


def residual_distance(outs: Sequence[torch.Tensor], hr: torch.Tensor) -> torch.Tensor:
    """How far apart the branches' normalised residuals are (what the divergence loss pushes up)."""
    return pairwise_distance(branch_residuals([o.float() for o in outs], hr.float()))


def divergence_weight(it: int, c: D2CConfig, epoch_iterations: int) -> float:
    """The divergence loss weight at iteration ``it`` (0-based): the official per-epoch schedule
    (epoch = it // epoch_iterations), or ``c.weight`` throughout with ``schedule: always``."""
    if c.schedule == "always":
        return c.weight
    e = it // max(1, epoch_iterations)
    if e <= c.start_epoch or e % c.period_epochs >= c.on_epochs:
        return 0.0
    return c.weight * 0.5 ** (e // c.halve_epochs)


class D2CStep:
    """The D2C-SR iteration on a :class:`~realsr.train.trainer.Trainer` whose generator is a
    ``d2csr`` model. The trainer's generator optimiser holds the divergence network; this object
    owns the convergence network's optimiser and schedule (saved in checkpoints).

    ``joint``: D step on ``sum_k pixel(o_k, HR) + w_div * L_div``, then a fresh forward of the
    updated divergence network without gradients and a C step on ``pixel(fused, HR)``.
    ``sequential``: the D step alone before ``divergence_iterations``, the C step alone after."""

    def __init__(self, trainer: "Trainer"):
        from .trainer import _optimizer, lr_factor

        self.t = trainer
        cfg = trainer.cfg
        self.c = cfg.d2c
        self.opt = _optimizer(trainer.G.convergence.parameters(), cfg.optim.convergence)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda it: lr_factor(it, cfg))
        self.stage1 = self.c.divergence_iterations or cfg.optim.iterations // 2
        self.epoch_iterations = 1
        self.div: nn.Module = trainer.G.divergence
        self.conv: nn.Module = trainer.G.convergence

    @staticmethod
    def generator_parameters(G: nn.Module) -> Any:
        """What the trainer's generator optimiser steps: the divergence network."""
        return G.divergence.parameters()

    def wrap(self, wrap: Any) -> None:
        """Compile / DDP-wrap the two networks separately (each runs its own backward)."""
        self.div = wrap(self.t.G.divergence)
        self.conv = wrap(self.t.G.convergence)

    def set_epoch_size(self, images: int) -> None:
        """Iterations per epoch for the divergence schedule: ``d2c.epoch_iterations``, else the
        official ``N_train // batch``."""
        b = self.t.cfg.data.batch_size
        self.epoch_iterations = self.c.epoch_iterations or max(1, images // b)

    def _stages(self, it: int) -> tuple[bool, bool]:
        if self.c.mode == "joint":
            return True, True
        return it < self.stage1, it >= self.stage1

    def step(self, micro_batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Gradients and optimiser steps of one iteration; returns the mean loss terms."""
        t, L = self.t, self.t.cfg.losses.pixel
        it, acc = t.iteration, len(micro_batches)
        train_d, train_c = self._stages(it)
        w_div = divergence_weight(it, self.c, self.epoch_iterations)
        self.opt.zero_grad(set_to_none=True)
        inputs = [t._inputs(b, it, a) for a, b in enumerate(micro_batches)]
        sums: dict[str, torch.Tensor] = {}

        def add(name: str, v: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0) + v.detach().float() / acc

        t.G.divergence.requires_grad_(train_d)
        if train_d:
            for a, (lr, hr) in enumerate(inputs):
                with self._no_sync(self.div, a == acc - 1), t._autocast():
                    outs = [o.float() for o in self.div(lr)]
                    branch = L.weight * torch.stack([pixel_loss(o, hr, L.kind) for o in outs]).sum()
                    total = branch
                    # one set of normalised residuals serves the loss and the logged distance
                    with contextlib.nullcontext() if (w_div > 0 and self.c.in_graph) else torch.no_grad():
                        r = branch_residuals(outs, hr)
                    if w_div > 0 or not self.c.in_graph:
                        div = w_div * divergence_from_residuals(r, self.c.margin_same, self.c.margin_diff,
                                                                self.c.sibling_weight)
                        total = total + (div if self.c.in_graph else div.detach())
                        add("divergence", div)
                    t.scaler.scale(total / acc).backward()
                add("branches", branch)
                add("residual_distance", pairwise_distance(r))
            t._step(t.opt_g, t.G.divergence.parameters())
        if train_c:
            for a, (lr, hr) in enumerate(inputs):
                with torch.no_grad(), t._autocast():
                    outs = [o.float() for o in self.div(lr)]  # fresh: after the D step (METHODS 1.8.8)
                with self._no_sync(self.conv, a == acc - 1), t._autocast():
                    sr, _ = self.conv(outs)
                    conv = L.weight * pixel_loss(sr.float(), hr, L.kind)
                    t.scaler.scale(conv / acc).backward()
                add("convergence", conv)
            t._step(self.opt, t.G.convergence.parameters())
        t.G.divergence.requires_grad_(True)
        with warnings.catch_warnings():  # sequential: C does not step in stage 1; its schedule still follows
            warnings.filterwarnings("ignore", "Detected call of")
            self.sched.step()
        return sums

    def _no_sync(self, m: nn.Module, last: bool) -> Any:
        return m.no_sync() if (self.t.world > 1 and not last) else contextlib.nullcontext()

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        self.t._apply_optim_config(self.opt, self.sched, self.t.cfg.optim.convergence, "optim.convergence")
