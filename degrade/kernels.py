"""Blur kernels as arrays: analytic kernels, KernelGAN's post-processing, the x4 kernel, checks.

Convention (METHODS.md 2.6-2.8, 2b.3): a kernel ``k`` (K x K, float, >= 0, sums to 1) is a
*correlation* kernel on the HR grid. Degrading with it at scale ``s`` means
``lr[i, j] = sum_{m,n} hr[s*i + m - K//2, s*j + n - K//2] * k[m, n]`` (reflect borders), i.e.
correlate with the kernel origin at ``K//2`` and keep every ``s``-th pixel from index 0. The kernel's
centre of mass sits at ``K//2 + 0.5 * (s - K % 2)`` per axis, so each LR pixel is the weighted mean
around the centre of its ``s x s`` HR block, the alignment of MATLAB bicubic downscaling.
All positions below are (row, column) in kernel pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from realsr.resize import _cubic


def wanted_centre(size: int, scale: int) -> float:
    """Centre-of-mass position (kernel px, per axis) of a ``size``-wide kernel for ``scale``."""
    return size // 2 + 0.5 * (scale - size % 2)


def centre_of_mass(k: np.ndarray) -> tuple[float, float]:
    """Centre of mass (row, col) in kernel pixels of a non-negative kernel (NaN when it sums to 0)."""
    s = float(k.sum())
    if not s or not math.isfinite(s):
        return math.nan, math.nan
    rows, cols = k.sum(axis=1), k.sum(axis=0)
    return float(rows @ np.arange(k.shape[0]) / s), float(cols @ np.arange(k.shape[1]) / s)


def bicubic_kernel(scale: int = 2) -> np.ndarray:
    """MATLAB's antialiased bicubic downscaling kernel for integer ``scale`` as a 2-D kernel.

    Size ``4 * scale`` (8 x 8 for x2: KernelGAN's fixed bicubic kernel, the outer product of
    ``[-0.0117, -0.0352, 0.1133, 0.4336, ...]``), centre of mass at the middle, sums to 1. It has
    small negative lobes.
    """
    taps = 4 * scale
    d = (np.arange(taps) - (taps - 1) / 2.0) / scale
    w = _cubic(d) / scale
    w = w / w.sum()
    return np.outer(w, w)


def gaussian_kernel(size: int, sigma_y: float, sigma_x: float | None = None, theta: float = 0.0,
                    centre: tuple[float, float] | None = None) -> np.ndarray:
    """Anisotropic Gaussian kernel, ``size`` x ``size``, sums to 1.

    ``sigma_y``/``sigma_x``: standard deviations (kernel px) along the axes before rotation by
    ``theta`` (radians, counter-clockwise); ``centre`` (row, col) defaults to the middle.
    """
    sx = sigma_y if sigma_x is None else sigma_x
    cy, cx = ((size - 1) / 2.0,) * 2 if centre is None else centre
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    y, x = y - cy, x - cx
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blindsr_kernel(rng: np.random.Generator, scale: int = 2, size: int | None = None,
                   noise_level: float = 0.25) -> np.ndarray:
    """A random anisotropic Gaussian blur kernel as DIV2KRK's (KernelGAN's benchmark, made with
    Shocher's BlindSR dataset generator): covariance eigenvalues (variances, HR px^2) uniform in
    ``[0.175 * scale, 2.5 * scale]`` (x2: 0.35-5, std 0.59-2.24 px), angle uniform in [0, pi),
    uniform multiplicative noise of +-``noise_level`` per tap, then centred on the ``scale`` convention
    and normalised to sum 1. ``size`` defaults to 11 for x2 and 31 for x4 (DIV2KRK's)."""
    size = (11 if scale == 2 else 31) if size is None else size
    lo, hi = 0.175 * scale, 2.5 * scale
    var = lo + rng.random(2) * (hi - lo)
    theta = rng.random() * math.pi
    noise = rng.uniform(-noise_level, noise_level, (size, size))
    c = wanted_centre(size, scale)
    k = gaussian_kernel(size, math.sqrt(var[0]), math.sqrt(var[1]), theta, (c, c)) * (1.0 + noise)
    k = np.clip(k, 0.0, None)
    return shift_to_convention(k / k.sum(), scale)


def zeroize_negligible(k: np.ndarray, n: int = 40) -> np.ndarray:
    """KernelGAN's first post-processing step: subtract 0.75 x the (n+1)-th largest value, clip at 0,
    renormalise to sum 1."""
    flat = np.sort(k.ravel())
    thr = 0.75 * flat[-min(n, flat.size - 1) - 1]
    out = np.clip(k - thr, 0.0, 100.0)
    s = out.sum()
    return out / s if s > 0 else out


def shift_to_convention(k: np.ndarray, scale: int = 2, clip_negative: bool = True) -> np.ndarray:
    """Move ``k``'s centre of mass to :func:`wanted_centre` (KernelGAN's ``kernel_shift``).

    Pads by ``ceil(max |shift|) + 1`` per side (so the result is larger) and shifts with a cubic
    spline, as the official code does. The spline rings slightly: with ``clip_negative`` (default)
    negative values are set to 0 and the kernel renormalised, which the pool format requires
    (official: left as they are).
    """
    com = np.array(centre_of_mass(k))
    if not np.all(np.isfinite(com)):
        return k.copy()
    want = np.array([wanted_centre(k.shape[0], scale), wanted_centre(k.shape[1], scale)])
    shift = want - com
    pad = int(math.ceil(float(np.max(np.abs(shift))))) + 1
    out = ndimage.shift(np.pad(k.astype(np.float64), pad), shift, order=3, mode="constant")
    if clip_negative:
        out = np.clip(out, 0.0, None)
        out /= out.sum()
    return out


def post_process(k: np.ndarray, n: int = 40, scale: int = 2, clip_negative: bool = True) -> np.ndarray:
    """KernelGAN's ``post_process_k``: :func:`zeroize_negligible` then :func:`shift_to_convention`."""
    return shift_to_convention(zeroize_negligible(np.asarray(k, np.float64), n), scale, clip_negative)


def kernel_array(k: Any, what: str = "kernel", square: bool = True) -> np.ndarray:
    """``k`` as a float64 kernel: a non-empty (``square``) 2-D array of finite values with a positive
    sum; :class:`ValueError` naming ``what`` otherwise (the helpers below would return NaN or fail
    inside NumPy)."""
    a = np.asarray(k, np.float64)
    if a.ndim != 2 or a.size == 0 or (square and a.shape[0] != a.shape[1]):
        raise ValueError(f"{what} must be a {'square ' if square else ''}2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or not a.sum() > 0:
        raise ValueError(f"{what} must hold finite values with a positive sum")
    return a


def analytic_x4(k2: np.ndarray) -> np.ndarray:
    """The x4 kernel implied by applying the x2 kernel twice: ``k2 * (k2 dilated by 2)``.

    Size ``3K - 2`` cropped by ``K // 2`` per side (29 x 29 for K = 15), renormalised to sum 1
    (KernelGAN's ``analytic_kernel``). Its centre of mass lands on the x4 convention.
    """
    k2 = kernel_array(k2, "x2 kernel")
    kk = k2.shape[0]
    big = np.zeros((3 * kk - 2, 3 * kk - 2))
    for r in range(kk):
        for c in range(kk):
            if k2[r, c]:
                big[2 * r:2 * r + kk, 2 * c:2 * c + kk] += k2[r, c] * k2
    crop = kk // 2
    out = big[crop:-crop, crop:-crop] if crop else big
    return out / out.sum()


def on_canvas(k: np.ndarray, size: int, scale: int = 2) -> np.ndarray:
    """``k`` re-centred (centre of mass at the ``scale`` convention) on a ``size`` x ``size`` grid, so
    kernels of different sizes and offsets can be compared pixel by pixel (``size`` odd, sums to 1)."""
    k = kernel_array(k, square=False)
    com = np.array(centre_of_mass(k))
    big = max(size, *k.shape) + 2 * (int(np.max(np.abs(com - np.array(k.shape) / 2))) + 4)
    big += 1 - big % 2
    canvas = np.zeros((big, big))
    o = (big - k.shape[0]) // 2, (big - k.shape[1]) // 2
    canvas[o[0]:o[0] + k.shape[0], o[1]:o[1] + k.shape[1]] = k
    com = np.array(centre_of_mass(canvas))
    want = wanted_centre(big, scale)
    canvas = ndimage.shift(canvas, want - com, order=3, mode="constant")
    c = (big - size) // 2
    out = np.clip(canvas[c:c + size, c:c + size], 0, None)
    return out / out.sum()


def kernel_distance(a: np.ndarray, b: np.ndarray, scale: int = 2) -> float:
    """L2 distance between two kernels after centring both on a common canvas (units of kernel
    weight; 0 = identical shape). Shifts do not count: the pool re-centres every kernel."""
    a, b = kernel_array(a, square=False), kernel_array(b, square=False)
    size = max(a.shape[0], a.shape[1], b.shape[0], b.shape[1]) + 6
    size += 1 - size % 2
    return float(np.linalg.norm(on_canvas(a, size, scale) - on_canvas(b, size, scale)))


@dataclass(frozen=True)
class KernelShape:
    """Shape figures of a kernel: ``sigma_major``/``sigma_minor`` (kernel px, square roots of the
    covariance eigenvalues), ``angle`` (degrees, major axis from the column axis), ``peak`` (largest
    weight), ``centre`` (row, col) centre of mass."""

    sigma_major: float
    sigma_minor: float
    angle: float
    peak: float
    centre: tuple[float, float]


def kernel_shape(k: np.ndarray) -> KernelShape:
    """Second moments of a (non-negative) kernel."""
    k = np.clip(np.asarray(k, np.float64), 0, None)
    s = k.sum()
    if not s or not math.isfinite(s):
        return KernelShape(math.nan, math.nan, math.nan, math.nan, (math.nan, math.nan))
    k = k / s
    cy, cx = centre_of_mass(k)
    y, x = np.mgrid[0:k.shape[0], 0:k.shape[1]]
    dy, dx = y - cy, x - cx
    cov = np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])
    ev, vec = np.linalg.eigh(cov)
    major = vec[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0])) % 180.0
    return KernelShape(float(math.sqrt(max(ev[1], 0))), float(math.sqrt(max(ev[0], 0))), angle,
                       float(k.max()), (cy, cx))


