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

import contextlib
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


# --------------------------------------------------------------------------------------------------
# structural similarity (SSIM, MS-SSIM)

#: Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image quality assessment":
#: the exponents of the 5 scales, finest first (the coarsest one weights the full SSIM, the others
#: the contrast-structure term)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_SMALL = ("error", "shrink_window")


def gaussian_window(size: int = 11, sigma: float = 1.5, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian (``size``,) of SSIM's window (the 2-D window is its outer
    product: MATLAB ``fspecial('gaussian', 11, 1.5)``, OpenCV ``getGaussianKernel(11, 1.5)``)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the SSIM window side must be odd and positive, got {size}")
    if sigma <= 0:
        raise ValueError(f"the SSIM window sigma must be > 0, got {sigma}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"SSIM takes (B, C, H, W) tensors, got shape {tuple(x.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")


def _full_precision(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, object]:
    """``x``, ``y`` in at least float32 and a context with autocast off: the local variances
    ``E[x^2] - mu^2`` cancel badly in 16-bit floats."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), y.float()
    kind = x.device.type
    ctx = torch.autocast(kind, enabled=False) if kind in ("cuda", "cpu") else contextlib.nullcontext()
    return x, y.to(x.dtype), ctx


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float, data_range: float,
             k1: float, k2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_ssim_cs_fp` in full precision."""
    x, y, ctx = _full_precision(x, y)
    with ctx:
        return _ssim_cs_fp(x, y, window, sigma, data_range, k1, k2)


def _ssim_cs_fp(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float, data_range: float,
                k1: float, k2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(image, channel) means (B, C) of the SSIM map and of its contrast-structure factor, with
    the separable Gaussian window and "valid" filtering (no padding: every window lies inside)."""
    c = x.shape[1]
    g = gaussian_window(window, sigma, dtype=x.dtype, device=x.device)
    gh, gw = g.view(1, 1, window, 1).expand(c, 1, window, 1), g.view(1, 1, 1, window).expand(c, 1, 1, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gw, groups=c)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = blur(x * x) - mu_xx, blur(y * y) - mu_yy, blur(x * y) - mu_xy
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    lum = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
    return (lum * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ssim_index(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
               sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """SSIM (Wang et al. 2004) per image (B,) of (B, C, H, W) tensors, the mean over channels of
    each channel's mean SSIM map. Gaussian ``window`` x ``window`` (sigma ``sigma``), "valid"
    filtering, ``C1 = (k1 * data_range)^2``, ``C2 = (k2 * data_range)^2``.

    Data range: ``data_range`` is the span of the pixel values (1 for [0, 1] images, 255 for
    [0, 255]); SSIM of ``a * x`` and ``a * y`` with ``data_range * a`` is that of ``x`` and ``y``,
    so the same images on either scale give the same value. Nothing is clamped or quantised (the
    benchmark SSIM of :mod:`realsr.train.metrics` rounds to 8 bit first). Computed in at least
    float32 with autocast off (16-bit inputs are promoted: the local variances cancel). Raises
    :class:`ValueError` when H or W is smaller than the window."""
    _check_pair(x, y)
    if min(x.shape[-2:]) < window:
        raise ValueError(f"SSIM needs at least {window}x{window} pixels, got {x.shape[-1]}x{x.shape[-2]}")
    return _ssim_cs(x, y, window, sigma, data_range, k1, k2)[0].mean(dim=1)


def ssim_loss(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
              sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """``1 - SSIM``, SSIM as in :func:`ssim_index` averaged over the batch; 0 for identical inputs,
    in [0, 2] (SSIM can be negative), independent of the data range when ``data_range`` matches it
    (e.g. ``[0, 255]`` tensors with ``data_range=255`` give the value of the [0, 1] ones)."""
    return 1 - ssim_index(x, y, data_range=data_range, window=window, sigma=sigma, k1=k1, k2=k2).mean()


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 mean and subsampling by 2; an odd side is first padded by repeating its last row /
    column (so ``ceil(side / 2)`` remains; Wang's MATLAB ``msssim.m``: 2x2 mean filter with
    symmetric borders, then every second pixel)."""
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.avg_pool2d(x, 2)


def ms_ssim_sides(side: int, scales: int) -> list[int]:
    """The image side at each of ``scales`` scales (``ceil`` halving, as :func:`_halve`)."""
    out = [side]
    for _ in range(scales - 1):
        out.append((out[-1] + 1) // 2)
    return out


def ms_ssim_index(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
                  sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
                  weights: tuple[float, ...] | list[float] = MS_SSIM_WEIGHTS, small: str = "error") -> torch.Tensor:
    """MS-SSIM (Wang, Simoncelli & Bovik 2003) per image (B,) of (B, C, H, W) tensors::

        MS-SSIM = SSIM_M ^ w_M * prod_{j < M} CS_j ^ w_j

    with ``M = len(weights)`` scales (finest first; the standard 5 weights by default), scale
    ``j + 1`` the 2x2 mean of scale ``j`` (:func:`_halve`), ``SSIM_j`` / ``CS_j`` the means of the
    SSIM map and of its contrast-structure factor (window, constants and data range as in
    :func:`ssim_index`). Computed per channel and then averaged over the channels. Negative
    ``CS_j`` / ``SSIM_M`` (anti-correlated structure) are set to 0 before the powers, so the result
    is in [0, 1] and never NaN (the ``pytorch_msssim`` rule); the price: where a factor is 0 the
    gradient is 0 too (images unrelated at some scale, e.g. two noise images). Like :func:`ssim_index`, computed in at
    least float32 with autocast off.

    Images too small for ``M`` scales (the coarsest side below the window):

    - ``small="error"`` (default): :class:`ValueError` naming the smallest size that fits, e.g.
      161 px for 5 scales and an 11-px window;
    - ``small="shrink_window"``: at such a scale the window side becomes the largest odd number
      that fits (the Gaussian of the same sigma, cut to that side and renormalised), so a 128-px
      patch uses 11, 11, 11, 11 and 7 px windows (the ``min(window, H, W)`` rule of the widely
      copied ``pytorch-msssim`` by J. Pessoa, made odd)."""
    _check(small, MS_SSIM_SMALL, "MS-SSIM small-image rule")
    _check_pair(x, y)
    if not weights:
        raise ValueError("MS-SSIM needs at least one scale weight")
    m = len(weights)
    side = min(x.shape[-2:])
    if small == "error" and ms_ssim_sides(side, m)[-1] < window:
        need = window * 2 ** (m - 1) - (2 ** (m - 1) - 1)
        raise ValueError(f"MS-SSIM with {m} scales and a window of {window} px needs images of at least "
                         f"{need}x{need} pixels, got {x.shape[-1]}x{x.shape[-2]} (use fewer scale weights, "
                         "bigger images or small='shrink_window')")
    x, y, ctx = _full_precision(x, y)
    with ctx:
        return _ms_ssim(x, y, window, sigma, data_range, k1, k2, weights)


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float, data_range: float, k1: float, k2: float,
             weights: tuple[float, ...] | list[float]) -> torch.Tensor:
    m = len(weights)
    factors = []
    for j in range(m):
        if j:
            x, y = _halve(x), _halve(y)
        s = min(x.shape[-2:])
        win = window if s >= window else (s if s % 2 else s - 1)
        full, cs = _ssim_cs_fp(x, y, win, sigma, data_range, k1, k2)
        factors.append(F.relu(full if j == m - 1 else cs))
    w = torch.as_tensor(list(weights), dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return torch.prod(torch.stack(factors) ** w, dim=0).mean(dim=1)


def ms_ssim_loss(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
                 sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
                 weights: tuple[float, ...] | list[float] = MS_SSIM_WEIGHTS, small: str = "error") -> torch.Tensor:
    """``1 - MS-SSIM``, MS-SSIM as in :func:`ms_ssim_index` averaged over the batch; in [0, 1], 0
    for identical inputs, independent of the data range when ``data_range`` matches it."""
    return 1 - ms_ssim_index(x, y, data_range=data_range, window=window, sigma=sigma, k1=k1, k2=k2,
                             weights=weights, small=small).mean()
