"""Alignment of one LR/HR capture pair, arrays in and arrays out (the method: ``docs/align.md``).

:func:`align_pair` = estimate the mapping (:mod:`.refine`: coarse SIFT, D2CRealSR iterative
refinement, ECC + smooth field) -> render the HR once from the source at exactly ``scale`` times
the LR crop (:mod:`.mapping`) -> photometric correction of the LR (:mod:`.photometric`) -> quality
gates measured on the written pair (:mod:`.quality`). The dataset runner is :mod:`.dataset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realsr.color import rgb_to_gray, rgb_to_y
from realsr.images import as_rgb, from_float, max_value, to_float
from realsr.resize import imresize

from .mapping import Mapping, render_hr
from .params import AlignParams
from .photometric import ColourTransform, fit_transfer
from .quality import Residual, psnr, residual_shifts
from .refine import AlignmentFailed, estimate, gray_of

__all__ = ["AlignParams", "AlignResult", "AlignmentFailed", "align_pair"]


@dataclass
class AlignResult:
    """Outcome of :func:`align_pair`. ``status`` is "ok" or "rejected" (with ``reason``)."""

    status: str
    reason: str | None
    lr: np.ndarray  #: LR crop, photometrically corrected, input dtype (empty when rejected for zoom)
    hr: np.ndarray  #: HR, exactly ``scale`` times the LR, input dtype
    mapping: Mapping  #: LR position p shows source-HR point mapping.lr_to_hr(p)
    lr_box: tuple[int, int, int, int]  #: [x0, y0, x1, y1) in LR-capture px
    inliers: int
    iterations: int
    zoom: float  #: measured focal ratio at the HR centre
    residual: Residual
    psnr_y: float
    colour: ColourTransform
    hr_small: np.ndarray = field(repr=False)  #: HR bicubic-downscaled to the LR grid, float RGB [0, 1]

    @property
    def homography(self) -> np.ndarray:
        return self.mapping.homography

    def manifest_fields(self) -> dict[str, Any]:
        """The per-pair fields of the manifest (ARCHITECTURE.md)."""
        return {
            **self.mapping.to_json(),
            "lr_box": list(map(int, self.lr_box)),
            "lr_size": [int(self.lr.shape[1]), int(self.lr.shape[0])],
            "hr_size": [int(self.hr.shape[1]), int(self.hr.shape[0])],
            "inliers": int(self.inliers),
            "iterations": int(self.iterations),
            "zoom": round(float(self.zoom), 5),
            "residual_px": _num(self.residual.median, 4),
            "residual_p90_px": _num(self.residual.p90, 4),
            "residual_tiles": int(self.residual.tiles),
            "psnr_y": _num(self.psnr_y, 3),
            "colour_transform": self.colour.to_json(),
        }


def _num(x: float, nd: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _capture(img: np.ndarray, what: str) -> np.ndarray:
    """A capture array as ``align_pair`` works on it: (H, W, 3) RGB uint8/uint16, contiguous. Gray and
    RGBA become RGB; float [0, 1] becomes 16-bit (as a float TIFF is read); :func:`as_rgb` refuses the rest."""
    try:
        x = as_rgb(img)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    if x.dtype.kind == "f":
        x = from_float(x, np.uint16)
    return np.ascontiguousarray(x)


def align_pair(lr: np.ndarray, hr: np.ndarray, p: AlignParams) -> AlignResult:
    """Align one capture pair (arrays of any sizes: RGB, gray or RGBA; uint8, uint16 or float [0, 1],
    which is taken as 16-bit) and gate its quality; the outputs keep each capture's bit depth.

    Returns an :class:`AlignResult` with status "ok" or "rejected"; raises
    :class:`AlignmentFailed` when the pair cannot be aligned at all, :class:`ValueError` for arrays
    that are no image (see :func:`realsr.images.as_rgb`).
    """
    lr, hr = _capture(lr, "LR"), _capture(hr, "HR")
    est = estimate(gray_of(lr), gray_of(hr), p)
    zoom = p.expected_zoom
    nan = float("nan")
    if est.lr_box is None:  # measured zoom out of tolerance: nothing is rendered
        hint = (" (both captures show the same view: the same photo twice?)" if abs(est.zoom - 1.0) < 0.02
                else " (LR and HR swapped?)" if est.zoom < 1.0 else "")
        reason = f"wrong scale: measured zoom {est.zoom:.3f}, expected {zoom:g} +/- {p.zoom_tolerance:.0%}{hint}"
        empty = np.zeros((0, 0, 3), lr.dtype)
        return AlignResult("rejected", reason, empty, empty, est.mapping, (0, 0, 0, 0), est.inliers, 0, est.zoom,
                           Residual(nan, nan, 0, np.zeros((0, 4))), nan, ColourTransform.identity(),
                           np.zeros((0, 0, 3), np.float32))
    box = est.lr_box
    x0, y0, x1, y1 = box
    hr_out = render_hr(hr, est.mapping, box, p.scale, p.interpolation)
    hr_small = imresize(hr_out, 1.0 / p.scale, float_result=True)
    hr_small *= np.float32(1.0 / max_value(hr_out.dtype))
    lr_crop = to_float(lr[y0:y1, x0:x1])
    colour = fit_transfer(lr_crop, hr_small, p.photometric, p.photometric_sigma)
    lr_out = from_float(colour.apply(lr_crop), lr.dtype)
    lr_written = to_float(lr_out)
    res = residual_shifts(rgb_to_gray(lr_written), rgb_to_gray(hr_small))
    b = min(p.scale, (x1 - x0) // 4, (y1 - y0) // 4)  # border excluded from PSNR, LR px
    sl = (slice(b, (y1 - y0) - b), slice(b, (x1 - x0) - b))
    hr_q = np.round(np.clip(hr_small, 0, 1) * 255.0) / 255.0  # as an 8-bit bicubic LR would be
    q = psnr(rgb_to_y(lr_written[sl]), rgb_to_y(hr_q[sl]))

    status, reason = "ok", None
    if est.inliers < p.min_inliers:
        status, reason = "rejected", f"too few inliers: {est.inliers} < {p.min_inliers}"
    elif not math.isfinite(res.median):
        status, reason = "rejected", "residual misalignment could not be measured (no textured tiles)"
    elif res.median > p.max_residual:
        status, reason = "rejected", f"residual misalignment {res.median:.3f} LR px > {p.max_residual}"
    elif q < p.min_psnr:
        status, reason = "rejected", f"PSNR-Y {q:.2f} dB < {p.min_psnr}"
    return AlignResult(status, reason, lr_out, hr_out, est.mapping, box, est.inliers, est.iterations, est.zoom, res,
                       q, colour, hr_small)
