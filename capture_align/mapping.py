"""The estimated LR <- HR geometry of a pair, and rendering the source HR through it.

A :class:`Mapping` is a homography ``H`` (HR-capture px -> LR-capture px) plus an optional smooth
displacement field ``d`` on the LR: LR position ``p`` shows source-HR point ``H^-1 (p + d(p))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from . import geometry as geo
from .field import PolyField

INTERPOLATIONS = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "linear": cv2.INTER_LINEAR}
_STRIP = 256  # output rows per remap strip (bounds the memory of coordinate maps)


@dataclass(frozen=True)
class Mapping:
    homography: np.ndarray  #: HR-capture px -> LR-capture px (3x3)
    field: PolyField | None = None  #: LR-px displacement added before inverting the homography

    def lr_to_hr(self, pts: np.ndarray) -> np.ndarray:
        """Source-HR points shown at LR points ``pts`` (N, 2)."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        if self.field is not None:
            dx, dy = self.field(p[:, 0], p[:, 1])
            p = p + np.stack([dx, dy], axis=1)
        return geo.apply(np.linalg.inv(self.homography), p)

    def with_homography(self, h: np.ndarray) -> "Mapping":
        return Mapping(geo.normalize(h), self.field)

    def field_extent(self, box: tuple[int, int, int, int]) -> float:
        """Largest field displacement (LR px) on the outline of ``box``."""
        if self.field is None:
            return 0.0
        x0, y0, x1, y1 = box
        t = np.linspace(0.0, 1.0, 64)
        xs = np.concatenate([x0 + t * (x1 - 1 - x0), x0 + t * (x1 - 1 - x0), np.full(64, x0), np.full(64, x1 - 1)])
        ys = np.concatenate([np.full(64, y0), np.full(64, y1 - 1), y0 + t * (y1 - 1 - y0), y0 + t * (y1 - 1 - y0)])
        dx, dy = self.field(xs, ys)
        return float(np.hypot(dx, dy).max())

    def to_json(self) -> dict[str, Any]:
        return {
            "homography": np.round(self.homography, 12).tolist(),
            "field": None if self.field is None else self.field.to_json(),
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> "Mapping":
        """Rebuild the mapping of a manifest entry written by ``realsr align``."""
        f = entry.get("field")
        return cls(np.asarray(entry["homography"], np.float64), None if f is None else PolyField.from_json(f))


def render(
    src: np.ndarray,
    mapping: Mapping,
    grid_to_lr: np.ndarray,
    size: tuple[int, int],
    src_from_hr: np.ndarray | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Sample ``src`` (an image in source-HR coordinates, or related to them by ``src_from_hr``)
    on a grid of ``size`` = (width, height) pixels whose pixel ``x`` lies at LR position
    ``grid_to_lr @ x``. Without a field this is one ``warpPerspective``; with a field (then the
    grid must be a scaling plus translation of the LR, so the field is evaluated separably) the
    coordinates are built strip by strip and sampled with ``remap``.
    """
    s = np.eye(3) if src_from_hr is None else src_from_hr
    h_inv = np.linalg.inv(mapping.homography)
    if mapping.field is None:
        m = s @ h_inv @ grid_to_lr
        return cv2.warpPerspective(src, m, size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
    g = grid_to_lr / grid_to_lr[2, 2]
    if g[0, 1] != 0 or g[1, 0] != 0 or g[2, 0] != 0 or g[2, 1] != 0:
        raise ValueError("with a displacement field the grid must be a scaling plus translation of the LR")
    w, h = size
    m = s @ h_inv
    xs = g[0, 0] * np.arange(w) + g[0, 2]  # LR x of each grid column
    ys = g[1, 1] * np.arange(h) + g[1, 2]  # LR y of each grid row
    field_grid = mapping.field.on_grid(xs, ys)
    xs32, ys32 = xs.astype(np.float32)[None, :], ys.astype(np.float32)[:, None]
    out = np.empty((h, w) + src.shape[2:], src.dtype)
    for r0 in range(0, h, _STRIP):
        r1 = min(h, r0 + _STRIP)
        # LR position + field, then through H^-1 (float64 for the division, float32 maps for remap)
        px = (xs32 + field_grid[0][r0:r1]).astype(np.float64)
        py = (ys32[r0:r1] + field_grid[1][r0:r1]).astype(np.float64)
        qw = m[2, 0] * px + m[2, 1] * py + m[2, 2]
        mx = ((m[0, 0] * px + m[0, 1] * py + m[0, 2]) / qw).astype(np.float32)
        my = ((m[1, 0] * px + m[1, 1] * py + m[1, 2]) / qw).astype(np.float32)
        out[r0:r1] = cv2.remap(src, mx, my, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out


def source_coords(mapping: Mapping, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source-HR coordinates (x, y), each (len(ys), len(xs)) float64, shown at the LR grid ``xs`` x ``ys``."""
    px = np.broadcast_to(np.asarray(xs, np.float64)[None, :], (len(ys), len(xs)))
    py = np.broadcast_to(np.asarray(ys, np.float64)[:, None], (len(ys), len(xs)))
    if mapping.field is not None:
        dx, dy = mapping.field.on_grid(xs, ys)
        px, py = px + dx, py + dy
    m = np.linalg.inv(mapping.homography)
    w = m[2, 0] * px + m[2, 1] * py + m[2, 2]
    return (m[0, 0] * px + m[0, 1] * py + m[0, 2]) / w, (m[1, 0] * px + m[1, 1] * py + m[1, 2]) / w


def render_hr(hr: np.ndarray, mapping: Mapping, lr_box: tuple[int, int, int, int], scale: int,
              interpolation: str = "cubic") -> np.ndarray:
    """Render the source HR capture on the output grid: exactly ``scale`` times the LR box.

    Output pixel ``q`` sits at LR position ``(q + 0.5) / scale - 0.5 + box origin`` and samples the
    source HR once, through the mapping. When the source is sampled more coarsely than one source
    pixel per output pixel (focal ratio above ``scale``) it is Gaussian-prefiltered with sigma
    ``(k - 1) / 2`` source px (k = source px per output px) against aliasing.

    With a displacement field the source coordinates are computed exactly on the LR grid (plus a
    one-pixel rim) and bilinearly upsampled to the output grid (``cv2.resize`` uses the same
    pixel-centre convention); the map is smooth, so this costs < 1e-4 px and saves scale^2 work.
    """
    x0, y0, x1, y1 = lr_box
    grid_to_lr = geo.translation(x0, y0) @ geo.scaling(1.0 / scale)
    out_w, out_h = (x1 - x0) * scale, (y1 - y0) * scale
    out_to_src = np.linalg.inv(mapping.homography) @ grid_to_lr
    k = geo.local_scale(out_to_src, (out_w / 2.0, out_h / 2.0))  # source px per output px
    src = hr
    if k > 1.05:
        src = cv2.GaussianBlur(hr, (0, 0), (k - 1.0) / 2.0)
    flags = INTERPOLATIONS[interpolation]
    if mapping.field is None:
        return cv2.warpPerspective(src, out_to_src, (out_w, out_h), flags=flags | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
    out = np.empty((out_h, out_w) + hr.shape[2:], hr.dtype)
    xs = np.arange(x0 - 1, x1 + 1, dtype=np.float64)
    for r0 in range(0, y1 - y0, _STRIP):  # strips of LR rows keep the coordinate maps small
        r1 = min(y1 - y0, r0 + _STRIP)
        ys = np.arange(y0 + r0 - 1, y0 + r1 + 1, dtype=np.float64)
        sx, sy = source_coords(mapping, xs, ys)
        big = (len(xs) * scale, len(ys) * scale)
        mx = cv2.resize(sx.astype(np.float32), big, interpolation=cv2.INTER_LINEAR)[scale:-scale, scale:-scale]
        my = cv2.resize(sy.astype(np.float32), big, interpolation=cv2.INTER_LINEAR)[scale:-scale, scale:-scale]
        out[r0 * scale : r1 * scale] = cv2.remap(src, mx, my, flags, borderMode=cv2.BORDER_REPLICATE)
    return out
