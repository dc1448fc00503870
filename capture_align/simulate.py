"""Capture simulator: realistic LR/HR capture pairs with a known ground-truth geometry.

From one sharp photo (the *scene*) it renders what two cameras would record:

* the **LR capture**: short focal length, the whole scene, lens distortion (radial, about the image
  centre), optical blur, exposure and colour change, signal-dependent sensor noise, optional JPEG;
* the **HR capture**: long focal length (``zoom`` times more pixels per scene detail), a small
  rotation / perspective tilt / offset relative to the LR camera, its own light blur and noise.

The exact map from HR-capture pixels to LR-capture pixels is returned as a :class:`Truth`, which
can score an estimated homography (:meth:`Truth.residual`). Coordinates follow
:mod:`realsr.capture_align.geometry` (pixel centres at integers). All images are RGB; the scene is
float in [0, 1] or uint8/uint16; outputs are uint8 (or uint16 with ``bits=16``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from realsr.images import from_float, to_float

from . import geometry as geo


@dataclass(frozen=True)
class CaptureSpec:
    """Parameters of a simulated capture pair. Pixel units are stated per field."""

    lr_size: tuple[int, int] = (480, 640)  #: LR capture (rows, cols)
    zoom: float = 2.0  #: focal-length ratio: HR pixels per LR pixel at the image centre
    hr_size: tuple[int, int] | None = None  #: HR capture (rows, cols); None = same sensor as LR
    rotation_deg: float = 0.8  #: rotation of the HR camera about the optical axis, degrees
    perspective: float = 0.02  #: perspective tilt: relative scale change across the HR frame
    perspective_angle_deg: float = 30.0  #: direction of the tilt
    offset: tuple[float, float] = (6.0, -4.0)  #: HR centre offset from the LR centre, LR pixels (x, y)
    distortion: float = 0.0  #: LR radial distortion k1 (r normalised by the half-diagonal; <0 barrel)
    lr_blur: float = 0.8  #: LR optical blur, Gaussian sigma in LR pixels
    hr_blur: float = 0.5  #: HR optical blur, Gaussian sigma in HR pixels
    exposure: float = 0.9  #: LR gain relative to the HR
    colour: tuple[float, float, float] = (1.04, 1.0, 0.95)  #: LR per-channel (R, G, B) gains
    gamma: float = 1.05  #: LR tone curve exponent
    lr_noise: float = 0.01  #: LR noise std at mid-grey, fraction of full scale (signal dependent)
    hr_noise: float = 0.004  #: HR noise std at mid-grey
    jpeg_quality: int | None = None  #: JPEG-compress the LR capture at this quality
    fov_fill: float = 0.92  #: fraction of the scene the LR capture spans (leaves room for distortion)
    bits: int = 8  #: output bit depth, 8 or 16


@dataclass(frozen=True)
class Truth:
    """Ground-truth map from HR-capture pixels to LR-capture pixels.

    ``hr_to_lr(q) = distort(H q)``: a homography to the ideal (undistorted) LR image, then radial
    distortion ``d = c + (u - c) (1 + k1 |u - c|^2 / R^2)`` about the LR centre ``c``.
    """

    homography: np.ndarray
    k1: float = 0.0
    centre: tuple[float, float] = (0.0, 0.0)
    radius: float = 1.0
    lr_shape: tuple[int, int] = (0, 0)
    hr_shape: tuple[int, int] = (0, 0)

    def to_json(self) -> dict:
        return {
            "homography": np.asarray(self.homography).tolist(),
            "k1": self.k1,
            "centre": list(self.centre),
            "radius": self.radius,
            "lr_shape": list(self.lr_shape),
            "hr_shape": list(self.hr_shape),
        }

    @classmethod
    def from_json(cls, obj: dict) -> "Truth":
        return cls(np.asarray(obj["homography"], np.float64), float(obj["k1"]), tuple(obj["centre"]),
                   float(obj["radius"]), tuple(obj["lr_shape"]), tuple(obj["hr_shape"]))

    def hr_to_lr(self, pts: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` HR-capture points to LR-capture points."""
        return _distort(geo.apply(self.homography, pts), self.k1, self.centre, self.radius)

    def residual(self, estimate, lr_box: tuple[int, int, int, int], step: int = 4) -> dict[str, float]:
        """Misalignment (LR pixels) of an output made with an estimated geometry.

        ``estimate``: a :class:`~realsr.capture_align.mapping.Mapping` (or a 3x3 homography,
        HR -> LR). For LR pixels ``p`` on a grid over ``lr_box`` the written HR shows source-HR
        point ``q = estimate.lr_to_hr(p)``, which truly lies at ``hr_to_lr(q)`` in the LR; the error
        is the distance between the two. Returns ``mean``, ``median``, ``p95`` and ``max``.
        """
        if isinstance(estimate, np.ndarray):
            from .mapping import Mapping

            estimate = Mapping(estimate)
        x0, y0, x1, y1 = lr_box
        xs, ys = np.meshgrid(np.arange(x0, x1, step, dtype=np.float64), np.arange(y0, y1, step, dtype=np.float64))
        p = np.stack([xs.ravel(), ys.ravel()], axis=1)
        q = estimate.lr_to_hr(p)
        err = np.linalg.norm(self.hr_to_lr(q) - p, axis=1)
        return {
            "mean": float(err.mean()),
            "median": float(np.median(err)),
            "p95": float(np.percentile(err, 95)),
            "max": float(err.max()),
        }


