"""Training losses of the methods in METHODS.md, as plain functions plus one module (the VGG one).

Nothing here carries a loss weight: the trainer multiplies each term by its weight
(ESRGAN / Impressionism, METHODS.md 2b.6: ``0.01 * pixel_loss(sr, hr, "l1")``
+ ``1 * PerceptualLoss({"conv5_4": 1.0}, vgg, criterion="l1")`` + ``0.005 * generator_adv_loss("ragan", ...)``;
SRResCGAN, 3.3: L1 x10, the same perceptual term, :func:`gradient_difference_loss` x1 and RaGAN x1,
all on [0, 255] tensors; DDNSR, 4.4: MSE on VGG ``conv3_4`` / ``conv2_2`` / ``conv5_4`` features).

Conventions: every loss returns a 0-dim tensor, reduced with a mean over all elements (batch, channels,
pixels) unless its docstring says otherwise. Values scale with the data range: the ranges given in
the docstrings are for images in [0, 1].

GAN losses are split by step, so that the detach rules are in one place:
:func:`generator_adv_loss` for the generator step and :func:`discriminator_adv_loss` for the
discriminator step; :func:`gan_loss` is the single-term building block (BasicSR's ``GANLoss``).
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError
from realsr.train.vgg import VGGFeatures

PIXEL_KINDS = ("l1", "l2", "charbonnier")
PERCEPTUAL_CRITERIA = ("l1", "l2", "fro")
GAN_KINDS = ("vanilla", "lsgan", "ragan", "hinge")
TV_KINDS = ("l1", "l2")


def _check(kind: str, allowed: tuple[str, ...], what: str) -> str:
    if kind not in allowed:
        raise UsageError(f"unknown {what} {kind!r} (choose from {', '.join(allowed)})")
    return kind


# --------------------------------------------------------------------------------------------------
# pixel losses


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1", *, eps: float = 1e-3) -> torch.Tensor:
    """Pixel-wise distance, averaged over all elements.

    - ``"l1"``: ``mean |pred - target|``; in [0, 1] for [0, 1] images.
    - ``"l2"``: ``mean (pred - target)^2`` (mean squared error, not its root); in [0, 1].
    - ``"charbonnier"``: ``mean sqrt((pred - target)^2 + eps^2)``; in [eps, sqrt(1 + eps^2)], i.e. it
      is ``eps`` (not 0) for identical inputs. ``eps = 1e-3`` equals BasicSR's ``CharbonnierLoss``
      with its ``eps = 1e-6`` under the root (BasicSR's default is 1e-12 there).
    """
    _check(kind, PIXEL_KINDS, "pixel loss")
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    d = pred - target
    return torch.sqrt(d * d + eps * eps).mean()


# --------------------------------------------------------------------------------------------------
# total variation and gradient difference


def _diffs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() < 2 or x.shape[-2] < 2 or x.shape[-1] < 2:
        raise ValueError(f"finite differences need H and W of at least 2, got shape {tuple(x.shape)}")
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def tv_loss(x: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Anisotropic total variation of ``x`` (..., H, W), BasicSR ``WeightedTVLoss`` style:

    - ``"l1"``: ``mean |x[i+1, j] - x[i, j]| + mean |x[i, j+1] - x[i, j]|`` (each mean over its own
      (H-1)·W resp. H·(W-1) differences and all leading dims); in [0, 2] for [0, 1] images.
    - ``"l2"``: the same with squared differences (SRResCGAN's ``TV_L2Loss``); in [0, 2].
    """
    _check(kind, TV_KINDS, "TV loss")
    dh, dw = _diffs(x)
    if kind == "l1":
        return dh.abs().mean() + dw.abs().mean()
    return dh.pow(2).mean() + dw.pow(2).mean()


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """SRResCGAN's ``FilterHigh`` for discriminator inputs: ``0.5 + 0.5 * (x - avgpool9x9(x))``
    (stride 1, zero padding 4 counted in the mean), in the units of ``x``."""
    return 0.5 + 0.5 * (x - F.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=True))


