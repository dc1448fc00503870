"""DDNSR on the training engine (``method: ddnsr``; METHODS.md 4; official ``muys1845/DDNSR``
``train.py``): a degradation network ``Dn`` (:mod:`realsr.train.models.ddnsr`) and any
reconstruction network ``R`` (the trainer's generator, ``model.arch``; the paper's is ``rrdbnet``)
trained jointly on *unpaired* data: clean HR crops ``y_H`` (``data.train``) and real LR crops
``x_L`` (``ddnsr.source``), all RGB in [0, 1].

One iteration, per micro-batch (``s`` the scale)::

    y~_L = Dn(y_H, x_L)        synthetic LR of the clean HR, with x_L's look
    y^_H = R(y~_L)             its reconstruction
    x~_H = R(x_L)              the real LR super-resolved
    x^_L = Dn(x~_H, x_L)       and degraded again (the cycle)

    L_down = w_c * MSE(phi_c(avgpool_s(y_H)), phi_c(y~_L))      content, VGG19 conv3_4
           + w_a * BCE(D_down(y~_L), 1)                          adversarial (non-saturating)
           + w_y * MSE(phi_y(x_L), phi_y(x^_L))                  cycle, VGG19 conv2_2
    L_up   = the configured ``losses`` on (y^_H, y_H)            ESRGAN: conv5_4 MSE + RaGAN + 0.01 L1
    L_D_down = BCE(D_down(x_L), 1) + BCE(D_down(y~_L), 0);  L_D_up: the trainer's discriminator step

Each loss trains only its own network (the official code applies each gradient to one model's
variables): ``L_down`` -> ``Dn``, ``L_up`` -> ``R``, and the two discriminator losses -> their
discriminators. All four losses come from the same forward pass and all four networks step
after it, as the official persistent-tape step does. Here that is arranged by detaching: ``R``
sees ``y~_L`` detached, and ``x~_H`` is computed without gradients. ``phi`` is the VGG19
pre-activation output; ``features: pixel`` swaps it for the identity (plain image MSE), a
deviation for runs without VGG19 weights.

The official phases (lr halved and a *new* Adam at each boundary) map to ``optim.schedule``
milestones with gamma 0.5 plus ``ddnsr.reset_optimizers: true``, which clears every optimiser's
moment estimates at each milestone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError

from .data import CropDataset, Item, load_items
from .losses import discriminator_adv_loss, generator_adv_loss
from .models.ddnsr import DegradationNet, save_degradation
from .models.discriminators import build_discriminator
from .vgg import VGGFeatures

if TYPE_CHECKING:
    from .trainer import Trainer

#: ``RUN/<this>``: the trained degradation network, for ``realsr degrade --mode network``
DEGRADATION_FILE = "degradation.safetensors"
#: Donoho's MAD-to-sigma constant
_MAD = 0.6745


def wmad_sigma(x: torch.Tensor) -> torch.Tensor:
    """Noise sigma of a batch ``x`` (B, C, H, W) in [0, 1], on the 0-255 scale: the median absolute
    finest diagonal Haar coefficient (orthonormal, ``(a - b - c + d) / 2``) over the whole batch,
    divided by 0.6745 (wavelet MAD). A quick training-log figure; the careful per-image estimator
    (smooth blocks only) is :func:`realsr.degrade.realism.noise_sigma`."""
    x = x.detach().float()
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
    c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
    return 255.0 * ((a - b - c + d) * 0.5).abs().median() / _MAD


class UnpairedDataset(torch.utils.data.Dataset):
    """Sample ``g`` -> ``{"hr": (3, P, P), "src": (3, P/s, P/s), "index": g}``: an HR crop of the
    clean images and, independently, an LR-sized crop of the real LR photos, both with the flips
    (and rotations) of ``data.flip`` / ``data.rotate``; deterministic in (seed, g)."""

    def __init__(self, hr_items: list[Item], src_items: list[Item], scale: int, patch_size: int, seed: int,
                 flip: bool = True, rotate: bool = True):
        self.hr = CropDataset(hr_items, scale, patch_size, seed, flip, rotate)
        self.src = CropDataset(src_items, 1, patch_size // scale, seed + 7919, flip, rotate)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, g: int) -> dict[str, Any]:
        return {"hr": self.hr[g]["hr"], "src": self.src[g]["hr"], "index": g}


class DDNSRStep:
    """The DDNSR iteration on a :class:`~realsr.train.trainer.Trainer` (see the module docstring).
    The trainer's generator, discriminator and their optimisers are ``R``, ``D_up``; this object
    owns ``Dn``, ``D_down``, the VGG feature extractor, their optimisers and schedules (all saved
    in checkpoints)."""

    def __init__(self, trainer: "Trainer"):
        from .trainer import _optimizer, lr_factor

        self.t = trainer
        cfg = trainer.cfg
        c = cfg.ddnsr
        self.c = c
        dev = trainer.device
        self.net = DegradationNet(cfg.scale, input_type=c.input, **c.network).to(dev).train()
        lp = cfg.data.patch_size // cfg.scale
        d_args = dict(c.discriminator_args)
        if c.discriminator == "ddnsr_vgg":
            d_args.setdefault("input_size", lp)
        self.D = build_discriminator(c.discriminator, **d_args).to(dev).train()
        if getattr(self.D, "input_size", lp) != lp:
            raise UsageError(f"ddnsr.discriminator_args.input_size ({self.D.input_size}) must equal the LR patch "
                             f"(data.patch_size / scale = {lp})")
        if trainer.channels_last:
            self.net.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.features = None
        if c.features == "vgg":
            layers = sorted({c.content_layer, c.cycle_layer})
            self.features = VGGFeatures(layers, c.vgg_weights or cfg.losses.perceptual.vgg_weights,
                                        use_input_norm=c.vgg_input_norm).to(dev)
        o = cfg.optim
        self.opt_net = _optimizer(self.net.parameters(), o.generator)
        self.opt_d = _optimizer(self.D.parameters(), o.discriminator)
        self.sched_net = torch.optim.lr_scheduler.LambdaLR(self.opt_net, lambda it: lr_factor(it, cfg))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda it: lr_factor(it, cfg))
        self.net_train: nn.Module = self.net
        self.D_train: nn.Module = self.D
        self.R_train: nn.Module = trainer.G

    def wrap(self, wrap: Any) -> None:
        """Compile / DDP-wrap the reconstruction network, ``Dn`` and ``D_down`` separately."""
        self.R_train = wrap(self.t.G)
        self.net_train = wrap(self.net)
        self.D_train = wrap(self.D)

    def set_epoch_size(self, images: int) -> None:  # no epoch-based schedule
        pass

    def optimizers(self) -> list[torch.optim.Optimizer]:
        t = self.t
        return [o for o in (t.opt_g, t.opt_d, self.opt_net, self.opt_d) if o is not None]

    def _no_sync(self, m: nn.Module, last: bool) -> Any:
        return m.no_sync() if (self.t.world > 1 and not last) else contextlib.nullcontext()

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.t
        nb = t.device.type == "cuda"
        hr = batch["hr"].to(t.device, non_blocking=nb)
        src = batch["src"].to(t.device, non_blocking=nb)
        if t.channels_last:
            hr, src = (x.contiguous(memory_format=torch.channels_last) for x in (hr, src))
        return hr, src

    def down_terms(self, hr: torch.Tensor, src: torch.Tensor, fake_lr: torch.Tensor,
                   cycle_lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted terms of ``L_down`` (``D_down`` frozen): content of ``fake_lr = Dn(hr, src)``
        against the s x s average-pooled ``hr``, the adversarial term, and the cycle of
        ``cycle_lr = Dn(R(src), src)`` against ``src``; all (B, 3, h, w) in [0, 1]."""
        c, s = self.c, self.t.cfg.scale
        terms: dict[str, torch.Tensor] = {}
        # the images whose features the content and cycle terms compare, through VGG in one batch
        pairs = {}
        if c.content_weight > 0:
            pairs["content_down"] = (c.content_weight, c.content_layer, fake_lr, F.avg_pool2d(hr, s))
        if c.cycle_weight > 0:
            pairs["cycle_down"] = (c.cycle_weight, c.cycle_layer, cycle_lr, src)
        if pairs:
            imgs = [x for _, _, a, b in pairs.values() for x in (a, b)]
            if self.features is None:
                parts = imgs
            else:
                feats = self.features(torch.cat(imgs))
                n = [x.shape[0] for x in imgs]
                parts = [f for (_, layer, _, _), i in zip(pairs.values(), range(0, len(imgs), 2))
                         for f in torch.split(feats[layer], n)[i:i + 2]]
            for (name, (w, _, _, _)), i in zip(pairs.items(), range(0, len(parts), 2)):
                terms[name] = w * F.mse_loss(parts[i], parts[i + 1])
        if c.adv_weight > 0:
            self.D.requires_grad_(False)
            try:
                terms["adv_down"] = c.adv_weight * generator_adv_loss("vanilla", self.D(fake_lr).float())
            finally:
                self.D.requires_grad_(True)
        return {k: terms[k] for k in ("content_down", "adv_down", "cycle_down") if k in terms}  # summed in this order

    def _maybe_reset(self, it: int) -> None:
        """Official: a new Adam each phase; here every optimiser's moments are cleared at each
        ``optim.schedule.milestones`` iteration."""
        if self.c.reset_optimizers and it > 0 and it in self.t.cfg.optim.schedule.milestones:
            for opt in self.optimizers():
                opt.state = defaultdict(dict)

    def step(self, micro_batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Gradients and optimiser steps of the four networks for one iteration; returns the mean
        (detached) loss terms plus the WMAD noise sigma (0-255) of ``y~_L`` and of ``x_L``."""
        t = self.t
        it, acc = t.iteration, len(micro_batches)
        self._maybe_reset(it)
        self.opt_net.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}

        def add(name: str, v: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0) + v.detach().float() / acc

        for a, batch in enumerate(micro_batches):
            last = a == acc - 1
            hr, src = self._inputs(batch)
            with self._no_sync(self.net_train, last), self._no_sync(self.R_train, last):
                with t._autocast():
                    pr = t.G.pixel_range  # R works in [0, pixel_range] (255 for SRResCGAN)
                    with torch.no_grad():
                        sr_src = self.R_train(src * pr) / pr  # x~_H: only Dn learns from the cycle
                    # one Dn call on both inputs (a DDP module runs once per backward)
                    both = self.net_train(torch.cat([hr, sr_src.to(hr.dtype)]), torch.cat([src, src])).float()
                    fake_lr, cycle_lr = both[: hr.shape[0]], both[hr.shape[0]:]
                    down = self.down_terms(hr, src, fake_lr, cycle_lr)
                    sr = self.R_train(fake_lr.detach() * pr) / pr  # y^_H: R does not train Dn
                    up = t.sr_terms(sr.float(), hr, it)
                    total = torch.stack(list(down.values()) + list(up.values())).sum()
                t.scaler.scale(total / acc).backward()
            terms = {**down, **up, **t.discriminator_backward(sr.float(), hr, it, last, acc)}
            if self.c.adv_weight > 0:
                with self._no_sync(self.D_train, last), t._autocast():
                    real = self.D_train(src).float()
                    fake = self.D_train(fake_lr.detach()).float()
                    d_down = discriminator_adv_loss("vanilla", real, fake)
                t.scaler.scale(d_down / acc).backward()
                terms["d_down"] = d_down
            for k, v in terms.items():
                add(k, v)
            add("noise_fake", wmad_sigma(fake_lr))
            add("noise_source", wmad_sigma(src))
        t._step(t.opt_g, t.G.parameters())
        t._step(self.opt_net, self.net.parameters())
        if "d" in sums:
            t._step(t.opt_d, t.D.parameters())
        if "d_down" in sums:
            t._step(self.opt_d, self.D.parameters())
        with warnings.catch_warnings():  # a D that did not step still follows the iteration
            warnings.filterwarnings("ignore", "Detected call of")
            self.sched_net.step()
            self.sched_d.step()
        return sums

    def save_outputs(self, run_dir: Any, meta: dict[str, Any]) -> None:
        """``RUN/degradation.safetensors``: the degradation network (rank 0 calls this)."""
        save_degradation(run_dir / DEGRADATION_FILE, self.net, meta)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "D": self.D.state_dict(), "opt_net": self.opt_net.state_dict(),
                "opt_d": self.opt_d.state_dict(), "sched_net": self.sched_net.state_dict(),
                "sched_d": self.sched_d.state_dict()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.net.load_state_dict(st["net"])
        self.D.load_state_dict(st["D"])
        for name in ("opt_net", "opt_d", "sched_net", "sched_d"):
            getattr(self, name).load_state_dict(st[name])
        o = self.t.cfg.optim
        self.t._apply_optim_config(self.opt_net, self.sched_net, o.generator, "optim.generator")
        self.t._apply_optim_config(self.opt_d, self.sched_d, o.discriminator, "optim.discriminator")


def source_items(folder: str | Path, patch_size: int, scale: int, in_memory: bool) -> list[Item]:
    """The real LR photos of ``ddnsr.source`` (its ``LR/`` subfolder when it has one, e.g. a pair
    dataset, else the images in it) usable for ``patch_size / scale`` crops; unreadable and too
    small ones are skipped with a warning, none usable is a :class:`UsageError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError("ddnsr.source: folder of real LR photos not found", folder)
    if (folder / "LR").is_dir():
        folder = folder / "LR"
    try:
        return load_items(folder, 1, patch_size // scale, paired=False, in_memory=in_memory)
    except UsageError as e:
        raise UsageError(f"ddnsr.source: {e.message}", e.path) from None
