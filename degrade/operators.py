"""Degradation operators on NumPy images.

:func:`blur_downsample` is Real-SR's kernel degradation (METHODS.md 2b.3) computed in float:
correlate every channel with the kernel (origin at ``K // 2``, reflect borders, i.e. scipy's
``ndimage.correlate`` default) and keep every ``scale``-th pixel from index 0.
"""

from __future__ import annotations

import cv2
import numpy as np


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate ``img`` (H, W) or (H, W, C), float in any units, with ``kernel`` (origin at
    ``K // 2``, reflect borders: scipy ``ndimage.correlate``'s default); float32, same size."""
    x = np.ascontiguousarray(img, dtype=np.float32)
    k = np.ascontiguousarray(kernel, dtype=np.float32)
    if k.shape == (1, 1):
        return x * k[0, 0]
    # cv2.filter2D correlates with the anchor at the kernel centre (K // 2); BORDER_REFLECT is
    # scipy's "reflect" (edge pixel repeated)
    if x.ndim == 2 or x.shape[2] <= 4:
        return cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT).reshape(x.shape)
    return np.stack([cv2.filter2D(x[..., c], -1, k, borderType=cv2.BORDER_REFLECT) for c in range(x.shape[2])], 2)


def blur_downsample(img: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """Blur ``img`` (H, W) or (H, W, C), float in any units, with correlation kernel ``kernel`` and
    subsample by ``scale`` from pixel 0; returns float32 of size ``ceil(H / scale) x ceil(W / scale)``.

    No rounding: the official code floors a uint8 result (a -0.5 DN bias); callers quantise
    explicitly.
    """
    return np.ascontiguousarray(blur(img, kernel)[::scale, ::scale])