def gradient_difference_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """SRResCGAN's ``TV_L1LOSS(sr, hr)`` (METHODS.md 3.3): L1 distance between the finite-difference
    gradients of the two images, i.e. the anisotropic TV of ``sr - hr``, normalised as in the code::

        (sum |Dh(sr) - Dh(hr)| + sum |Dw(sr) - Dw(hr)|) / (B * C * H * W)

    with ``Dh`` / ``Dw`` the forward differences along H / W. The divisor is the element count of the
    image, not the number of differences, so it is ``(H-1)/H`` resp. ``(W-1)/W`` times a per-term
    mean (METHODS.md's "mean of |grad x - grad y|" read with the code's normalisation). Zero for
    ``sr = hr + constant``; at most 4 for [0, 1] images. SRResCGAN applies it (x1) to [0, 255]
    tensors, where it is 255 times larger.
    """
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    dh, dw = _diffs(sr - hr)
    return (dh.abs().sum() + dw.abs().sum()) / sr.numel()


# --------------------------------------------------------------------------------------------------
# perceptual (VGG) loss


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """BasicSR's Gram matrix of (N, C, H, W) features: ``F F^T / (C H W)`` with ``F`` = (N, C, H·W)."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


class PerceptualLoss(nn.Module):
    """BasicSR's ``PerceptualLoss`` on a frozen VGG19 (:class:`~realsr.train.vgg.VGGFeatures`)::

        perceptual = sum_l w_l * crit(phi_l(x), phi_l(y.detach()))
        style      = sum_l w_l * crit(G(phi_l(x)), G(phi_l(y.detach())))   (G = :func:`gram_matrix`)
        forward(x, y) = perceptual_weight * perceptual + style_weight * style

    ``crit``: ``"l1"`` mean absolute difference, ``"l2"`` mean squared difference, ``"fro"`` the
    Frobenius norm of the whole difference tensor (not averaged: it grows with batch and image size).
    Values are >= 0 and 0 for identical inputs; there is no fixed upper bound: the scale depends on
    the layer and the weights (features are not normalised).

    ``layer_weights``: BasicSR layer name -> weight, e.g. ``{"conv5_4": 1.0}`` for ESRGAN's
    ``features[:35]``. ``weights_path``: a local torchvision VGG19 state dict, or ``"random"``
    (tests only). ``x``, ``y``: RGB in [0, 1] (``range_norm=True``: in [-1, 1]).
    Gradients flow to ``x``; VGG parameters are frozen; ``y`` is detached.
    """

    def __init__(self, layer_weights: dict[str, float], weights_path: str | os.PathLike | None, *,
                 criterion: str = "l1", use_input_norm: bool = True, range_norm: bool = False,
                 perceptual_weight: float = 1.0, style_weight: float = 0.0):
        super().__init__()
        self.criterion = _check(criterion, PERCEPTUAL_CRITERIA, "perceptual criterion")
        if not layer_weights:
            raise UsageError("perceptual loss needs at least one VGG layer weight")
        self.layer_weights = {str(k): float(v) for k, v in layer_weights.items()}
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self.vgg = VGGFeatures(list(self.layer_weights), weights_path, use_input_norm=use_input_norm,
                               range_norm=range_norm, requires_grad=False)

    def _crit(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l1":
            return F.l1_loss(a, b)
        if self.criterion == "l2":
            return F.mse_loss(a, b)
        return torch.linalg.vector_norm(a - b)  # Frobenius norm over all elements

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"perceptual": ..., "style": ...}``, each already multiplied by its weight; a term whose
        weight is 0 is left out (so logging shows only what is trained)."""
        fx, fy = self.vgg(x), self.vgg(y.detach())
        out: dict[str, torch.Tensor] = {}
        if self.perceptual_weight > 0:
            out["perceptual"] = self.perceptual_weight * sum(
                w * self._crit(fx[k], fy[k]) for k, w in self.layer_weights.items())
        if self.style_weight > 0:
            out["style"] = self.style_weight * sum(
                w * self._crit(gram_matrix(fx[k]), gram_matrix(fy[k])) for k, w in self.layer_weights.items())
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = self.terms(x, y)
        return sum(t.values()) if t else x.new_zeros(())


# --------------------------------------------------------------------------------------------------
# adversarial losses


