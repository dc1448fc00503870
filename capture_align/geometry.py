"""Planar geometry for alignment: homographies on pixel coordinates, robust fitting, crop boxes.

Convention throughout: pixel *centres* sit at integer coordinates, x to the right, y down; pixel
``(x, y)`` covers ``[x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]``. Homographies are 3x3 float64 arrays
acting on column vectors ``(x, y, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MODELS = ("homography", "affine")
METHODS = ("magsac", "ransac")


def scaling(fx: float, fy: float | None = None) -> np.ndarray:
    """Map pixel coordinates of an image to those of the same image resized by ``fx`` (and ``fy``).

    With pixel centres at integers the edges stay fixed: ``x' = fx (x + 0.5) - 0.5``.
    """
    fy = fx if fy is None else fy
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])


def translation(tx: float, ty: float) -> np.ndarray:
    """Homography ``x' = x + tx, y' = y + ty``."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def normalize(h: np.ndarray) -> np.ndarray:
    """Scale a homography so that ``h[2, 2] == 1``."""
    return h / h[2, 2]


def apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points through homography ``h``."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = pts @ h[:2, :2].T + h[:2, 2]
    w = pts @ h[2, :2] + h[2, 2]
    return q / w[:, None]


def local_scale(h: np.ndarray, at: tuple[float, float]) -> float:
    """Linear scale factor ``sqrt(|det J|)`` of ``h`` at point ``at`` (output px per input px)."""
    x, y = at
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    j = np.array(
        [
            [(h[0, 0] * w - u * h[2, 0]) / w**2, (h[0, 1] * w - u * h[2, 1]) / w**2],
            [(h[1, 0] * w - v * h[2, 0]) / w**2, (h[1, 1] * w - v * h[2, 1]) / w**2],
        ]
    )
    return float(math.sqrt(abs(np.linalg.det(j))))


def is_orientation_preserving(h: np.ndarray, at: tuple[float, float]) -> bool:
    """True when ``h`` has a positive Jacobian determinant at ``at`` (no mirroring, point in front)."""
    x, y = at
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return bool(np.linalg.det(h) / w**3 > 0)


def box_corners(box: tuple[float, float, float, float]) -> np.ndarray:
    """The four corners (as pixel *edges*) of an integer pixel box ``[x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    return np.array([[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5], [x0 - 0.5, y1 - 0.5]])


def displacement(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Length of ``h(p) - p`` for each of the ``(N, 2)`` points ``pts``."""
    return np.linalg.norm(apply(h, pts) - np.asarray(pts, dtype=np.float64), axis=1)


@dataclass
class Fit:
    """A robust fit: ``matrix`` (3x3) maps source points to destination points."""

    matrix: np.ndarray
    inliers: np.ndarray  # bool mask over the input matches
    rms: float  # root-mean-square reprojection error of the inliers, destination pixels

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def fit_transform(
    src: np.ndarray,
    dst: np.ndarray,
    model: str = "homography",
    method: str = "magsac",
    threshold: float = 2.0,
    confidence: float = 0.9999,
    max_iters: int = 10000,
) -> Fit | None:
    """Robustly fit a homography or affine map ``dst ~ T(src)`` to point matches.

    ``method``: ``magsac`` (OpenCV USAC MAGSAC++) or ``ransac``; ``threshold`` is the inlier
    reprojection distance in destination pixels. After the robust step the transform is re-fitted
    by least squares on all inliers (more accurate than the minimal-sample estimate). Returns None
    when there are too few matches or no transform is found.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    src = np.ascontiguousarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.ascontiguousarray(dst, dtype=np.float64).reshape(-1, 2)
    need = 4 if model == "homography" else 3
    if len(src) < need + 2:
        return None
    flag = cv2.USAC_MAGSAC if method == "magsac" else cv2.RANSAC
    try:
        if model == "homography":
            m, mask = cv2.findHomography(src, dst, flag, threshold, maxIters=max_iters, confidence=confidence)
        else:
            m, mask = cv2.estimateAffine2D(
                src, dst, method=flag, ransacReprojThreshold=threshold, maxIters=max_iters, confidence=confidence
            )
            if m is not None:
                m = np.vstack([m, [0.0, 0.0, 1.0]])
    except cv2.error:
        return None
    if m is None or mask is None or not np.isfinite(m).all():
        return None
    inl = mask.ravel().astype(bool)
    if inl.sum() < need:
        return None
    m = _refit(src[inl], dst[inl], model, m)
    # Re-select inliers with the refined transform, then re-fit once more.
    err = np.linalg.norm(apply(m, src) - dst, axis=1)
    inl2 = err < threshold
    if inl2.sum() >= need:
        m = _refit(src[inl2], dst[inl2], model, m)
        inl = inl2
        err = np.linalg.norm(apply(m, src) - dst, axis=1)
    rms = float(np.sqrt(np.mean(err[inl] ** 2)))
    return Fit(normalize(m), inl, rms)


def _refit(src: np.ndarray, dst: np.ndarray, model: str, fallback: np.ndarray) -> np.ndarray:
    """Least-squares fit on inliers (homography: DLT + Levenberg-Marquardt; affine: linear)."""
    if model == "homography":
        try:
            m, _ = cv2.findHomography(src, dst, 0)
        except cv2.error:
            m = None
        return normalize(m) if m is not None and np.isfinite(m).all() else fallback
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return np.vstack([sol.T, [0.0, 0.0, 1.0]])


def footprint(h_hr_to_lr: np.ndarray, hr_shape: tuple[int, int], margin: float) -> np.ndarray:
    """The HR image's outline in LR coordinates (4x2), the HR inset by ``margin`` HR pixels."""
    hh, wh = hr_shape
    m = margin - 0.5
    corners = np.array([[m, m], [wh - 1 - m, m], [wh - 1 - m, hh - 1 - m], [m, hh - 1 - m]], dtype=np.float64)
    return apply(h_hr_to_lr, corners)


