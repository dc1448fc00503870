"""Realism report: how close synthetic low-resolution (LR) images are to real LR photos of a camera.

``realsr degrade ... --reference REAL_LR_DIR`` writes ``OUT/realism.json`` and ``OUT/realism.png``
through :func:`write_realism_report`. Three figures are measured on every image and compared set
against set:

* **noise** (:func:`noise_sigma`): per-channel noise standard deviation, on the 0-255 scale;
* **blur** (:func:`blur_width`): Gaussian-equivalent blur width sigma, in pixels of the image itself
  (LR pixels for LR images);
* **spectrum** (:func:`power_spectrum`): shape of the radially averaged power spectrum of the gray
  image, log10 power per frequency bin (cycles per pixel of the image).

Images are numpy arrays: ``(H, W)`` gray or ``(H, W, 3)`` RGB (``(H, W, 4)`` RGBA: alpha ignored),
dtype ``uint8``, ``uint16`` or float in [0, 1]. All noise figures are on the 0-255 scale whatever
the dtype (a uint16 value v counts as v * 255 / 65535). The core functions work on arrays; only
:func:`write_realism_report` reads or writes files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence, Union

import cv2
import numpy as np
from scipy.special import ndtr

from realsr.atomic import write_json_atomic
from realsr.color import rgb_to_gray
from realsr.errors import ImageReadError, RealsrError, UsageError
from realsr.images import as_rgb, check_pixels, folder_images, label_text, read_image, write_png

from .preview import _grid, _header

#: Images with a side shorter than this (px) are skipped by the report.
MIN_SIZE = 16
#: Frequency bins of the spectrum (over (0, 0.5] cycles per pixel).
SPECTRUM_BINS = 32
#: The spectrum is taken on the centre crop of at most this many pixels per side.
SPECTRUM_MAX_SIDE = 1024
#: Fewer accepted edge points than this: :func:`blur_width` returns None.
MIN_EDGES = 20
#: At most this many edge points are fitted per image (evenly spread over the candidates).
MAX_EDGES = 1000
#: Largest half-length (px) of the edge profiles; widths above ~RMAX / 3.5 are not measured.
RMAX = 16
#: Centre crop side (px) of the images shown in the figure, drawn at 2x.
CROP = 128
#: Images shown per set in the figure.
SHOW = 4

_MAD = 0.6744897501960817  # median of |N(0, 1)|
_BLOCK = 4  # noise: blocks of 4x4 Haar coefficients = 8x8 image pixels
_SMOOTH_FRACTION = 0.1  # noise: share of the smoothest blocks used ...
_MIN_COEFFS = 2048  # ... but at least this many HH coefficients
_SOBEL_NOISE = math.sqrt(12.0) / 8.0  # std of Sobel/8 for unit white noise
_SYN = (255, 140, 0)  # RGB colours of the figure: synthetic orange, real blue
_REAL = (70, 160, 255)

ImageSource = Union[str, os.PathLike, np.ndarray]


# ----------------------------------------------------------------------------------------------
# array helpers


def _channels_255(img: np.ndarray, float_range: bool = True) -> tuple[np.ndarray, float]:
    """``(H, W, C)`` float32 on the 0-255 scale (C = 1 for gray, 3 for RGB, alpha dropped) and the
    quantisation step of the values on that scale (1 for 8-bit data, 0 when continuous). uint8,
    uint16 or float [0, 1] (any finite floats unless ``float_range``); ValueError for the rest."""
    a = check_pixels(img, float_range)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected a gray, RGB or RGBA image, got shape {a.shape}")
    a = a[:, :, :1] if a.shape[2] <= 2 else a[:, :, :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32), 1.0
    if a.dtype == np.uint16:
        x = a.astype(np.float32) * np.float32(255.0 / 65535.0)
        return x, 1.0 if not np.any(a % 257) else 255.0 / 65535.0  # 8-bit data stored as 16-bit
    x = a.astype(np.float32) * np.float32(255.0)
    return x, 1.0 if np.all(np.abs(x - np.rint(x)) < 1e-3) else 0.0


def _gray_255(img: np.ndarray, float_range: bool = True) -> np.ndarray:
    """BT.601 gray of an image as float32 on the 0-255 scale."""
    x, _ = _channels_255(img, float_range)
    return x[:, :, 0] if x.shape[2] == 1 else rgb_to_gray(x)


def _median_abs(v: np.ndarray, step: float) -> float:
    """Median of ``|v|``; for values on a grid of ``step`` the grouped-data (interpolated) median,
    which stays unbiased where most values share a few grid points (8-bit noise of sigma ~1-3)."""
    v = np.abs(v.ravel())
    if v.size == 0:
        return float("nan")
    if step <= 0:
        return float(np.median(v))
    counts = np.bincount(np.rint(v / step).astype(np.int64))
    if counts[0] == v.size:
        return 0.0  # exactly noiseless
    cum = np.cumsum(counts)
    half = v.size / 2.0
    j = int(np.searchsorted(cum, half))
    before = float(cum[j - 1]) if j > 0 else 0.0
    lower, width = (0.0, 0.5 * step) if j == 0 else ((j - 0.5) * step, step)
    return lower + (half - before) / counts[j] * width


# ----------------------------------------------------------------------------------------------
# noise


def _haar_noise(x: np.ndarray, step: float) -> list[float]:
    """Noise sigma per channel of ``x`` (H, W, C) on the 0-255 scale (see :func:`noise_sigma`)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    if h < 2 or w < 2:
        raise ValueError(f"image too small for a noise estimate: {x.shape[1]}x{x.shape[0]} px")
    a, b, c, d = x[0:h:2, 0:w:2], x[0:h:2, 1:w:2], x[1:h:2, 0:w:2], x[1:h:2, 1:w:2]
    hh = (a - b - c + d) * np.float32(0.5)  # orthonormal Haar: white noise of std s keeps std s
    ll = (a + b + c + d) * np.float32(0.25)  # 2x2 local mean, 0-255
    nby, nbx = hh.shape[0] // _BLOCK, hh.shape[1] // _BLOCK
    if nby * nbx >= 4:
        B, C = _BLOCK, x.shape[2]
        lg = ll.mean(axis=2)[: nby * B, : nbx * B]
        act = np.zeros_like(lg)
        act[:, :-1] += np.square(np.diff(lg, axis=1))
        act[:-1, :] += np.square(np.diff(lg, axis=0))
        act = act.reshape(nby, B, nbx, B).sum(axis=(1, 3)).ravel()
        llb = ll[: nby * B, : nbx * B].reshape(nby, B, nbx, B, C)
        ok = ((llb.min(axis=(1, 3, 4)) >= 3.0) & (llb.max(axis=(1, 3, 4)) <= 252.0)).ravel()
        cand = np.flatnonzero(ok) if ok.any() else np.arange(act.size)  # drop clipped blocks
        k = min(cand.size, max(math.ceil(_SMOOTH_FRACTION * cand.size), math.ceil(_MIN_COEFFS / B ** 2)))
        chosen = cand[np.argsort(act[cand], kind="stable")[:k]]
        blocks = hh[: nby * B, : nbx * B].reshape(nby, B, nbx, B, C).transpose(0, 2, 1, 3, 4)
        hh = blocks.reshape(nby * nbx, B * B, C)[chosen]
    hh = hh.reshape(-1, x.shape[2])
    return [_median_abs(hh[:, i], 0.5 * step) / _MAD for i in range(x.shape[2])]


