"""A smooth 2-D displacement field: a low-degree polynomial in LR coordinates.

Used on top of the homography to absorb what a homography cannot: lens distortion of either camera
(radial distortion ``k1 r^2`` is exactly cubic) and other slow, smooth misregistration. Fitted to
tile shifts by iteratively reweighted least squares (Huber), so a few bad tiles do not bend it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _exponents(degree: int) -> list[tuple[int, int]]:
    return [(i, t - i) for t in range(degree + 1) for i in range(t, -1, -1)]


@dataclass(frozen=True)
class PolyField:
    """``d(x, y) = sum_k c_k u^i v^j`` with ``u = (x - cx) / norm``, ``v = (y - cy) / norm``
    (x, y in LR pixels); ``dx`` and ``dy`` coefficients in LR pixels."""

    degree: int
    centre: tuple[float, float]
    norm: float
    coef_x: tuple[float, ...]
    coef_y: tuple[float, ...]

    def _basis(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u = (np.asarray(x, np.float64) - self.centre[0]) / self.norm
        v = (np.asarray(y, np.float64) - self.centre[1]) / self.norm
        return np.stack([u**i * v**j for i, j in _exponents(self.degree)], axis=-1)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement ``(dx, dy)`` at LR points ``(x, y)`` (any equal shapes)."""
        b = self._basis(x, y)
        return b @ np.asarray(self.coef_x), b @ np.asarray(self.coef_y)

    def on_grid(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement on the grid ``xs`` (columns) x ``ys`` (rows), each (len(ys), len(xs)) float32.

        Exact and fast: the polynomial factorises as ``V C U^T`` with ``U[k, i] = u_k^i`` and
        ``V[k, j] = v_k^j``, so no per-pixel basis is built.
        """
        u = (np.asarray(xs, np.float64) - self.centre[0]) / self.norm
        v = (np.asarray(ys, np.float64) - self.centre[1]) / self.norm
        n = self.degree + 1
        uu = np.stack([u**i for i in range(n)], axis=1)
        vv = np.stack([v**j for j in range(n)], axis=1)
        out = []
        for coef in (self.coef_x, self.coef_y):
            c = np.zeros((n, n))  # c[j, i]: coefficient of u^i v^j
            for (i, j), a in zip(_exponents(self.degree), coef):
                c[j, i] = a
            out.append(vv.astype(np.float32) @ (c @ uu.T).astype(np.float32))
        return out[0], out[1]

    def add(self, other: "PolyField") -> "PolyField":
        """The sum of two fields of the same frame (degree is the larger of the two)."""
        a, b = self.with_degree(max(self.degree, other.degree)), other.with_degree(max(self.degree, other.degree))
        if (a.centre, a.norm) != (b.centre, b.norm):
            raise ValueError("fields in different frames")
        return PolyField(a.degree, a.centre, a.norm, tuple(np.add(a.coef_x, b.coef_x)), tuple(np.add(a.coef_y, b.coef_y)))

    def with_degree(self, degree: int) -> "PolyField":
        if degree == self.degree:
            return self
        if degree < self.degree:
            raise ValueError("cannot lower the degree")
        old = dict(zip(_exponents(self.degree), zip(self.coef_x, self.coef_y)))
        exps = _exponents(degree)
        cx = tuple(old.get(e, (0.0, 0.0))[0] for e in exps)
        cy = tuple(old.get(e, (0.0, 0.0))[1] for e in exps)
        return PolyField(degree, self.centre, self.norm, cx, cy)

    @classmethod
    def zero(cls, centre: tuple[float, float], norm: float, degree: int = 0) -> "PolyField":
        n = len(_exponents(degree))
        return cls(degree, centre, norm, (0.0,) * n, (0.0,) * n)

    def to_json(self) -> dict[str, Any]:
        return {
            "degree": self.degree,
            "centre": [float(self.centre[0]), float(self.centre[1])],
            "norm": float(self.norm),
            "exponents": [list(e) for e in _exponents(self.degree)],
            "coef_x": [float(c) for c in self.coef_x],
            "coef_y": [float(c) for c in self.coef_y],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "PolyField":
        return cls(int(obj["degree"]), tuple(obj["centre"]), float(obj["norm"]), tuple(obj["coef_x"]), tuple(obj["coef_y"]))


def fit_field(
    pts: np.ndarray,
    shifts: np.ndarray,
    centre: tuple[float, float],
    norm: float,
    degree: int = 3,
    min_per_term: float = 3.0,
) -> PolyField | None:
    """Robust polynomial fit of ``shifts`` (N, 2) measured at ``pts`` (N, 2), both in LR pixels.

    The degree drops until there are at least ``min_per_term`` points per coefficient; returns
    None with fewer than 3 points. Huber IRLS with the scale from the median absolute deviation.
    """
    pts = np.asarray(pts, np.float64)
    shifts = np.asarray(shifts, np.float64)
    if len(pts) < 3:
        return None
    while degree > 0 and len(pts) < min_per_term * len(_exponents(degree)):
        degree -= 1
    proto = PolyField.zero(centre, norm, degree)
    a = proto._basis(pts[:, 0], pts[:, 1])
    w = np.ones(len(pts))
    coef = np.zeros((a.shape[1], 2))
    for _ in range(8):
        sw = np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(a * sw, shifts * sw, rcond=None)
        r = np.linalg.norm(shifts - a @ coef, axis=1)
        s = 1.4826 * np.median(r) + 1e-6
        k = 1.5 * s
        w = np.where(r <= k, 1.0, k / np.maximum(r, 1e-12))
    return PolyField(degree, (float(centre[0]), float(centre[1])), float(norm), tuple(coef[:, 0]), tuple(coef[:, 1]))
