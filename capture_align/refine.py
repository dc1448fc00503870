"""Estimating the LR <- HR mapping of a capture pair (steps 1-3 of ``docs/align.md``).

1. :func:`coarse_fit`: SIFT at reduced resolution, ratio test, robust homography.
2. :func:`sift_rounds`: the D2CRealSR iteration: render the *source* HR through the current
   estimate onto a centred LR crop (shrinking each round), blurred to the LR's sharpness; match
   SIFT against the LR; compose the update. Nothing is ever resampled twice.
3. :func:`ecc_step` and :func:`field_passes`: dense sub-pixel refinement on the final crop (ECC
   homography, then a smooth polynomial displacement field fitted to per-tile shifts).

All images here are float32 gray in [0, 1]; positions are LR-capture pixels unless stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realsr.errors import RealsrError
from realsr.images import max_value

from . import features as feat
from . import geometry as geo
from .field import fit_field
from .mapping import Mapping, render
from .params import AlignParams
from .quality import residual_shifts

Box = tuple[int, int, int, int]


class AlignmentFailed(RealsrError):
    """The pair could not be aligned (no features, no overlap, degenerate geometry)."""


def gray_of(img: np.ndarray) -> np.ndarray:
    """Full-range luma of an RGB uint8/uint16 image as float32 in [0, 1] (memory-light)."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g *= np.float32(1.0 / max_value(img.dtype))
    return g


def reduce(img: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    """Area-downscale ``img`` by ``f`` (<= 1); returns it and the map original px -> reduced px."""
    h, w = img.shape[:2]
    if f >= 1.0:
        return img, np.eye(3)
    nw, nh = max(1, int(round(w * f))), max(1, int(round(h * f)))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA), geo.scaling(nw / w, nh / h)


def hr_centre(hr_shape: tuple[int, int]) -> tuple[float, float]:
    return ((hr_shape[1] - 1) / 2.0, (hr_shape[0] - 1) / 2.0)


def measured_zoom(h: np.ndarray, hr_shape: tuple[int, int]) -> float:
    """Focal ratio at the HR centre: HR pixels per LR pixel."""
    return 1.0 / geo.local_scale(h, hr_centre(hr_shape))


def check_geometry(h: np.ndarray, hr_shape: tuple[int, int]) -> None:
    """Raise :class:`AlignmentFailed` for a mirrored, singular or folded transform."""
    if not np.isfinite(h).all() or not geo.is_orientation_preserving(h, hr_centre(hr_shape)):
        raise AlignmentFailed("degenerate transform (mirrored or singular)")
    if not geo.is_convex(geo.footprint(h, hr_shape, 0.0)):
        raise AlignmentFailed("degenerate transform (HR outline not convex in the LR)")


def crop_box(mapping: Mapping, hr_shape, lr_shape, p: AlignParams, rounds: int, zoom: float) -> Box | None:
    """The centred LR box of refinement round ``rounds`` (shrunk ``rounds`` times by ``p.crop``);
    the HR border margin grows by the field's displacement so the HR is never sampled outside."""
    h = mapping.homography
    c = geo.apply(h, np.array([hr_centre(hr_shape)]))[0]
    extra = 0.0
    for _ in range(2):  # the field is evaluated on the box it shapes: settle in two passes
        poly = geo.footprint(h, hr_shape, p.margin + extra * zoom)
        box = geo.largest_centred_box(poly, (c[0], c[1]), lr_shape, hr_shape[1] / hr_shape[0],
                                      shrink=min(0.45, p.crop * rounds))
        if box is None or mapping.field is None:
            return box
        extra = mapping.field_extent(box) + 0.5
    return box


def coarse_fit(lr_g: np.ndarray, hr_g: np.ndarray, p: AlignParams, hr_factor: float) -> tuple[geo.Fit | None, int, int]:
    """Coarse SIFT fit with the LR reduced to ``coarse_size`` and the HR by ``hr_factor`` more.

    Returns the fit in full-resolution capture coordinates (or None) and the keypoint counts.
    """
    f_lr = min(1.0, p.coarse_size / max(lr_g.shape))
    lr_c, s_lr = reduce(lr_g, f_lr)
    hr_c, s_hr = reduce(hr_g, min(1.0, f_lr * hr_factor))
    fa = feat.detect(feat.to_matching_u8(lr_c), p.max_features)
    fb = feat.detect(feat.to_matching_u8(hr_c), p.max_features)
    ia, ib = feat.match(fb, fa, p.ratio)
    fit = geo.fit_transform(fb.points[ia], fa.points[ib], p.model, p.method, p.coarse_threshold)
    if fit is None:
        return None, len(fa), len(fb)
    full = geo.normalize(np.linalg.inv(s_lr) @ fit.matrix @ s_hr)
    return geo.Fit(full, fit.inliers, fit.rms), len(fa), len(fb)


