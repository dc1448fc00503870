"""Degrading a clean HR image with a pool (the "Impressionism" recipe, METHODS.md 2b.3 and 2b.5).

A kernel drawn uniformly from the pool blurs the HR at full resolution (float), every S-th pixel is
kept from 0, real noise patches drawn from the pool (random crops, zero-mean per channel) are added
tile by tile until they cover the LR, and the result is rounded and clipped once. Images are RGB
arrays (uint8/uint16, or float in [0, 1]); the LR keeps the HR's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realsr.errors import UsageError
from realsr.images import as_rgb, from_float, to_float
from realsr.resize import modcrop

from .pipeline import apply_steps, tile_noise
from .pool import Pool
from .recipes import sample_pool


def draw_noise_tiles(shape: tuple[int, int], pool: Pool, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Random pool-noise tiles covering an image of ``shape`` (rows, cols), row by row: each a pool
    patch drawn uniformly, cropped at random to what is left of the row (``file``, ``crop``
    [x0, y0, x1, y1] in the patch, ``at`` [x, y] in the image)."""
    h, w = shape
    ns = pool.noise
    if not ns:
        raise UsageError("the pool has no noise patches", pool.record)
    tiles = []
    y = 0
    while y < h:
        x = 0
        row_h = None
        while x < w:
            i = int(rng.integers(len(ns)))
            ph, pw = pool.noise_patch(i).shape[:2]
            th, tw = min(ph, h - y), min(pw, w - x)
            py, px = int(rng.integers(ph - th + 1)), int(rng.integers(pw - tw + 1))
            tiles.append({"file": ns[i]["file"], "crop": [px, py, px + tw, py + th], "at": [x, y]})
            x += tw
            row_h = th if row_h is None else min(row_h, th)
        y += row_h
    return tiles


def pool_noise(shape: tuple[int, int], pool: Pool, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Additive noise of ``shape`` (rows, cols) x 3 in [0, 1] units: random pool patches, each cropped at
    random and made zero-mean per channel, tiled over the image; and the tiles used
    (:func:`draw_noise_tiles`)."""
    tiles = draw_noise_tiles(shape, pool, rng)
    return tile_noise(tiles, shape, pool), tiles


def degrade_with_pool(hr: np.ndarray, pool: Pool, scale: int, rng: np.random.Generator, noise: bool = True,
                      quantize: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """LR of ``hr`` (mod-cropped to a multiple of ``scale``) degraded with ``pool``; returns the LR
    (the HR's dtype when ``quantize``, else float32 [0, 1] before rounding) and the record: kernel
    file and noise tiles. Raises :class:`UsageError` for a pool of another scale or without kernels,
    :class:`RealsrError` when the HR is smaller than the kernel."""
    hr = as_rgb(hr)
    hr = modcrop(hr, scale)
    steps = sample_pool(rng, hr.shape[:2], scale, pool, noise)
    lr = apply_steps(to_float(hr), steps, pool)
    record: dict[str, Any] = {"kernel": steps[0]["kernel"]["file"], "noise": steps[2]["tiles"] if noise else None}
    if quantize:
        return from_float(lr, hr.dtype if hr.dtype in (np.uint8, np.uint16) else np.uint8), record
    return lr, record
