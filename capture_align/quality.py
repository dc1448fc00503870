"""Quality measures of an aligned pair, computed on the written images (no ground truth needed).

* :func:`residual_shifts`: local misalignment, in LR pixels, between the LR and the HR downscaled
  to the LR grid: the sub-pixel translation of each textured tile (Lucas-Kanade, gain/offset
  invariant like ECC, all tiles at once). ``residual_px`` in the manifest is the median tile shift.
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
    tile: int | None = None,
    max_tiles: int = 256,
    min_texture: float = 5e-5,
    presmooth: float = 0.7,
    iterations: int = 10,
) -> Residual:
    """Per-tile sub-pixel shift between two same-size float gray images (LR grid, [0, 1]).

    The image is cut into about ``max_tiles`` square tiles (``tile`` px; default: the size that
    gives that many, within 24..64 px). Tiles with texture in both directions (mean squared
    gradient above ``min_texture``, the noise floor after smoothing, and a gradient structure
    tensor that is not edge-only) are measured together by Lucas-Kanade translation (``iterations``
    Gauss-Newton steps, one cubic ``remap`` for all tiles per step), each tile matched for gain and
    offset first, as ECC is. Cubic, not bilinear, resampling: bilinear (what OpenCV's ECC uses
    inside) overestimates sub-pixel shifts by up to 40 %. Both images are lightly smoothed first
    (``presmooth`` px, evening out the LR's extra blur). The shift ``(dx, dy)`` is where the HR content sits relative to the LR.
    """
    h, w = lr_gray.shape
    if tile is None:
        tile = int(np.clip(np.sqrt(h * w / max_tiles), 24, 64))
    nothing = Residual(float("nan"), float("nan"), 0, np.zeros((0, 4)))
    if h < tile or w < tile:
        tile = max(16, min(h, w))
    if h < tile or w < tile:
        return nothing
    a = lr_gray.astype(np.float32)
    b = hr_gray_small.astype(np.float32)
    if presmooth > 0:
        a = cv2.GaussianBlur(a, (0, 0), presmooth)
        b = cv2.GaussianBlur(b, (0, 0), presmooth)
    ny, nx = h // tile, w // tile
    stride = max(1, int(np.ceil(np.sqrt(ny * nx / max_tiles))))
    oy, ox = (h - ny * tile) // 2, (w - nx * tile) // 2
    iy, ix = np.meshgrid(np.arange(0, ny, stride), np.arange(0, nx, stride), indexing="ij")
    y0 = (oy + iy.ravel() * tile).astype(np.int64)
    x0 = (ox + ix.ravel() * tile).astype(np.int64)
    r = np.arange(tile)
    rows, cols = y0[:, None, None] + r[None, :, None], x0[:, None, None] + r[None, None, :]
    # central differences (np.gradient's interior), with OpenCV for speed
    gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=1, scale=0.5)[rows, cols]
    gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=1, scale=0.5)[rows, cols]
    sxx, syy, sxy = (gx * gx).mean((1, 2)), (gy * gy).mean((1, 2)), (gx * gy).mean((1, 2))
    tr, det = sxx + syy, sxx * syy - sxy * sxy
    lam_min = tr / 2 - np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    keep = (tr > min_texture) & (lam_min > 0.1 * tr / 2)  # texture, and not an edge in one direction
    if not keep.any():
        return nothing
    y0, x0, gx, gy = y0[keep], x0[keep], gx[keep], gy[keep]
    sxx, syy, sxy, det = sxx[keep], syy[keep], sxy[keep], det[keep]
    ta = a[rows[keep], cols[keep]]
    ta = ta - ta.mean((1, 2), keepdims=True)
    ta_std = ta.std((1, 2), keepdims=True) + 1e-12
    n = len(y0)
    d = np.zeros((n, 2), np.float64)
    gxx = (x0[:, None, None] + r[None, None, :]).astype(np.float32)
    gyy = (y0[:, None, None] + r[None, :, None]).astype(np.float32)
    valid = np.ones(n, bool)
    for _ in range(iterations):
        mx = np.broadcast_to(gxx + d[:, 0, None, None].astype(np.float32), (n, tile, tile)).reshape(n * tile, tile)
        my = np.broadcast_to(gyy + d[:, 1, None, None].astype(np.float32), (n, tile, tile)).reshape(n * tile, tile)
        tb = cv2.remap(b, np.ascontiguousarray(mx), np.ascontiguousarray(my), cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REFLECT).reshape(n, tile, tile)
        tb = tb - tb.mean((1, 2), keepdims=True)
        tb *= ta_std / (tb.std((1, 2), keepdims=True) + 1e-12)  # gain/offset matched, as ECC
        e = tb - ta
        bx, by = (gx * e).mean((1, 2)), (gy * e).mean((1, 2))
        # b(x + d + delta) ~ a(x): delta = -T^-1 [sum gx e, sum gy e] with the template's tensor T
        step = -np.stack([(syy * bx - sxy * by) / det, (sxx * by - sxy * bx) / det], axis=1)
        d += step
        valid &= np.abs(d).max(axis=1) < tile / 4
        if np.abs(step).max() < 1e-4:
            break
    if not valid.any():
        return nothing
    out = np.column_stack([x0 + tile / 2 - 0.5, y0 + tile / 2 - 0.5, d])[valid]
    mag = np.hypot(out[:, 2], out[:, 3])
    return Residual(float(np.median(mag)), float(np.percentile(mag, 90)), len(out), out)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of two same-shape arrays with the given peak value (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
