"""Quality measures of an aligned pair, computed on the written images (no ground truth needed).

* :func:`residual_shifts`: local misalignment, in LR pixels, between the LR and the HR downscaled
  to the LR grid: the sub-pixel translation of each textured tile, found by ECC (translation model,
  invariant to gain/offset). ``residual_px`` in the manifest is the median tile shift length.
* :func:`psnr`: PSNR on 0-255 data.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Residual:
    median: float  #: median tile shift length, LR pixels (``nan`` when no tile was measurable)
    p90: float  #: 90th percentile tile shift length, LR pixels
    tiles: int  #: number of tiles measured
    shifts: np.ndarray  #: (tiles, 4): tile centre x, y and shift dx, dy (LR pixels)


def residual_shifts(
    lr_gray: np.ndarray,
    hr_gray_small: np.ndarray,
    tile: int = 64,
    max_tiles: int = 400,
    min_texture: float = 2e-4,
    presmooth: float = 0.7,
) -> Residual:
    """Per-tile sub-pixel shift between two same-size float gray images (LR grid, [0, 1]).

    Tiles on a regular grid (at most ``max_tiles``) whose mean squared gradient exceeds
    ``min_texture`` are measured with ECC (``MOTION_TRANSLATION``) after a light Gaussian
    pre-smoothing of both images (``presmooth`` LR px, which evens out the LR's extra blur).
    The shift ``(dx, dy)`` is where the HR content sits relative to the LR content.
    """
    h, w = lr_gray.shape
    a = cv2.GaussianBlur(lr_gray.astype(np.float32), (0, 0), presmooth) if presmooth > 0 else lr_gray.astype(np.float32)
    b = cv2.GaussianBlur(hr_gray_small.astype(np.float32), (0, 0), presmooth) if presmooth > 0 else hr_gray_small.astype(np.float32)
    if h < tile or w < tile:
        tile = max(16, min(h, w))
    if h < tile or w < tile:
        return Residual(float("nan"), float("nan"), 0, np.zeros((0, 4)))
    ny, nx = h // tile, w // tile
    stride = max(1, int(np.ceil(np.sqrt(ny * nx / max_tiles))))
    gy, gx = np.gradient(a)
    energy = gx * gx + gy * gy
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    out = []
    oy = (h - ny * tile) // 2
    ox = (w - nx * tile) // 2
    for iy in range(0, ny, stride):
        for ix in range(0, nx, stride):
            y0, x0 = oy + iy * tile, ox + ix * tile
            ta = a[y0 : y0 + tile, x0 : x0 + tile]
            if energy[y0 : y0 + tile, x0 : x0 + tile].mean() < min_texture:
                continue
            tb = b[y0 : y0 + tile, x0 : x0 + tile]
            warp = np.eye(2, 3, dtype=np.float32)
            try:
                _, warp = cv2.findTransformECC(ta, tb, warp, cv2.MOTION_TRANSLATION, crit, None, 1)
            except cv2.error:
                continue
            dx, dy = float(warp[0, 2]), float(warp[1, 2])
            if abs(dx) > tile / 4 or abs(dy) > tile / 4:
                continue
            out.append((x0 + tile / 2 - 0.5, y0 + tile / 2 - 0.5, dx, dy))
    if not out:
        return Residual(float("nan"), float("nan"), 0, np.zeros((0, 4)))
    arr = np.array(out)
    mag = np.hypot(arr[:, 2], arr[:, 3])
    return Residual(float(np.median(mag)), float(np.percentile(mag, 90)), len(arr), arr)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two same-shape arrays with the given peak value (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