@dataclass(frozen=True)
class KernelChecks:
    """Limits for :func:`check_kernel` (all on the raw 13 x 13 estimate unless said otherwise).

    ``max_peak``: a kernel putting more than this weight on one pixel is a delta (a x2 kernel needs
    at least a 2 x 2 footprint, peak 0.25); ``max_offset``: largest distance (kernel px) of the raw
    centre of mass from the x2 centre 6.5; ``max_frame_mass``: largest weight in the outer 2-px
    frame (a kernel cut by its support); ``max_second_mode``: largest weight in any connected blob
    other than the main one (multi-modal).
    """

    max_peak: float = 0.6
    max_offset: float = 2.0
    max_frame_mass: float = 0.2
    max_second_mode: float = 0.15


def check_kernel(raw: np.ndarray, final: np.ndarray, checks: KernelChecks = KernelChecks()) -> str | None:
    """Why the estimate is degenerate, or None when it is usable.

    ``raw``: the network's kernel before post-processing (x2 convention); ``final``: after it.
    Reasons: ``nan``, ``empty`` (no positive weight), ``delta``, ``off-centre``, ``cut by support``,
    ``multi-modal``, each with its figure.
    """
    raw = np.asarray(raw, np.float64)
    if not np.all(np.isfinite(raw)) or not np.all(np.isfinite(final)):
        return "nan: the estimate has non-finite values"
    pos = np.clip(raw, 0, None)
    if pos.sum() <= 0 or final.sum() <= 0:
        return "empty: the estimate has no positive weight"
    pos = pos / pos.sum()
    peak = float(np.clip(final, 0, None).max() / final.sum())
    peak_raw = float(pos.max())
    if max(peak, peak_raw) > checks.max_peak:
        return f"delta: {max(peak, peak_raw):.2f} of the weight on one pixel (limit {checks.max_peak})"
    cy, cx = centre_of_mass(pos)
    c = wanted_centre(raw.shape[0], 2)
    off = math.hypot(cy - c, cx - c)
    if off > checks.max_offset:
        return f"off-centre: centre of mass {off:.1f} px from the kernel centre (limit {checks.max_offset})"
    frame = pos.copy()
    frame[2:-2, 2:-2] = 0
    if frame.sum() > checks.max_frame_mass:
        return f"cut by support: {frame.sum():.2f} of the weight in the outer 2-px frame (limit {checks.max_frame_mass})"
    sig = zeroize_negligible(pos)
    labels, count = ndimage.label(sig > 0, structure=np.ones((3, 3)))
    if count > 1:
        mass = ndimage.sum(sig, labels, index=np.arange(1, count + 1))
        second = float(np.sort(mass)[-2])
        if second > checks.max_second_mode:
            return f"multi-modal: a second blob holds {second:.2f} of the weight (limit {checks.max_second_mode})"
    return None