def is_convex(poly: np.ndarray) -> bool:
    """True for a strictly convex polygon (consistent winding, no self-intersection)."""
    a, b, c = poly, np.roll(poly, -1, axis=0), np.roll(poly, -2, axis=0)
    z = (b[:, 0] - a[:, 0]) * (c[:, 1] - b[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - b[:, 0])
    return bool(np.all(z > 0) or np.all(z < 0))


def _halfplanes(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inward half-planes ``n . p <= d`` of a convex polygon (any winding): (normals (M, 2), d (M,))."""
    a, b = poly, np.roll(poly, -1, axis=0)
    e = b - a
    area2 = np.sum(a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1])  # > 0 for counter-clockwise (y up)
    n = np.stack([e[:, 1], -e[:, 0]], axis=1) * (1.0 if area2 > 0 else -1.0)  # outward normals
    return n, np.sum(n * a, axis=1)


def largest_centred_box(
    poly: np.ndarray,
    centre: tuple[float, float],
    lr_shape: tuple[int, int],
    aspect: float,
    shrink: float = 0.0,
) -> tuple[int, int, int, int] | None:
    """Largest integer pixel box ``[x0, y0, x1, y1)`` centred on ``centre`` whose pixels lie inside
    the convex polygon ``poly`` and inside an LR image of ``lr_shape`` (rows, cols).

    Closed form: a rectangle with half-sizes ``(hx, hy)`` centred at ``c`` fits a half-plane
    ``n . p <= d`` iff ``|n_x| hx + |n_y| hy <= d - n . c``. The width/height ratio is searched
    within a factor 2 around ``aspect`` for the largest area, then each side is grown until tight.
    ``shrink`` removes that fraction of the width and height from each side. Returns None when the
    centre lies outside or no box of at least 1x1 pixel fits.
    """
    hl, wl = lr_shape
    cx, cy = centre
    frame = np.array([[-0.5, -0.5], [wl - 0.5, -0.5], [wl - 0.5, hl - 0.5], [-0.5, hl - 0.5]])
    n1, d1 = _halfplanes(np.asarray(poly, np.float64))
    n2, d2 = _halfplanes(frame)
    n, d = np.vstack([n1, n2]), np.concatenate([d1, d2])
    slack = d - n @ np.array([cx, cy])  # distance-like room of the centre to each edge
    if np.any(slack <= 0):
        return None
    ax, ay = np.abs(n[:, 0]), np.abs(n[:, 1])
    aspects = aspect * np.exp(np.linspace(-math.log(2), math.log(2), 2001))
    t = np.min(slack[None, :] / (ax[None, :] * aspects[:, None] + ay[None, :]), axis=1)  # half-height
    k = int(np.argmax(t * t * aspects))
    hy, hx = float(t[k]), float(t[k] * aspects[k])
    for _ in range(2):  # grow each side until tight (the aspect grid is discrete)
        with np.errstate(divide="ignore", invalid="ignore"):
            hx = max(hx, float(np.min(np.where(ax > 0, (slack - ay * hy) / ax, np.inf))))
            hy = max(hy, float(np.min(np.where(ay > 0, (slack - ax * hx) / ay, np.inf))))
    hx, hy = hx * (1.0 - 2.0 * shrink), hy * (1.0 - 2.0 * shrink)
    x0, x1 = math.ceil(cx - hx + 0.5 - 1e-9), math.floor(cx + hx + 0.5 + 1e-9)
    y0, y1 = math.ceil(cy - hy + 0.5 - 1e-9), math.floor(cy + hy + 0.5 + 1e-9)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, wl), min(y1, hl)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return int(x0), int(y0), int(x1), int(y1)
