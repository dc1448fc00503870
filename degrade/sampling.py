"""KernelGAN's crop sampling (METHODS.md 2.3): where on the image the G and D crops come from.

Crops are centred preferentially on strong gradients (edges carry the blur information). Images are
RGB float64 in [0, 1] with H and W even; all positions are pixels of that image, (row, col).
"""

from __future__ import annotations

import numpy as np

from realsr.color import rgb_to_gray
from realsr.resize import imresize


def box_same(x: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` x ``size`` box with zero padding, aligned as ``scipy.signal.convolve2d(x,
    ones, 'same') / size**2``: the window of output ``i`` spans input ``i - size//2 .. i + (size-1)//2``."""
    lo, hi = size // 2, (size - 1) // 2
    h, w = x.shape
    c = np.zeros((h + size + 1, w + size + 1))
    c[lo + 1:lo + 1 + h, lo + 1:lo + 1 + w] = x
    c = c.cumsum(0).cumsum(1)
    # window rows i-lo..i+hi of x are rows i+1..i+lo+hi+1 of the padded copy (offset lo+1)
    r0, r1 = np.arange(h), np.arange(h) + lo + hi + 1
    q0, q1 = np.arange(w), np.arange(w) + lo + hi + 1
    s = c[np.ix_(r1, q1)] - c[np.ix_(r0, q1)] - c[np.ix_(r1, q0)] + c[np.ix_(r0, q0)]
    return np.maximum(s, 0.0) / (size * size)  # cumulative sums leave -1e-17 where the true sum is 0


def _zero_edges(x: np.ndarray, edge: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[edge:-edge, edge:-edge] = x[edge:-edge, edge:-edge]
    return out


def _clip_extreme(x: np.ndarray, percent: float = 0.97) -> np.ndarray:
    flat = x.ravel()
    pivot = int(percent * flat.size)
    part = np.partition(flat, (pivot, pivot + 1))
    v_min, nxt = part[pivot], part[pivot + 1]
    v_max = nxt if nxt > v_min else v_min + 10e-6
    return np.clip(x, v_min, v_max) - v_min


def gradient_map(img: np.ndarray, window: int = 5, percent: float = 0.97) -> np.ndarray:
    """KernelGAN's ``create_gradient_map``: where the strongest 3% of gradients are, box-blurred,
    normalised to mean 1. Zero everywhere for a featureless image."""
    gray = rgb_to_gray(img)
    gx, gy = np.gradient(gray)
    gmag = np.sqrt(gx * gx + gy * gy)
    comb = np.zeros_like(gray)
    for g in (np.abs(gx), np.abs(gy), gmag):
        m = _clip_extreme(_zero_edges(g, window), percent)
        s = m.sum()
        if s > 0:
            comb += m / s
    loss = box_same(comb, window)
    mean = loss.mean()
    return loss / mean if mean > 0 else loss


def probability_map(loss_map: np.ndarray, crop: int) -> np.ndarray:
    """Flat probability vector of crop centres: the map box-blurred over ``crop//2``, edges of ``crop//2``
    zeroed, normalised; uniform when nothing is left."""
    p = _zero_edges(box_same(loss_map, crop // 2), crop // 2).ravel()
    s = p.sum()
    return p / s if s > 0 else np.full(p.size, 1.0 / p.size)


def crop_corners(prob: np.ndarray, shape: tuple[int, int], size: int, count: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` crop centres from ``prob`` and turn them into even top-left corners of
    ``size`` x ``size`` crops inside an image of ``shape`` (rows, cols); returns (count, 2) int."""
    rows, cols = shape
    centre = rng.choice(prob.size, size=count, p=prob)
    r, c = centre // cols, centre % cols
    top = np.minimum(np.maximum(0, r - size // 2), rows - size)
    left = np.minimum(np.maximum(0, c - size // 2), cols - size)
    return np.stack([top - top % 2, left - left % 2], axis=1)


def sampling_maps(img: np.ndarray, g_crop: int, d_crop: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Probability vectors for G crops (from the bicubic x0.5 image's gradients, nearest-upsampled)
    and D crops (full resolution), and whether the image has any gradient at all."""
    big = gradient_map(img)
    small = gradient_map(imresize(img, 0.5, float_result=True).astype(np.float64))
    small = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[: img.shape[0], : img.shape[1]]
    return probability_map(small, g_crop), probability_map(big, d_crop), bool(big.any())
