"""SRResCycGAN's LR side (METHODS.md 3.2): an LR generator ``G_LR`` (HR -> LR), an LR-domain
discriminator ``D_y`` and the cycle ``LR -> G_SR -> G_LR -> LR`` on the training engine
(config section ``cycle``, on when ``cycle.weight > 0``).

Per micro-batch, with ``y`` the LR batch and ``sr = G_SR(y)``:

- cycle: ``cycle.weight * L1(G_LR(sr), y)`` trains both generators (values in
  ``[0, losses.value_range]`` like the other losses);
- LR adversarial: ``cycle.gan_weight * adv(D_y(G_LR(sr)))`` trains ``G_LR`` (and ``G_SR`` through
  it), with the ``losses.gan.kind`` loss (RaGAN against ``D_y(y)``);
- ``D_y`` step: real ``y`` against ``G_LR(sr)`` detached.

SRResCycGAN's training code is not released and the paper's figure gives only "Conv - ResNet -
Conv" with stride-2 downsampling for ``G_LR`` (METHODS.md 3.2 marks the layer details unverified),
so :class:`LRGenerator` is this project's reading: conv3x3 3->nf + PReLU, log2(scale) stride-2
conv4x4 + PReLU, ``blocks`` residual blocks (conv3x3, PReLU, conv3x3, + input), conv3x3 nf->3,
plus the area-downscaled input as a global skip (so it starts near a plain downscale). Images in
[0, 1] RGB.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError

from .losses import discriminator_adv_loss, generator_adv_loss, pixel_loss
from .models.discriminators import build_discriminator

if TYPE_CHECKING:
    from .trainer import Trainer


class _ResBlock(nn.Module):
    def __init__(self, nf: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.PReLU(nf, 0.1), nn.Conv2d(nf, nf, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LRGenerator(nn.Module):
    """HR (B, 3, H, W) in [0, 1] -> LR (B, 3, H/scale, W/scale); ``scale`` a power of 2."""

    def __init__(self, scale: int = 4, nf: int = 64, blocks: int = 5):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise UsageError(f"cycle: the LR generator needs a power-of-2 scale, not {scale}")
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, nf, 3, padding=1), nn.PReLU(nf, 0.1)]
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(nf, nf, 4, stride=2, padding=1), nn.PReLU(nf, 0.1)]
        layers += [_ResBlock(nf) for _ in range(blocks)]
        layers.append(nn.Conv2d(nf, 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.scale) + self.body(x)


class CycleBranch:
    """Owns ``G_LR``, ``D_y``, their optimisers and schedules; the trainer calls
    :meth:`generator_terms` inside its generator step, :meth:`discriminator_backward` after its own
    D step and :meth:`step` after the optimiser steps."""

    def __init__(self, trainer: "Trainer"):
        from .trainer import _optimizer, lr_factor

        self.t = trainer
        c = trainer.cfg.cycle
        self.c = c
        self.G = LRGenerator(trainer.cfg.scale, **c.generator_args).to(trainer.device).train()
        self.D = build_discriminator(c.discriminator, **c.discriminator_args).to(trainer.device).train()
        o = trainer.cfg.optim
        self.opt_g = _optimizer(self.G.parameters(), o.generator)
        self.opt_d = _optimizer(self.D.parameters(), o.discriminator)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, lambda it: lr_factor(it, trainer.cfg))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda it: lr_factor(it, trainer.cfg))
        self.G_train, self.D_train = self.G, self.D
        self._fake: list[torch.Tensor] = []

    def wrap(self, wrap: Any) -> None:
        self.G_train, self.D_train = wrap(self.G), wrap(self.D)

    def zero_grad(self) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        self._fake = []

    def generator_terms(self, sr: torch.Tensor, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cycle and LR-adversarial terms of one micro-batch (in the graph of both generators);
        ``sr`` and ``lr`` in [0, 1]."""
        vr, kind = self.t.cfg.losses.value_range, self.t.cfg.losses.gan.kind
        rec = self.G_train(sr)
        self._fake.append(rec.detach())
        terms = {"cycle": self.c.weight * pixel_loss(rec.float() * vr, lr * vr, "l1")}
        if self.c.gan_weight > 0:
            self.D.requires_grad_(False)
            try:
                fake = self.D(rec * vr).float()
                real = self.D(lr * vr).float().detach() if kind == "ragan" else None
            finally:
                self.D.requires_grad_(True)
            terms["lr_gan"] = self.c.gan_weight * generator_adv_loss(kind, fake, real)
        return terms

    def discriminator_backward(self, lr: torch.Tensor, last: bool, acc: int) -> dict[str, torch.Tensor]:
        """``D_y`` loss of the micro-batch whose ``G_LR`` output :meth:`generator_terms` kept."""
        if self.c.gan_weight <= 0:
            return {}
        t, vr = self.t, self.t.cfg.losses.value_range
        fake_lr = self._fake.pop(0)
        sync = self.D_train.no_sync() if (t.world > 1 and not last) else contextlib.nullcontext()
        with sync, t._autocast():
            real = self.D_train(lr * vr).float()
            fake = self.D_train(fake_lr * vr).float()
            loss = discriminator_adv_loss(t.cfg.losses.gan.kind, real, fake, detach_means=t.cfg.losses.gan.d_detach_means)
        t.scaler.scale(loss / acc).backward()
        return {"lr_d": loss.detach()}

    def step(self) -> None:
        """Optimiser and schedule steps of ``G_LR`` and ``D_y`` (after the trainer's own)."""
        self.t._step(self.opt_g, self.G.parameters())
        if self.c.gan_weight > 0:
            self.t._step(self.opt_d, self.D.parameters())
        self.sched_g.step()
        self.sched_d.step()

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "sched_g": self.sched_g.state_dict(),
                "sched_d": self.sched_d.state_dict()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.G.load_state_dict(st["G"])
        self.D.load_state_dict(st["D"])
        for name in ("opt_g", "opt_d", "sched_g", "sched_d"):
            getattr(self, name).load_state_dict(st[name])
        o = self.t.cfg.optim
        self.t._apply_optim_config(self.opt_g, self.sched_g, o.generator, "optim.generator")
        self.t._apply_optim_config(self.opt_d, self.sched_d, o.discriminator, "optim.discriminator")
