"""Parametric blur kernels of the random degradation modes, built from their recorded parameters.

A kernel spec is a JSON-able dict (it goes into ``manifest.json``, so every pair can be rebuilt):

- ``{"type": "gaussian", "size": K, "sigma_x": sx, "sigma_y": sy, "theta": t}`` (isotropic when
  ``sx == sy``); sigmas in HR pixels, ``theta`` in radians;
- ``{"type": "generalized", ..., "beta": b}``: ``exp(-0.5 * q^b)`` with ``q`` the Mahalanobis square
  distance (Real-ESRGAN's generalized Gaussian; ``b = 1`` is the Gaussian);
- ``{"type": "plateau", ..., "beta": b}``: ``1 / (1 + q^b)``;
- ``{"type": "sinc", "size": K, "cutoff": w}``: circular low-pass (ideal filter of radius ``w``
  rad/pixel), ``w J1(w r) / (2 pi r)``, the ringing/overshoot kernel of Real-ESRGAN;
- ``{"type": "pool", "file": "kernels/<name>_x<S>.npy"}``: a kernel of a degradation pool;
- ``{"type": "delta"}``: no blur.

Kernels are correlation kernels centred on the middle pixel (odd sizes), float64, sum 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import j1

from realsr.errors import UsageError

KERNEL_TYPES = ("gaussian", "generalized", "plateau", "sinc", "pool", "delta")


def _quadratic(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``d^T Sigma^-1 d`` on a ``size`` x ``size`` grid centred on the middle; Sigma has standard
    deviations ``sigma_x`` along the direction ``theta`` and ``sigma_y`` across it."""
    r = (size - 1) / 2.0
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circular low-pass kernel (``size`` odd) with cut-off ``cutoff`` in radians per pixel (pi =
    no filtering), normalised to sum 1."""
    r = (size - 1) / 2.0
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    d = np.hypot(x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = cutoff * j1(cutoff * d) / (2 * math.pi * d)
    k[d == 0] = cutoff ** 2 / (4 * math.pi)
    return k / k.sum()


def make_kernel(spec: dict[str, Any], pool: Any = None) -> np.ndarray:
    """The kernel described by ``spec`` (see the module docstring), float64, sums to 1.

    ``pool`` (a :class:`realsr.degrade.pool.Pool`) is needed for ``type: pool`` specs. Raises
    :class:`UsageError` for an unknown type or missing parameters.
    """
    t = spec.get("type")
    if t not in KERNEL_TYPES:
        raise UsageError(f"unknown kernel type {t!r}; one of {', '.join(KERNEL_TYPES)}")
    try:
        if t == "delta":
            return np.ones((1, 1))
        if t == "pool":
            if pool is None:
                raise UsageError(f"kernel {spec.get('file')} comes from a pool; give the pool")
            return pool.kernel_file(spec["file"]).astype(np.float64)
        size = int(spec["size"])
        if t == "sinc":
            return sinc_kernel(size, float(spec["cutoff"]))
        q = _quadratic(size, float(spec["sigma_x"]), float(spec["sigma_y"]), float(spec.get("theta", 0.0)))
        if t == "gaussian":
            k = np.exp(-0.5 * q)
        elif t == "generalized":
            k = np.exp(-0.5 * q ** float(spec["beta"]))
        else:  # plateau
            k = 1.0 / (1.0 + q ** float(spec["beta"]))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"malformed kernel spec {spec!r} ({e})") from None
    return k / k.sum()