def gan_loss(kind: str, logits: torch.Tensor, target_is_real: bool, *, for_discriminator: bool = False) -> torch.Tensor:
    """One GAN term (BasicSR ``GANLoss`` without its weight), averaged over all logits:

    - ``"vanilla"`` / ``"ragan"``: BCE-with-logits to 1 (real) or 0 (fake):
      ``mean softplus(-z)`` resp. ``mean softplus(z)``; in [0, inf), log 2 at ``z = 0``.
      (For ``"ragan"`` pass relativistic logits, ``z = real - mean(fake)`` etc.)
    - ``"lsgan"``: ``mean (z - 1)^2`` resp. ``mean z^2``; in [0, inf).
    - ``"hinge"``: discriminator: ``mean relu(1 - z)`` (real) resp. ``mean relu(1 + z)`` (fake), in
      [0, inf); generator (``for_discriminator=False``): ``-mean z``, unbounded, and only for
      ``target_is_real=True``.
    """
    _check(kind, GAN_KINDS, "GAN loss")
    if kind in ("vanilla", "ragan"):
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, torch.ones_like(logits) if target_is_real else torch.zeros_like(logits))
    if for_discriminator:
        return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()
    if not target_is_real:
        raise ValueError("the hinge generator loss is -mean(fake logits); target_is_real must be True")
    return -logits.mean()


def generator_adv_loss(kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Adversarial loss of the generator step (no weight applied). ``fake_logits = D(G(x))`` with the
    graph to G kept; ``real_logits = D(hr)`` only for ``"ragan"`` and detached here (they do not
    depend on G; detaching keeps gradients out of D, as ESRGAN/BasicSR do).

    - ``"vanilla"``: non-saturating ``BCE(fake, 1)``; in [0, inf).
    - ``"lsgan"``: ``mean (fake - 1)^2``.
    - ``"hinge"``: ``-mean(fake)``; unbounded.
    - ``"ragan"`` (ESRGAN, averaged)::

          ( BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1) ) / 2

      with the means over all logits (batch and, for a PatchGAN, positions); in [0, inf), log 2
      when D cannot tell them apart. DDNSR uses the sum of the two terms: weight it x2.
    """
    _check(kind, GAN_KINDS, "GAN loss")
    if kind != "ragan":
        return gan_loss(kind, fake_logits, True, for_discriminator=False)
    if real_logits is None:
        raise ValueError("the ragan generator loss needs real_logits (D on the HR batch)")
    real = real_logits.detach()
    return (gan_loss("ragan", real - fake_logits.mean(), False)
            + gan_loss("ragan", fake_logits - real.mean(), True)) / 2


def discriminator_adv_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, *,
                           detach_means: bool = False) -> torch.Tensor:
    """Adversarial loss of the discriminator step (no weight applied). Compute ``fake_logits`` as
    ``D(G(x).detach())`` so that nothing flows back into G.

    - ``"vanilla"``: ``BCE(real, 1) + BCE(fake, 0)`` (a sum, as ESRGAN/BasicSR); in [0, inf),
      2 log 2 at chance.
    - ``"lsgan"``: ``mean (real - 1)^2 + mean fake^2``.
    - ``"hinge"``: ``mean relu(1 - real) + mean relu(1 + fake)``.
    - ``"ragan"`` (ESRGAN, averaged)::

          ( BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0) ) / 2

      in [0, inf), log 2 at chance. DDNSR's D_up uses the sum of the two terms: weight it x2.

    ``detach_means`` only matters for ``"ragan"`` and changes the gradient, not the value:

    - ``False`` (default): gradients flow through both means, as in the original ESRGAN / mmsr code
      that Impressionism trained with (``l_d_total = (l_d_real + l_d_fake) / 2``, one backward).
    - ``True``: ``mean(fake)`` and ``mean(real)`` are treated as constants. This is exactly the
      gradient of BasicSR's ``ESRGANModel``, which backpropagates two halves separately:
      ``0.5 * BCE(real - mean(D(output).detach()), 1)`` and then
      ``0.5 * BCE(D(output.detach()) - mean(real.detach()), 0)``; their total equals this value.
    """
    _check(kind, GAN_KINDS, "GAN loss")
    if kind != "ragan":
        return (gan_loss(kind, real_logits, True, for_discriminator=True)
                + gan_loss(kind, fake_logits, False, for_discriminator=True))
    mean_fake, mean_real = fake_logits.mean(), real_logits.mean()
    if detach_means:
        mean_fake, mean_real = mean_fake.detach(), mean_real.detach()
    return (gan_loss("ragan", real_logits - mean_fake, True)
            + gan_loss("ragan", fake_logits - mean_real, False)) / 2
