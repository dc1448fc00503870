"""Degrading a clean HR image with a pool (the "Impressionism" recipe, METHODS.md 2b.3 and 2b.5).

A kernel drawn uniformly from the pool blurs the HR at full resolution (float), every S-th pixel is
kept from 0, real noise patches drawn from the pool (random crops, zero-mean per channel) are added
tile by tile until they cover the LR, and the result is rounded and clipped once. Images are RGB
arrays (uint8/uint16, or float in [0, 1]); the LR keeps the HR's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realsr.errors import RealsrError, UsageError
from realsr.images import from_float, to_float
from realsr.resize import modcrop

from .noise import zero_mean
from .operators import blur_downsample
from .pool import Pool


def pool_noise(shape: tuple[int, int], pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Additive noise of ``shape`` (rows, cols) x 3 in [0, 1] units: random pool patches, each cropped at
    random and made zero-mean per channel, tiled over the image; and the record of what was used
    (pool entry file and crop box per tile)."""
    h, w = shape
    ns = pool.noise
    if not ns:
        raise UsageError("the pool has no noise patches", pool.root / "pool.json")
    out = np.zeros((h, w, 3), np.float32)
    used = []
    y = 0
    while y < h:
        x = 0
        row_h = None
        while x < w:
            i = int(rng.integers(len(ns)))
            patch = pool.noise_patch(i)
            ph, pw = patch.shape[:2]
            th, tw = min(ph, h - y), min(pw, w - x)
            py, px = int(rng.integers(ph - th + 1)), int(rng.integers(pw - tw + 1))
            out[y:y + th, x:x + tw] = zero_mean(patch[py:py + th, px:px + tw])
            used.append({"file": ns[i]["file"], "crop": [px, py, px + tw, py + th], "at": [x, y]})
            x += tw
            row_h = th if row_h is None else min(row_h, th)
        y += row_h
    return out, used


def degrade_with_pool(hr: np.ndarray, pool: Pool, scale: int, rng: np.random.Generator, noise: bool = True,
                      quantize: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """LR of ``hr`` (mod-cropped to a multiple of ``scale``) degraded with ``pool``; returns the LR
    (the HR's dtype when ``quantize``, else float32 [0, 1] before rounding) and the record: kernel
    entry and noise tiles. Raises :class:`UsageError` for a pool of another scale or without kernels,
    :class:`RealsrError` when the HR is smaller than the kernel."""
    if pool.scale != scale:
        raise UsageError(f"the pool was built for x{pool.scale}, not x{scale}", pool.root / "pool.json")
    if hr.ndim == 2:
        hr = np.repeat(hr[:, :, None], 3, axis=2)
    hr = modcrop(hr[:, :, :3], scale)
    k, entry = pool.random_kernel(rng)
    if min(hr.shape[:2]) < k.shape[0]:
        raise RealsrError(f"HR {hr.shape[1]}x{hr.shape[0]} is smaller than the {k.shape[0]}-px kernel")
    lr = blur_downsample(to_float(hr), k, scale)
    record: dict[str, Any] = {"kernel": entry["file"], "noise": None}
    if noise:
        n, used = pool_noise(lr.shape[:2], pool, rng)
        lr = lr + n
        record["noise"] = used
    if quantize:
        dtype = hr.dtype if hr.dtype in (np.uint8, np.uint16) else np.uint8
        return from_float(lr, dtype), record
    return lr.astype(np.float32), record