@dataclass
class SimulatedPair:
    lr: np.ndarray  #: LR capture, (h, w, 3) RGB uint8/uint16
    hr: np.ndarray  #: HR capture, (H, W, 3) RGB uint8/uint16
    truth: Truth
    spec: CaptureSpec = field(default_factory=CaptureSpec)


def _distort(u: np.ndarray, k1: float, c: tuple[float, float], radius: float) -> np.ndarray:
    if k1 == 0.0:
        return u
    d = u - np.asarray(c)
    r2 = (d**2).sum(axis=1, keepdims=True) / radius**2
    return np.asarray(c) + d * (1.0 + k1 * r2)


def _undistort(d: np.ndarray, k1: float, c: tuple[float, float], radius: float) -> np.ndarray:
    """Invert :func:`_distort` by fixed-point iteration (converges for |k1| < ~0.2)."""
    if k1 == 0.0:
        return d
    dd = d - np.asarray(c)
    u = dd.copy()
    for _ in range(30):
        r2 = (u**2).sum(axis=1, keepdims=True) / radius**2
        u = dd / (1.0 + k1 * r2)
    return np.asarray(c) + u


def _hr_to_lr_ideal(spec: CaptureSpec, hr_shape: tuple[int, int], lr_shape: tuple[int, int]) -> np.ndarray:
    """Homography HR pixels -> ideal LR pixels: centre, scale 1/zoom, rotate, tilt, offset."""
    hh, wh = hr_shape
    hl, wl = lr_shape
    ch = geo.translation(-(wh - 1) / 2.0, -(hh - 1) / 2.0)
    a = math.radians(spec.perspective_angle_deg)
    # projective row: relative scale changes by ~spec.perspective across the frame width
    half = max(wh, hh) / 2.0
    tilt = np.array([[1.0, 0, 0], [0, 1.0, 0], [spec.perspective * math.cos(a) / half, spec.perspective * math.sin(a) / half, 1.0]])
    th = math.radians(spec.rotation_deg)
    rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1.0]])
    sc = np.diag([1.0 / spec.zoom, 1.0 / spec.zoom, 1.0])
    cl = geo.translation((wl - 1) / 2.0 + spec.offset[0], (hl - 1) / 2.0 + spec.offset[1])
    return geo.normalize(cl @ sc @ rot @ tilt @ ch)


def _render(
    src: np.ndarray, out_shape: tuple[int, int], out_to_src, src_px_per_out_px: float, blur_out_px: float
) -> np.ndarray:
    """Sample float image ``src`` at ``out_to_src(grid)``; Gaussian optics blur of ``blur_out_px``
    output pixels (applied before sampling when the source is finer than the output, after
    otherwise, so it also serves as anti-aliasing)."""
    h, w = out_shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = out_to_src(np.stack([xs.ravel(), ys.ravel()], axis=1))
    mx = pts[:, 0].reshape(h, w).astype(np.float32)
    my = pts[:, 1].reshape(h, w).astype(np.float32)
    del xs, ys, pts
    img = src
    if src_px_per_out_px > 1.0:
        sigma = max(blur_out_px * src_px_per_out_px, 0.5 * math.sqrt(src_px_per_out_px**2 - 1.0))
        img = cv2.GaussianBlur(src, (0, 0), sigma)
    out = cv2.remap(img, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    if src_px_per_out_px <= 1.0 and blur_out_px > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur_out_px)
    return out