def noise_sigma(img: np.ndarray) -> list[float]:
    """Noise standard deviation per channel (R, G, B; one value for a gray ``(H, W)`` image), on
    the 0-255 scale.

    Wavelet MAD estimator (Donoho & Johnstone 1994): ``sigma = median(|HH|) / 0.6745`` over the
    finest diagonal detail subband of the orthonormal Haar transform (2x2 blocks,
    ``HH = (a - b - c + d) / 2``). To resist edges and texture, HH is taken only from the smoothest
    10% of 8x8-px blocks (at least 2048 coefficients: ~2.5% sampling error), ranked by the
    gradient energy of the low-pass band averaged over the channels; for white noise that band is
    independent of HH, so the selection does not bias the estimate (on flat 128-256 px images:
    mean error +0.7%, spread 2.6%; noise 5 on a textured scene reads 5.1-5.4). Blocks touching
    clipped values (2x2 mean < 3 or > 252) are left out while others remain. On 8-bit data the
    median is interpolated within the 0.5 grid of the HH values (grouped-data median), which keeps
    sigma ~1-3 unbiased. What it cannot separate: quantisation noise (8-bit: 0.29, included),
    pixel-scale texture in every smooth block (adds in quadrature), and, for signal-dependent
    noise, the smoothest blocks may be darker/less noisy than average; for spatially correlated
    noise (demosaicked, denoised, JPEG) it measures the pixel-to-pixel part only.
    """
    x, step = _channels_255(img)
    return [float(s) for s in _haar_noise(x, step)]


# ----------------------------------------------------------------------------------------------
# blur


