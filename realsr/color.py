"""Colour conversions on float RGB images in [0, 1], channels last."""

from __future__ import annotations

import cv2
import numpy as np

#: MATLAB ``rgb2ycbcr`` (ITU-R BT.601 studio swing) luma weights for R, G, B in [0, 1], giving Y in [16, 235].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
#: BT.601 full-range luma weights (what PIL "L" and OpenCV ``COLOR_RGB2GRAY`` use).
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing luma of RGB ``img`` in [0, 1]; returns Y on the 0-255 scale, in [16, 235].

    This is MATLAB's ``rgb2ycbcr`` Y (and BasicSR's ``rgb2ycbcr(..., y_only=True)`` times 255),
    not rounded: the convention of SR benchmark PSNR/SSIM.
    """
    if img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3:
        return _weighted(img, _Y_WEIGHTS) + np.float32(16.0)
    w = _Y_WEIGHTS.astype(img.dtype if img.dtype in (np.float32, np.float64) else np.float64)
    return img @ w + 16.0


def _weighted(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Channel-weighted sum of a float32 (H, W, 3) image (OpenCV, vectorised and threaded)."""
    if img.size == 0:  # cv2.transform returns None for an empty image
        return np.zeros(img.shape[:2], np.float32)
    return cv2.transform(np.ascontiguousarray(img), w.reshape(1, 3).astype(np.float32))


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of RGB ``img``, same scale as the input."""
    if img.ndim == 2:
        return img
    if img.dtype == np.float32 and img.shape[2] == 3:
        return _weighted(img, _GRAY_WEIGHTS)
    dtype = img.dtype if img.dtype in (np.float32, np.float64) else np.float32
    return img.astype(dtype, copy=False) @ _GRAY_WEIGHTS.astype(dtype)