def _finish(img: np.ndarray, gain: float, colour, gamma: float, noise: float, rng: np.random.Generator,
            jpeg_quality: int | None, bits: int) -> np.ndarray:
    """Tone, colour, signal-dependent noise, quantisation (and JPEG) of a float RGB render."""
    x = np.clip(img, 0.0, 1.0)
    if gamma != 1.0:
        x = x ** np.float32(gamma)
    x = x * (np.float32(gain) * np.asarray(colour, dtype=np.float32))
    if noise > 0:
        std = np.float32(noise) * np.sqrt(np.float32(0.2) + np.float32(1.6) * np.clip(x, 0, 1))
        x = x + std * rng.standard_normal(x.shape, dtype=np.float32)
    out = from_float(x, np.uint16 if bits == 16 else np.uint8)
    if jpeg_quality is not None:
        u8 = out if bits == 8 else (out >> 8).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        if bits == 16:
            out = out.astype(np.uint16) * 257
    return np.ascontiguousarray(out)


#: smallest scene side, in pixels, that captures can be rendered from
MIN_SCENE = 2


def simulate_pair(scene: np.ndarray, spec: CaptureSpec = CaptureSpec(), seed: int = 0) -> SimulatedPair:
    """Render an LR and an HR capture of ``scene`` (RGB) as two cameras would, with the truth.

    The LR spans ``fov_fill`` of the scene (centred, same aspect as ``lr_size``); the HR sees the
    part of it given by ``zoom``, rotation, tilt and offset. The scene is resampled as needed, so a
    small photo can make large captures (upsampled content is smooth, but still matchable).
    """
    rng = np.random.default_rng(seed)
    s = to_float(scene)
    hl, wl = spec.lr_size
    hh, wh = spec.hr_size or spec.lr_size
    sh, sw = s.shape[:2]
    if min(sh, sw) < MIN_SCENE:  # (OpenCV's remap with reflected borders never returns on a 1-px side)
        raise ValueError(f"the scene is {sw}x{sh} px: at least {MIN_SCENE} px per side are needed")
    a_l = spec.fov_fill * min(sw / wl, sh / hl)  # scene px per (ideal) LR px
    lr_to_scene = geo.translation((sw - 1) / 2.0, (sh - 1) / 2.0) @ np.diag([a_l, a_l, 1.0]) @ geo.translation(
        -(wl - 1) / 2.0, -(hl - 1) / 2.0
    )
    h_ideal = _hr_to_lr_ideal(spec, (hh, wh), (hl, wl))
    truth = Truth(h_ideal, spec.distortion, ((wl - 1) / 2.0, (hl - 1) / 2.0), math.hypot(wl, hl) / 2.0, (hl, wl), (hh, wh))

    lr = _render(
        s, (hl, wl),
        lambda d: geo.apply(lr_to_scene, _undistort(d, truth.k1, truth.centre, truth.radius)),
        a_l, spec.lr_blur,
    )
    lr = _finish(lr, spec.exposure, spec.colour, spec.gamma, spec.lr_noise, rng, spec.jpeg_quality, spec.bits)
    hr_to_scene = lr_to_scene @ h_ideal
    hr = _render(s, (hh, wh), lambda q: geo.apply(hr_to_scene, q), a_l / spec.zoom, spec.hr_blur)
    hr = _finish(hr, 1.0, (1.0, 1.0, 1.0), 1.0, spec.hr_noise, rng, None, spec.bits)
    return SimulatedPair(lr, hr, truth, spec)


def simulate_lr(hr: np.ndarray, spec: CaptureSpec = CaptureSpec(), seed: int = 0) -> SimulatedPair:
    """Render an LR capture *from a given HR capture* (kept unchanged) with the truth.

    The LR shows the HR's field of view reduced by ``zoom`` and ``fov_fill`` (so it lies inside the
    HR frame), with the spec's rotation, tilt, offset, distortion, blur, tone and noise.
    ``spec.lr_size`` is ignored; the LR size is ``fov_fill * HR size / zoom``.
    """
    rng = np.random.default_rng(seed)
    s = to_float(hr)
    hh, wh = s.shape[:2]
    hl = max(8, int(round(hh * spec.fov_fill / spec.zoom)))
    wl = max(8, int(round(wh * spec.fov_fill / spec.zoom)))
    h_ideal = _hr_to_lr_ideal(spec, (hh, wh), (hl, wl))
    truth = Truth(h_ideal, spec.distortion, ((wl - 1) / 2.0, (hl - 1) / 2.0), math.hypot(wl, hl) / 2.0, (hl, wl), (hh, wh))
    inv = np.linalg.inv(h_ideal)
    lr = _render(
        s, (hl, wl), lambda d: geo.apply(inv, _undistort(d, truth.k1, truth.centre, truth.radius)),
        spec.zoom, spec.lr_blur,
    )
    lr = _finish(lr, spec.exposure, spec.colour, spec.gamma, spec.lr_noise, rng, spec.jpeg_quality, spec.bits)
    out_hr = hr if hr.dtype in (np.uint8, np.uint16) else from_float(s, np.uint16 if spec.bits == 16 else np.uint8)
    return SimulatedPair(lr, out_hr, truth, replace(spec, lr_size=(hl, wl), hr_size=(hh, wh)))