def _fit_erf(P: np.ndarray, t: np.ndarray, w: np.ndarray, p: np.ndarray, iters: int,
             smax: float) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt fit, for all rows at once, of ``a + C * Phi((t - t0) / s)`` to profiles
    ``P`` (N, T) with 0/1 weights ``w``; ``p`` (N, 4) = [a, C, t0, s] start; returns params and the
    weighted mean squared residual."""
    n = P.shape[0]
    eye = np.eye(4)

    def residual(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (t[None, :] - q[:, 2:3]) / q[:, 3:4]
        phi_cdf = ndtr(u)
        return P - (q[:, 0:1] + q[:, 1:2] * phi_cdf), u, phi_cdf

    def cost(r: np.ndarray) -> np.ndarray:
        return (w * r * r).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)

    r, u, phi_cdf = residual(p)
    c0 = cost(r)
    lam = np.full(n, 1e-2)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            dens = np.exp(-0.5 * u * u) * (1.0 / math.sqrt(2.0 * math.pi))
            k = -p[:, 1:2] * dens / p[:, 3:4]
            cols = (w, w * phi_cdf, w * k, w * k * u)  # weighted Jacobian columns
            J = (None, phi_cdf, k, k * u)
            A = np.empty((n, 4, 4))
            for i in range(4):
                for j in range(i, 4):
                    A[:, i, j] = A[:, j, i] = cols[i].sum(axis=1) if j == 0 else (cols[i] * J[j]).sum(axis=1)
            g = np.stack([(c * r).sum(axis=1) for c in cols], axis=1)
            diag = np.einsum("nkk->nk", A)
            M = A + (lam[:, None] * diag)[:, :, None] * eye + 1e-9 * eye
            delta = np.linalg.solve(M, g[:, :, None])[:, :, 0]
            q = p + delta
            q[:, 2] = np.clip(q[:, 2], -3.0, 3.0)
            q[:, 3] = np.clip(q[:, 3], 0.1, smax)
            rq, uq, cq = residual(q)
            c1 = cost(rq)
            better = np.isfinite(c1) & (c1 < c0)
            p = np.where(better[:, None], q, p)
            r = np.where(better[:, None], rq, r)
            u = np.where(better[:, None], uq, u)
            phi_cdf = np.where(better[:, None], cq, phi_cdf)
            c0 = np.where(better, c1, c0)
            lam = np.where(better, lam * 0.3, lam * 10.0)
    return p, c0


def _window(s: np.ndarray, R: int) -> np.ndarray:
    return np.clip(np.ceil(3.5 * s + 2.0), 4, R).astype(np.int64)


def _edge_widths(g: np.ndarray, noise: float) -> np.ndarray:
    """Blur width (px) at each accepted edge point of gray ``g`` (0-255), see :func:`blur_width`."""
    h, w = g.shape
    R = min(RMAX, (min(h, w) - 3) // 2)
    if R < 5:
        return np.zeros(0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / np.float32(8.0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / np.float32(8.0)
    mag = cv2.magnitude(gx, gy)
    xdom = np.abs(gx) >= np.abs(gy)
    inner = np.zeros_like(xdom)
    inner[R + 1: h - R - 1, R + 1: w - R - 1] = True
    px = np.zeros_like(xdom)
    px[:, 1:-1] = (mag[:, 1:-1] >= mag[:, :-2]) & (mag[:, 1:-1] > mag[:, 2:])
    py = np.zeros_like(xdom)
    py[1:-1, :] = (mag[1:-1, :] >= mag[:-2, :]) & (mag[1:-1, :] > mag[2:, :])
    peak = np.where(xdom, px, py) & inner
    if not peak.any():
        return np.zeros(0)
    strongest = float(np.percentile(mag[peak], 99))
    peak &= mag >= max(6.0 * _SOBEL_NOISE * noise, 0.15 * strongest, 1.0)
    ys, xs = np.nonzero(peak)
    if ys.size > MAX_EDGES:
        keep = np.linspace(0, ys.size - 1, MAX_EDGES).astype(np.int64)
        ys, xs = ys[keep], xs[keep]
    if ys.size < MIN_EDGES:
        return np.zeros(0)
    along_x = xdom[ys, xs]
    t = np.arange(-R, R + 1)
    P = np.where(along_x[:, None], g[ys[:, None], np.clip(xs[:, None] + t, 0, w - 1)],
                 g[np.clip(ys[:, None] + t, 0, h - 1), xs[:, None]]).astype(np.float64)
    cos = np.where(along_x, np.abs(gx[ys, xs]), np.abs(gy[ys, xs])) / np.maximum(mag[ys, xs], 1e-12)
    n = P.shape[0]
    rows = np.arange(n)
    # start: the contrast and width of the monotone run of differences through the centre
    d = np.diff(P, axis=1)  # d[:, j] lies between t[j] and t[j + 1]; centre differences: R - 1, R
    cj = np.where(np.abs(d[:, R - 1]) > np.abs(d[:, R]), R - 1, R)
    dm = d[rows, cj]
    q = d * np.sign(dm)[:, None]
    above = q > 0.1 * np.abs(dm)[:, None]
    right = np.cumprod(above[:, R:], axis=1).astype(bool)
    left = np.cumprod(above[:, R - 1:: -1], axis=1).astype(bool)
    run = (q[:, R:] * right).sum(axis=1) + (q[:, R - 1:: -1] * left).sum(axis=1)
    s0 = np.clip(run / np.maximum(np.abs(dm), 1e-9) / math.sqrt(2.0 * math.pi), 0.5, R / 3.5)
    W = _window(s0, R)
    a0 = P[rows, R - W]
    p = np.stack([a0, P[rows, R + W] - a0, np.where(cj == R, 0.5, -0.5), s0], axis=1)
    smax = float(R)
    for iters in (8, 5):  # fit in a window of ~3.5 sigma, then again in the window of the fit
        sl = slice(R - int(W.max()), R + int(W.max()) + 1)
        wts = (np.abs(t[sl])[None, :] <= W[:, None]).astype(np.float64)
        p, mse = _fit_erf(P[:, sl], t[sl].astype(np.float64), wts, p, iters, smax)
        W = _window(p[:, 3], R)
    contrast = np.abs(p[:, 1])
    ok = (np.isfinite(p).all(axis=1) & np.isfinite(mse)
          & (contrast >= max(10.0 * noise, 10.0))
          & (p[:, 3] <= R / 3.5) & (np.abs(p[:, 2]) <= 1.0)
          & (np.sqrt(mse) <= 0.04 * contrast + 1.5 * noise + 0.5))
    # a pixel-grid step blurred by a discrete Gaussian of std s has profile differences of variance
    # s^2, and the sampled erf of std s_e has s_e^2 + 1/12: report sqrt(s_e^2 + 1/12), projected on
    # the edge normal
    return np.sqrt(p[ok, 3] ** 2 + 1.0 / 12.0) * cos[ok]


def blur_width(img: np.ndarray) -> float | None:
    """Gaussian-equivalent blur width sigma of ``img``, in pixels of ``img``, or None when fewer
    than :data:`MIN_EDGES` usable edge points are found (featureless, tiny or too noisy image).

    Edge points are local maxima of the Sobel gradient of the gray image along the dominant axis
    of the gradient, stronger than 6x the Sobel noise (from :func:`noise_sigma` of the gray) and
    15% of the 99th percentile. At each point (at most :data:`MAX_EDGES`) the profile along that
    axis is fitted (Levenberg-Marquardt, all points at once) with a blurred step
    ``a + C * Phi((t - t0) / s_e)`` within +-(3.5 s_e + 2) px; fits with low contrast, off-centre or
    with a residual above ``0.04 C + 1.5 noise + 0.5`` (nearby edges, lines, texture) are dropped.
    The width of an edge is ``sqrt(s_e^2 + 1/12)`` times the cosine between profile axis and edge
    normal, i.e. the sigma of the discrete Gaussian that blurs a pixel-aligned step into that
    profile (0 = perfectly sharp; below ~0.4 px it is not resolved, the floor is ~0.29 px).
    Returns the median over the edge points. Measurable up to ~4.5 px (profiles of +-16 px).
    """
    g = _gray_255(img)
    return _blur_of_gray(g)


def _blur_of_gray(g: np.ndarray) -> float | None:
    widths = _edge_widths(g, _haar_noise(g[:, :, None], 0.0)[0])
    return float(np.median(widths)) if widths.size >= MIN_EDGES else None


# ----------------------------------------------------------------------------------------------
# spectrum


def spectrum_frequencies(bins: int = SPECTRUM_BINS) -> np.ndarray:
    """Centres of the :func:`power_spectrum` bins, in cycles per pixel, in (0, 0.5)."""
    edges = np.linspace(0.0, 0.5, bins + 1)
    return (edges[:-1] + edges[1:]) / 2.0


def power_spectrum(img: np.ndarray, bins: int = SPECTRUM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of the gray image: ``(frequency, log10_power)``.

    ``frequency``: bin centres in cycles per pixel of ``img``, ``bins`` equal bins over (0, 0.5];
    ``log10_power``: log10 of the mean power of the 2-D spectrum samples whose radial frequency
    falls in the bin (the zero frequency is excluded; corners beyond 0.5 too). The gray image
    (centre crop of at most :data:`SPECTRUM_MAX_SIDE` px per side) has its windowed mean removed
    and is multiplied by a 2-D Hann window. Power is divided by its mean over all samples in
    (0, 0.5], so only the spectral shape remains, comparable across sizes and brightness: white
    noise gives a flat curve at 0, blur makes it fall towards 0.5. Bins without samples (images
    under ~64 px) are interpolated from their neighbours; a constant image gives all zeros. The
    shape does not depend on the scale, so floats of any range are taken.
    """
    return _spectrum_of_gray(_gray_255(img, float_range=False), bins)