def work_grid(box: Box, f: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Working grid over an LR box at factor ``f``: (grid px -> LR px map, (width, height))."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    ww, wh = max(1, int(round(bw * f))), max(1, int(round(bh * f)))
    return geo.translation(x0, y0) @ np.linalg.inv(geo.scaling(ww / bw, wh / bh)), (ww, wh)


@dataclass
class Workspace:
    """What the refinement steps share: the images, the working scale and the blurred HR."""

    lr_g: np.ndarray
    p: AlignParams
    f_w: float  #: working grid pixels per LR pixel
    blurred: np.ndarray  #: the HR gray blurred to the LR's sharpness at the working scale (maybe decimated)
    blurred_from_hr: np.ndarray  #: HR px -> blurred px

    @classmethod
    def build(cls, lr_g: np.ndarray, hr_g: np.ndarray, p: AlignParams, box: Box, zoom: float) -> "Workspace":
        f_w = min(1.0, p.work_size / max(box[2] - box[0], box[3] - box[1]))
        # LR optics (p.blur LR px) plus the area filter of one working pixel (1/f_w LR px wide),
        # expressed in HR pixels.
        sigma = zoom * math.sqrt(p.blur**2 + 1.0 / (12.0 * f_w * f_w))
        g = max(1, int(sigma // 1.5))  # decimate first when the blur is wide (speed)
        dec, s = reduce(hr_g, 1.0 / g) if g > 1 else (hr_g, np.eye(3))
        sig = math.sqrt(max(sigma**2 - (g * g - 1) / 12.0, 0.25)) / g
        return cls(lr_g, p, f_w, cv2.GaussianBlur(dec, (0, 0), sig), s)

    def lr_work(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """The LR crop on the working grid, and the grid -> LR map."""
        w2l, size = work_grid(box, self.f_w)
        x0, y0, x1, y1 = box
        crop = self.lr_g[y0:y1, x0:x1]
        return (cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if self.f_w < 1 else crop.copy()), w2l

    def render(self, mapping: Mapping, box: Box) -> np.ndarray:
        """The blurred source HR seen through ``mapping`` on the working grid of ``box``."""
        w2l, size = work_grid(box, self.f_w)
        return render(self.blurred, mapping, w2l, size, src_from_hr=self.blurred_from_hr)


def sift_rounds(ws: Workspace, mapping: Mapping, hr_shape, lr_shape, zoom: float) -> tuple[Mapping, int, int]:
    """The D2CRealSR iteration; returns (mapping, inliers of the last round, rounds done)."""
    p = ws.p
    box0 = crop_box(mapping, hr_shape, lr_shape, p, 1, zoom)
    if box0 is None:
        raise AlignmentFailed("no overlap: the HR's centre falls outside the LR capture")
    lr_w0, w2l0 = ws.lr_work(box0)
    lr_f = feat.detect(feat.to_matching_u8(lr_w0), p.max_features)
    lr_pts = geo.apply(w2l0, lr_f.points)  # LR features are found once, on the first (largest) crop
    thr = p.refine_threshold / ws.f_w
    inliers, done = 0, 0
    for k in range(1, p.max_iters + 1):
        box = crop_box(mapping, hr_shape, lr_shape, p, k, zoom)
        if box is None:
            raise AlignmentFailed("refinement lost the overlap")
        w2l, _ = work_grid(box, ws.f_w)
        rf = feat.detect(feat.to_matching_u8(ws.render(mapping, box)), p.max_features)
        x0, y0, x1, y1 = box
        inside = (lr_pts[:, 0] >= x0) & (lr_pts[:, 0] < x1) & (lr_pts[:, 1] >= y0) & (lr_pts[:, 1] < y1)
        ia, ib = feat.match(rf, lr_f.subset(inside), p.ratio)
        fit = geo.fit_transform(geo.apply(w2l, rf.points[ia]), lr_pts[inside][ib], p.model, p.method, thr)
        if fit is None or fit.n_inliers < 8:
            if k == 1:
                raise AlignmentFailed("refinement found too few consistent matches")
            break
        mapping = mapping.with_homography(fit.matrix @ mapping.homography)
        check_geometry(mapping.homography, hr_shape)
        inliers, done = fit.n_inliers, k
        if geo.displacement(fit.matrix, geo.box_corners(box)).max() < p.tol:
            break
    return mapping, inliers, done


def ecc_step(ws: Workspace, mapping: Mapping, box: Box) -> Mapping:
    """ECC homography refinement on the working grid of ``box`` (unchanged if ECC fails)."""
    lr_w, w2l = ws.lr_work(box)
    tmpl = cv2.GaussianBlur(lr_w, (0, 0), 0.5)
    rend = cv2.GaussianBlur(ws.render(mapping, box), (0, 0), 0.5)
    warp = np.eye(3, dtype=np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    try:
        _, warp = cv2.findTransformECC(tmpl, rend, warp, cv2.MOTION_HOMOGRAPHY, crit, None, 1)
    except cv2.error:
        return mapping
    w = warp.astype(np.float64)
    size = np.array([[0.0, 0.0], [lr_w.shape[1], lr_w.shape[0]]])
    if not np.isfinite(w).all() or geo.displacement(w, size).max() > 5.0:
        return mapping
    # rend(W x) ~ lr(x): LR point w2l(x) shows what the render shows at W x.
    return mapping.with_homography(w2l @ np.linalg.inv(w) @ np.linalg.inv(w2l) @ mapping.homography)


def field_passes(ws: Workspace, mapping: Mapping, box: Box, passes: int = 2) -> Mapping:
    """Fit a smooth displacement field to per-tile shifts between the LR and the render."""
    x0, y0, x1, y1 = box
    centre = ((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
    norm = 0.5 * math.hypot(x1 - x0, y1 - y0)
    lr_w, w2l = ws.lr_work(box)
    for _ in range(passes):
        res = residual_shifts(lr_w, ws.render(mapping, box), max_tiles=400)
        if res.tiles < 6:
            break
        pos = geo.apply(w2l, res.shifts[:, :2])
        d = res.shifts[:, 2:] * np.array([w2l[0, 0], w2l[1, 1]])  # working px -> LR px
        upd = fit_field(pos, d, centre, norm, ws.p.field_degree)
        if upd is None:
            break
        field = upd if mapping.field is None else mapping.field.add(upd)
        mapping = Mapping(mapping.homography, field)
        if np.hypot(*upd(pos[:, 0], pos[:, 1])).max() < 0.01:
            break
    return mapping


@dataclass
class Estimate:
    mapping: Mapping
    lr_box: Box | None  #: None when the measured zoom is out of tolerance (nothing else was done)
    inliers: int
    iterations: int
    zoom: float


def estimate(lr_g: np.ndarray, hr_g: np.ndarray, p: AlignParams) -> Estimate:
    """Steps 1-3 on float gray captures: the mapping, the output box and the figures.

    Raises :class:`AlignmentFailed` (no features, no overlap, swapped, degenerate).
    """
    lr_shape, hr_shape = lr_g.shape[:2], hr_g.shape[:2]
    zoom = p.expected_zoom
    fit, n_lr, n_hr = coarse_fit(lr_g, hr_g, p, 1.0 / zoom)
    if fit is None or fit.n_inliers < 8:
        # Before giving up, try the roles reversed: a swapped pair has the "HR" zoomed *out*.
        swapped, _, _ = coarse_fit(lr_g, hr_g, p, zoom)
        if swapped is not None and swapped.n_inliers >= 8 and measured_zoom(swapped.matrix, hr_shape) < 1.0:
            z = measured_zoom(swapped.matrix, hr_shape)
            raise AlignmentFailed(f"LR and HR look swapped: the HR capture shows a wider view (measured zoom {z:.2f})")
        few = min(n_lr, n_hr)
        if few < 20:
            which = "LR" if n_lr <= n_hr else "HR"
            # the HR is matched shrunk by the expected zoom: a --scale far above the true zoom shrinks
            # it to a few pixels, which looks featureless however detailed the capture is
            f = min(1.0, p.coarse_size / max(lr_shape)) / zoom
            small = which == "HR" and max(hr_shape) * f < 64
            hint = (f" (matched shrunk by the expected zoom to {round(hr_shape[1] * f)}x{round(hr_shape[0] * f)} px: "
                    "is --scale right?)") if small else ""
            raise AlignmentFailed(f"featureless image: only {few} SIFT keypoints in the {which} capture{hint}")
        got = 0 if fit is None else fit.n_inliers
        raise AlignmentFailed(f"no overlap found: only {got} consistent feature matches")
    check_geometry(fit.matrix, hr_shape)
    mapping = Mapping(fit.matrix)
    z = measured_zoom(fit.matrix, hr_shape)
    if abs(z / zoom - 1.0) > p.zoom_tolerance:
        return Estimate(mapping, None, fit.n_inliers, 0, z)
    inliers, rounds = fit.n_inliers, 0
    box = crop_box(mapping, hr_shape, lr_shape, p, 1, z)
    if box is None:
        raise AlignmentFailed("no overlap: the HR's centre falls outside the LR capture")
    if p.max_iters > 0 or p.refine != "none":
        ws = Workspace.build(lr_g, hr_g, p, box, z)
        if p.max_iters > 0:
            mapping, inliers, rounds = sift_rounds(ws, mapping, hr_shape, lr_shape, z)
        # the dense steps work on the output crop (same shrink as the last SIFT round)
        box = crop_box(mapping, hr_shape, lr_shape, p, rounds, z)
        if box is not None and p.refine in ("ecc", "field"):
            mapping = ecc_step(ws, mapping, box)
            if p.refine == "field":
                box = crop_box(mapping, hr_shape, lr_shape, p, rounds, z) or box
                mapping = field_passes(ws, mapping, box)
        z = measured_zoom(mapping.homography, hr_shape)
    box = crop_box(mapping, hr_shape, lr_shape, p, rounds, z)
    if box is None or min(box[2] - box[0], box[3] - box[1]) < p.min_size:
        got = "none" if box is None else f"{box[2] - box[0]}x{box[3] - box[1]}"
        raise AlignmentFailed(f"overlap too small: {got} LR px (minimum {p.min_size})")
    return Estimate(mapping, box, inliers, rounds, z)