def centred_homography(shape: tuple[int, int], rotation_deg: float = 0.0, scale: float = 1.0,
                       shift: tuple[float, float] = (0.0, 0.0),
                       perspective: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A homography on the pixels of an image of ``shape`` (rows, cols): rotation by
    ``rotation_deg`` and scaling about the image centre, then ``shift`` (px), with projective
    terms ``perspective`` (per px, in centred coordinates)."""
    h, w = shape
    c = geo.translation((w - 1) / 2.0, (h - 1) / 2.0)
    th = math.radians(rotation_deg)
    m = np.array([[scale * math.cos(th), -scale * math.sin(th), shift[0]],
                  [scale * math.sin(th), scale * math.cos(th), shift[1]],
                  [perspective[0], perspective[1], 1.0]])
    return c @ m @ np.linalg.inv(c)


def pair_from_registered(
    hr: np.ndarray, lr_registered: np.ndarray, scale: float, warp: np.ndarray
) -> SimulatedPair:
    """A test pair from two *registered, same-size* real captures (City100 ``H`` and ``L``).

    LR = ``lr_registered`` downscaled by ``scale`` (MATLAB bicubic); HR = ``hr`` warped by the
    homography ``warp`` (HR pixels -> new HR pixels, cubic, same size, black outside). The truth
    is ``scaling(1/scale) @ inv(warp)``; it is exact only as far as the two captures were
    registered (City100 pairs are registered to ~0.1-4 px, see docs/align.md).
    """
    from realsr.resize import imresize

    lr = imresize(lr_registered, 1.0 / scale)
    h, w = hr.shape[:2]
    warped = cv2.warpPerspective(hr, warp, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    lr_shape = lr.shape[:2]
    truth = Truth(geo.normalize(geo.scaling(1.0 / scale) @ np.linalg.inv(warp)), 0.0, (0.0, 0.0), 1.0, lr_shape, (h, w))
    return SimulatedPair(np.ascontiguousarray(lr), np.ascontiguousarray(warped), truth, CaptureSpec(lr_size=lr_shape, zoom=scale, hr_size=(h, w)))


def write_simulated_dataset(
    out: str | os.PathLike,
    scenes: Iterable[tuple[str, np.ndarray]],
    base: CaptureSpec,
    seed: int = 0,
    vary: bool = True,
) -> dict[str, Truth]:
    """Simulate one capture pair per ``(name, scene)`` (any iterable: a generator renders each scene
    only when its pair is due) and write ``out/LR/<name>.png``,
    ``out/HR/<name>.png`` and ``out/truth.json`` (the :class:`Truth` of each pair, by name).

    With ``vary`` each pair draws its own rotation (+-1.5 deg), tilt, offset (+-3 % of the LR
    size) and exposure around ``base`` from ``seed``; the same seed gives the same files.
    """
    from realsr.atomic import write_json_atomic
    from realsr.images import write_png

    out = Path(out)
    rng = np.random.default_rng(seed)
    truths: dict[str, Truth] = {}
    for i, (name, scene) in enumerate(scenes):
        spec = base
        if vary:
            hl, wl = base.lr_size
            spec = replace(
                base,
                rotation_deg=float(rng.uniform(-1.5, 1.5)),
                perspective=float(rng.uniform(0.0, 0.03)),
                perspective_angle_deg=float(rng.uniform(0, 360)),
                offset=(float(rng.uniform(-0.03, 0.03) * wl), float(rng.uniform(-0.03, 0.03) * hl)),
                exposure=float(rng.uniform(0.8, 1.1)),
            )
        pair = simulate_pair(scene, spec, seed=seed * 1000 + i)
        write_png(out / "LR" / f"{name}.png", pair.lr)
        write_png(out / "HR" / f"{name}.png", pair.hr)
        truths[name] = pair.truth
    write_json_atomic(out / "truth.json", {k: v.to_json() for k, v in truths.items()})
    return truths