def _spectrum_of_gray(g: np.ndarray, bins: int = SPECTRUM_BINS) -> tuple[np.ndarray, np.ndarray]:
    if bins < 2:
        raise ValueError("bins must be at least 2")
    g = g.astype(np.float64)
    h, w = g.shape
    if h < 4 or w < 4:
        raise ValueError(f"image too small for a spectrum: {w}x{h} px")
    ch, cw = min(h, SPECTRUM_MAX_SIDE), min(w, SPECTRUM_MAX_SIDE)
    g = g[(h - ch) // 2: (h - ch) // 2 + ch, (w - cw) // 2: (w - cw) // 2 + cw]
    win = np.outer(np.hanning(ch + 2)[1:-1], np.hanning(cw + 2)[1:-1])
    x = (g - (g * win).sum() / win.sum()) * win
    power = np.abs(np.fft.rfft2(x)) ** 2
    r = np.hypot(np.fft.fftfreq(ch)[:, None], np.fft.rfftfreq(cw)[None, :])
    edges = np.linspace(0.0, 0.5, bins + 1)
    idx = np.searchsorted(edges, r.ravel(), side="left") - 1  # bin k holds (edge k, edge k+1]
    valid = (idx >= 0) & (idx < bins)
    sums = np.bincount(idx[valid], weights=power.ravel()[valid], minlength=bins)
    counts = np.bincount(idx[valid], minlength=bins).astype(np.float64)
    freq = spectrum_frequencies(bins)
    total = sums.sum() / max(counts.sum(), 1.0)
    if not total > 0 or g.max() == g.min():
        return freq, np.zeros(bins)
    have = counts > 0
    mean = np.where(have, sums / np.maximum(counts, 1.0), 0.0) / total
    logp = np.log10(np.maximum(mean, 1e-12))
    if not have.all():
        logp = np.interp(freq, freq[have], logp[have])
    return freq, logp


# ----------------------------------------------------------------------------------------------
# figures and comparison


def image_figures(img: np.ndarray) -> dict[str, Any]:
    """The figures of one image: ``size`` [H, W] (px), ``noise_sigma`` (list per channel, 0-255),
    ``blur_width`` (px of ``img``, or None), ``spectrum`` (log10 normalised power per bin of
    :func:`spectrum_frequencies`; None for a constant image, which has no spectral shape)."""
    x, step = _channels_255(img)
    g = x[:, :, 0] if x.shape[2] == 1 else rgb_to_gray(x)
    _, spec = _spectrum_of_gray(g)
    return {
        "size": [int(x.shape[0]), int(x.shape[1])],
        "noise_sigma": [float(s) for s in _haar_noise(x, step)],
        "blur_width": _blur_of_gray(g),
        "spectrum": None if g.max() == g.min() else [float(v) for v in spec],
    }


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def _aggregate(figs: list[dict[str, Any]]) -> dict[str, Any]:
    noise = np.array([f["noise_sigma"] * 3 if len(f["noise_sigma"]) == 1 else f["noise_sigma"] for f in figs])
    blurs = [f["blur_width"] for f in figs if f["blur_width"] is not None]
    specs = [f["spectrum"] for f in figs if f["spectrum"] is not None]
    return {
        "count": len(figs),
        "noise_sigma": [_r(v) for v in np.median(noise, axis=0)],
        "blur_width": _r(float(np.median(blurs))) if blurs else None,
        "blur_width_images": len(blurs),
        "spectrum": [_r(v) for v in np.mean(specs, axis=0)] if specs else None,
        "spectrum_images": len(specs),
    }


def _summary(syn: dict[str, Any], real: dict[str, Any], ratio: list[float | None], blur_diff: float | None,
             dist: float | None, freq: np.ndarray) -> list[str]:
    lines = []
    names = "RGB"
    good = [q for q in ratio if q is not None]
    if not good:
        lines.append("noise: the real images show no measurable noise (ratio undefined)")
    elif all(q > 0 and abs(math.log(q)) < math.log(1.1) for q in good):
        lines.append("synthetic noise matches the real one within 10% ("
                     + ", ".join(f"{names[i]} {q:.2f}x" for i, q in enumerate(ratio) if q is not None) + ")")
    else:
        for i, q in enumerate(ratio):
            if q is not None and (q <= 0 or abs(math.log(q)) >= math.log(1.1)):
                lines.append(f"synthetic noise is {q:.2f}x the real one in {names[i]} "
                             f"({syn['noise_sigma'][i]:.2f} vs {real['noise_sigma'][i]:.2f} on 0-255)")
    if blur_diff is None:
        which = " and ".join(n for n, s in (("synthetic", syn), ("real", real)) if s["blur_width"] is None)
        lines.append(f"blur width not measured: too few clean edges in the {which} images")
    elif abs(blur_diff) < 0.1:
        lines.append(f"synthetic LR blur matches the real one ({syn['blur_width']:.2f} vs {real['blur_width']:.2f} px)")
    else:
        word = "sharper" if blur_diff < 0 else "blurrier"
        lines.append(f"synthetic LR is {word} than real by {abs(blur_diff):.2f} px "
                     f"(blur width {syn['blur_width']:.2f} vs {real['blur_width']:.2f} px)")
    if dist is None:
        which = " and ".join(n for n, s in (("synthetic", syn), ("real", real)) if s["spectrum"] is None)
        lines.append(f"spectral shape not measured: the {which} images are all constant")
        return lines
    diff = np.array(syn["spectrum"], float) - np.array(real["spectrum"], float)
    hi = freq > 0.25
    hf = 10.0 * float(diff[hi].mean()) if hi.any() else 0.0
    lines.append(f"spectral shape differs by {dist:.1f} dB on average (0 = same shape); synthetic has "
                 f"{abs(hf):.1f} dB {'more' if hf >= 0 else 'less'} power above 0.25 cycles/px")
    return lines


def compare_figures(synthetic: list[dict[str, Any]], real: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`compare_sets` on figures already computed with :func:`image_figures`."""
    if not synthetic or not real:
        raise ValueError("both sets need at least one image")
    syn, ref = _aggregate(synthetic), _aggregate(real)
    ratio = [_r(s / r, 3) if r is not None and s is not None and r > 0.05 else None
             for s, r in zip(syn["noise_sigma"], ref["noise_sigma"])]
    blur_diff = (_r(syn["blur_width"] - ref["blur_width"], 3)
                 if syn["blur_width"] is not None and ref["blur_width"] is not None else None)
    spec = syn["spectrum"] or ref["spectrum"]
    freq = spectrum_frequencies(len(spec) if spec else SPECTRUM_BINS)
    dist = (_r(10.0 * float(np.mean(np.abs(np.array(syn["spectrum"]) - np.array(ref["spectrum"])))), 3)
            if syn["spectrum"] is not None and ref["spectrum"] is not None else None)
    return {
        "synthetic": syn,
        "real": ref,
        "frequency": [_r(f, 5) for f in freq],
        "noise_ratio": ratio,
        "blur_width_diff_px": blur_diff,
        "spectrum_distance_db": dist,
        "summary": _summary(syn, ref, ratio, blur_diff, dist, freq),
    }


def compare_sets(synthetic: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> dict[str, Any]:
    """Compare a set of synthetic LR images with a set of real LR images.

    Returns ``synthetic`` and ``real`` (each: ``count``, ``noise_sigma`` = median per channel over
    the images (0-255; gray images count for all three channels), ``blur_width`` = median over the
    images where it was measured (px) or None, ``blur_width_images``, ``spectrum`` = mean over the
    images of the log10 spectra, constant images left out (``spectrum_images`` counts the others;
    None when all are constant)), ``frequency`` (bin centres, cycles/px), ``noise_ratio`` per
    channel (synthetic / real; None where the real noise is under 0.05), ``blur_width_diff_px``
    (synthetic - real; negative = synthetic sharper), ``spectrum_distance_db`` (mean over the bins
    of ``|10 log10 P_syn - 10 log10 P_real|``, dB; 0 = same spectral shape; None when a set has no
    spectrum) and ``summary`` (lines
    a person can read).
    """
    for name, images in (("synthetic", synthetic), ("real", real)):
        if isinstance(images, np.ndarray):  # one image would be taken for a list of its rows
            raise ValueError(f"{name}: give a list of images, not one array")
    return compare_figures([image_figures(i) for i in synthetic], [image_figures(i) for i in real])


# ----------------------------------------------------------------------------------------------
# the picture


def _to_u8(img: np.ndarray) -> np.ndarray:
    a = as_rgb(np.asarray(img))
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    return np.round(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def centre_crop(img: np.ndarray, size: int = CROP) -> np.ndarray:
    """The centre ``size`` x ``size`` crop (or less, for smaller images) of ``img``."""
    h, w = img.shape[:2]
    y, x = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return img[y: y + size, x: x + size]


def _put(img: np.ndarray, text: str, org: tuple[int, int], colour=(230, 230, 230), scale: float = 0.42) -> None:
    cv2.putText(img, label_text(text), org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _crop_tile(img: np.ndarray, label: str) -> np.ndarray:
    side = 2 * CROP
    tile = np.full((side + 20, side, 3), 25, np.uint8)
    c = _to_u8(centre_crop(img))
    big = cv2.resize(c, (2 * c.shape[1], 2 * c.shape[0]), interpolation=cv2.INTER_NEAREST)
    tile[: big.shape[0], : big.shape[1]] = big
    _put(tile, label, (4, side + 15))
    return tile


def _spectrum_panel(report: dict[str, Any], width: int, height: int) -> np.ndarray:
    p = np.full((height, width, 3), 18, np.uint8)
    x0, x1, y0, y1 = 58, width - 14, 30, height - 40
    curves = [(report[k]["spectrum"], colour, k) for k, colour in (("synthetic", _SYN), ("real", _REAL))
              if report[k]["spectrum"] is not None]
    vals = np.array([v for c, _, _ in curves for v in c if v is not None], float)
    lo, hi = (math.floor(vals.min() * 2) / 2, math.ceil(vals.max() * 2) / 2) if vals.size else (-1.0, 1.0)
    if hi - lo < 1.0:
        lo, hi = lo - 0.5, hi + 0.5
    freq = np.array(report["frequency"], float)

    def px(f: float, v: float) -> tuple[int, int]:
        return (int(round(x0 + f / 0.5 * (x1 - x0))), int(round(y1 - (v - lo) / (hi - lo) * (y1 - y0))))

    cv2.rectangle(p, (x0, y0), (x1, y1), (120, 120, 120), 1)
    for f in np.arange(0.0, 0.51, 0.1):
        xx = px(f, lo)[0]
        cv2.line(p, (xx, y1), (xx, y1 + 4), (160, 160, 160), 1)
        _put(p, f"{f:.1f}", (xx - 10, y1 + 17), scale=0.38)
    step = 1.0 if hi - lo <= 8 else 2.0
    for v in np.arange(math.ceil(lo / step) * step, hi + 1e-9, step):
        yy = px(0.0, v)[1]
        cv2.line(p, (x0 - 4, yy), (x0, yy), (160, 160, 160), 1)
        cv2.line(p, (x0 + 1, yy), (x1 - 1, yy), (45, 45, 45), 1)
        _put(p, f"{v:g}", (x0 - 34, yy + 4), scale=0.38)
    for c, colour, _ in curves:
        pts = np.array([px(f, v) for f, v in zip(freq, c)], np.int32)
        cv2.polylines(p, [pts], False, colour, 2, cv2.LINE_AA)
    for i, (_, colour, name) in enumerate(curves):
        ly = y0 + 16 + 16 * i
        cv2.line(p, (x1 - 110, ly - 4), (x1 - 86, ly - 4), colour, 2, cv2.LINE_AA)
        _put(p, name, (x1 - 80, ly))
    dist = report["spectrum_distance_db"]
    _put(p, "power spectrum of gray (log10, normalised)  "
         + (f"distance {dist:.1f} dB" if dist is not None else "distance: not measured (constant images)"),
         (8, 18), scale=0.45)
    _put(p, "frequency (cycles / pixel)", (x0 + (x1 - x0) // 2 - 90, height - 6), scale=0.4)
    return p


def _bars_panel(report: dict[str, Any], width: int, height: int) -> np.ndarray:
    p = np.full((height, width, 3), 18, np.uint8)
    syn, real = report["synthetic"], report["real"]
    _put(p, "noise sigma per channel (0-255)", (8, 18), scale=0.45)
    base, top = 170, 40
    vals = [v for v in syn["noise_sigma"] + real["noise_sigma"] if v is not None]
    vmax = max(vals + [1e-6])
    gw = (width - 40) // 3
    for i, ch in enumerate("RGB"):
        gx = 20 + i * gw
        for j, (v, colour) in enumerate(((syn["noise_sigma"][i], _SYN), (real["noise_sigma"][i], _REAL))):
            bx = gx + 12 + j * (gw // 2 - 8)
            bw = gw // 2 - 24
            bh = int(round((v or 0.0) / vmax * (base - top)))
            cv2.rectangle(p, (bx, base - bh), (bx + bw, base), colour, -1)
            _put(p, f"{v:.2f}" if v is not None else "-", (bx, base - bh - 4), scale=0.38)
        q = report["noise_ratio"][i]
        _put(p, f"{ch}: x{q:.2f}" if q is not None else f"{ch}: -", (gx + gw // 2 - 30, base + 18), scale=0.42)
    cv2.line(p, (12, base), (width - 12, base), (120, 120, 120), 1)
    y = base + 48
    _put(p, "blur width (px)", (8, y), scale=0.45)
    widths = [syn["blur_width"], real["blur_width"]]
    wmax = max([v for v in widths if v is not None] + [1e-6])
    for j, (v, colour, name) in enumerate(((widths[0], _SYN, "synthetic"), (widths[1], _REAL, "real"))):
        yy = y + 12 + 24 * j
        _put(p, name, (8, yy + 13), scale=0.4)
        if v is None:
            _put(p, "not measured", (90, yy + 13), scale=0.4)
            continue
        cv2.rectangle(p, (90, yy), (90 + int(round(v / wmax * (width - 170))), yy + 16), colour, -1)
        _put(p, f"{v:.2f}", (96 + int(round(v / wmax * (width - 170))), yy + 13), scale=0.4)
    d = report["blur_width_diff_px"]
    if d is not None:
        _put(p, f"synthetic - real: {d:+.2f} px", (8, y + 78), scale=0.42)
    return p


def realism_figure(synthetic: Sequence[np.ndarray], real: Sequence[np.ndarray], report: dict[str, Any]) -> np.ndarray:
    """The report as an RGB uint8 picture: centre crops (:data:`CROP` px, shown at 2x, nearest
    neighbour so noise stays visible) of up to :data:`SHOW` synthetic images (top row) and real
    images (second row); the two mean spectra; bars of noise sigma per channel and blur width;
    the summary lines. ``report`` is the output of :func:`compare_sets` (or the report dict)."""
    tile_w = 2 * CROP
    cols = SHOW
    width = cols * (tile_w + 4)
    parts = []
    for name, imgs in (("synthetic", synthetic), ("real", real)):
        n = report[name]["count"] if name in report else len(imgs)
        parts.append(_header(width, f"{name} LR: {CROP} px centre crops at 2x ({min(len(imgs), cols)} of {n})"))
        tiles = [_crop_tile(im, f"{name} {i + 1}") for i, im in enumerate(list(imgs)[:cols])]
        if tiles:
            parts.append(_grid(tiles, cols))
    half = width // 2
    panel_h = 300
    parts.append(_header(width, "figures (orange = synthetic, blue = real)"))
    panels = [_spectrum_panel(report, half, panel_h), _bars_panel(report, width - half, panel_h)]
    parts.append(np.concatenate(panels, axis=1))
    lines = report.get("summary", [])
    text = np.full((12 + 18 * max(len(lines), 1), width, 3), 18, np.uint8)
    for i, line in enumerate(lines):
        _put(text, line, (8, 20 + 18 * i), scale=0.45)
    parts.append(text)
    w = max(p.shape[1] for p in parts)
    parts = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0))) for p in parts]
    return np.ascontiguousarray(np.concatenate(parts, axis=0))


# ----------------------------------------------------------------------------------------------
# files


def check_reference(reference: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Before a run that ends with a realism report: :class:`UsageError` unless ``reference`` (a
    folder or an image file) holds at least one readable image, so that a bad ``--reference``
    stops the run before its work, not after it."""
    items, label = _items(reference, "reference", (Path(out_dir) / "realism.png").resolve())
    why = ""
    for _, path in items:
        try:
            read_image(path)
            return
        except (RealsrError, OSError) as e:
            why = f"; last: {path}: {getattr(e, 'message', None) or e}"
    raise UsageError(f"no readable reference images ({len(items)} tried{why})", label)


def _items(source: Any, role: str, exclude: Path) -> tuple[list[tuple[str, Any]], str]:
    """(name, path or array) items of a folder, a file, or a list of paths/arrays; and a label."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise UsageError(f"{role} folder does not exist", p)
        if p.is_file():
            return [(str(p), p)], str(p)
        files = [f for f in folder_images(p) if f.resolve() != exclude]
        if not files:
            raise UsageError(f"{role} folder holds no image files", p)
        return [(f.name, f) for f in files], str(p)
    if isinstance(source, np.ndarray):
        source = [source]
    items: list[tuple[str, Any]] = []
    for i, s in enumerate(source):
        items.append((str(s), Path(s)) if isinstance(s, (str, os.PathLike)) else (f"array {i}", s))
    if not items:
        raise UsageError(f"no {role} images given")
    parents = {str(Path(p).parent) for _, p in items if isinstance(p, Path)}
    return items, (parents.pop() if len(parents) == 1 else f"the given {role} images")


def _load(items: list[tuple[str, Any]], role: str, max_images: int, rng: np.random.Generator,
          skipped: list[dict[str, str]]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Figures of up to ``max_images`` readable images (a random subset, in random order, when there
    are more); the centre crops of the first :data:`SHOW`."""
    order = rng.permutation(len(items)) if len(items) > max_images else np.arange(len(items))
    figs: list[dict[str, Any]] = []
    crops: list[np.ndarray] = []
    for k in order:
        if len(figs) >= max_images:
            break
        name, src = items[int(k)]
        try:
            img = read_image(src) if isinstance(src, Path) else np.asarray(src)
            _channels_255(img[:1, :1] if img.ndim >= 2 else img)  # dtype and shape check
        except ImageReadError as e:
            skipped.append({"set": role, "file": name, "reason": e.message})
            continue
        except ValueError as e:
            skipped.append({"set": role, "file": name, "reason": str(e)})
            continue
        if min(img.shape[:2]) < MIN_SIZE:
            skipped.append({"set": role, "file": name, "reason": f"too small ({img.shape[1]}x{img.shape[0]} px; "
                                                                   f"need at least {MIN_SIZE} px per side)"})
            continue
        try:
            f = image_figures(img)
        except ValueError as e:
            skipped.append({"set": role, "file": name, "reason": str(e)})
            continue
        figs.append({"file": name, **f})
        if len(crops) < SHOW:
            crops.append(np.array(centre_crop(img)))
    return figs, crops


def write_realism_report(synthetic: ImageSource | Sequence[ImageSource], reference: ImageSource | Sequence[ImageSource],
                         out_dir: str | os.PathLike, max_images: int = 50, rng_seed: int = 0) -> dict[str, Any]:
    """Compare synthetic LR images with real LR photos; write ``out_dir/realism.json`` and
    ``out_dir/realism.png`` (both atomically) and return the report.

    ``synthetic``/``reference``: a folder (its image files, not recursive; hidden files and the
    report's own ``realism.png`` ignored), one image file, or a list of paths and/or arrays. At most
    ``max_images`` readable images per set are used (a random subset drawn with ``rng_seed`` when
    there are more). Unreadable images and images under :data:`MIN_SIZE` px are listed under
    ``skipped`` (``set``, ``file``, ``reason``). The report holds the :func:`compare_sets` keys plus
    ``images`` (per-image figures per set), ``skipped``, ``reference``, ``units`` and ``settings``.
    Raises :class:`UsageError` when the reference folder does not exist, holds no image files, or
    none of its images (or none of the synthetic ones) can be used.
    """
    if max_images < 1:
        raise UsageError("max_images must be at least 1")
    out = Path(out_dir)
    png_path = (out / "realism.png").resolve()
    rng = np.random.default_rng(rng_seed)
    skipped: list[dict[str, str]] = []
    ref_items, ref_label = _items(reference, "reference", png_path)
    syn_items, syn_label = _items(synthetic, "synthetic", png_path)
    ref_figs, ref_crops = _load(ref_items, "real", max_images, rng, skipped)
    if not ref_figs:
        why = f"; last: {skipped[-1]['file']}: {skipped[-1]['reason']}" if skipped else ""
        raise UsageError(f"no readable reference images ({len(ref_items)} tried{why})", ref_label)
    syn_figs, syn_crops = _load(syn_items, "synthetic", max_images, rng, skipped)
    if not syn_figs:
        raise UsageError(f"no readable synthetic images ({len(syn_items)} tried)", syn_label)
    report = compare_figures(syn_figs, ref_figs)
    report.update({
        "reference": ref_label,
        "images": {"synthetic": syn_figs, "real": ref_figs},
        "skipped": skipped,
        "units": {
            "noise_sigma": "standard deviation on the 0-255 scale (wavelet MAD, smoothest blocks)",
            "blur_width": "Gaussian-equivalent sigma in pixels of the LR image (edge fits)",
            "spectrum": "log10 of radially averaged power, normalised to mean 1 over (0, 0.5] cycles/px",
            "frequency": "cycles per pixel (bin centres)",
            "spectrum_distance_db": "mean |difference| of 10*log10 spectra over the bins, dB",
        },
        "settings": {"max_images": int(max_images), "rng_seed": int(rng_seed),
                     "available": {"synthetic": len(syn_items), "real": len(ref_items)}},
    })
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "realism.json", report)
    write_png(out / "realism.png", realism_figure(syn_crops, ref_crops, report))
    return report
