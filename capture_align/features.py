"""SIFT keypoints and ratio-test matching (OpenCV)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Features:
    """Keypoint positions ``(N, 2)`` (x, y in pixels of the image they were found on) and SIFT
    descriptors ``(N, 128)`` float32."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, keep: np.ndarray) -> "Features":
        return Features(self.points[keep], self.descriptors[keep])


def to_matching_u8(gray: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Float gray image -> uint8 stretched between its 0.1 and 99.9 percentiles.

    SIFT needs 8-bit input and its contrast threshold is absolute, so dark, linear (RAW) or
    low-contrast captures are stretched first; ``valid`` (bool) restricts the statistics.
    """
    vals = gray[valid] if valid is not None else gray
    if vals.size == 0:
        return np.zeros(gray.shape, np.uint8)
    sample = vals.ravel()[:: max(1, vals.size // 200_000)]
    lo, hi = np.percentile(sample, [0.1, 99.9])
    if hi - lo < 1e-6:
        return np.zeros(gray.shape, np.uint8)
    out = (gray - lo) * np.float32(255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def detect(
    gray_u8: np.ndarray,
    max_features: int = 0,
    mask: np.ndarray | None = None,
    contrast_threshold: float = 0.04,
) -> Features:
    """SIFT keypoints and descriptors of an 8-bit gray image (``max_features`` 0 = no cap)."""
    sift = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=contrast_threshold)
    m = None if mask is None else mask.astype(np.uint8) * 255
    kps, desc = sift.detectAndCompute(gray_u8, m)
    if desc is None or len(kps) == 0:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    return Features(pts, desc.astype(np.float32, copy=False))


def match(a: Features, b: Features, ratio: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Lowe ratio-test matches from ``a`` to ``b``: index arrays ``(ia, ib)``.

    A match is kept when its nearest neighbour is closer than ``ratio`` times the second nearest;
    when several points of ``a`` pick the same point of ``b`` only the closest is kept.
    Brute-force L2 (exact and deterministic).
    """
    if len(a) < 2 or len(b) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bf = cv2.BFMatcher(cv2.NORM_L2)
    knn = bf.knnMatch(a.descriptors, b.descriptors, k=2)
    ia, ib, dist = [], [], []
    for pair in knn:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            ia.append(pair[0].queryIdx)
            ib.append(pair[0].trainIdx)
            dist.append(pair[0].distance)
    if not ia:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ia_a, ib_a, d_a = np.array(ia), np.array(ib), np.array(dist)
    order = np.lexsort((ia_a, d_a))  # closest first, ties by query index (deterministic)
    _, first = np.unique(ib_a[order], return_index=True)
    keep = np.sort(order[first])
    return ia_a[keep], ib_a[keep]
