"""Accuracy of align_pair against ground truth (simulated captures) and on real City100 captures.

Targets from the issue: residual misalignment of the output at most 0.1 LR px (median over
pairs) and 0.25 (worst), at scales 2 and 4; output size exactly scale x LR.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from realsr.capture_align import AlignmentFailed, AlignParams, align_pair
from realsr.capture_align.simulate import CaptureSpec, centred_homography, pair_from_registered, simulate_pair
from realsr.color import rgb_to_gray
from realsr.images import read_image, to_float
from realsr.resize import imresize
from realsr.synthetic import synthetic_scene


LR_SIZE = {2: (480, 640), 3: (540, 720), 4: (600, 800)}


def _spec(scale: float, i: int, **kw) -> CaptureSpec:
    s = int(round(scale))
    return CaptureSpec(lr_size=LR_SIZE.get(s, (480, 640)), zoom=scale, rotation_deg=1.2 * (-1) ** i,
                       perspective=0.01 * (i % 3), perspective_angle_deg=40.0 * i,
                       offset=(4.0 * i - 6, 3.0 - 2.0 * i), distortion=-0.02, **kw)


def _check_output(r, scale: int) -> None:
    assert r.status == "ok", r.reason
    h, w = r.lr.shape[:2]
    assert r.hr.shape == (scale * h, scale * w, 3)
    x0, y0, x1, y1 = r.lr_box
    assert (x1 - x0, y1 - y0) == (w, h)


def test_gray_rgba_and_float_arrays_align_and_bad_arrays_are_refused(scenes):
    pair = simulate_pair(scenes[1], _spec(2, 0), seed=2)
    p = AlignParams(scale=2)
    base = align_pair(pair.lr, pair.hr, p)
    gray = align_pair(pair.lr[..., 1], pair.hr[..., 1], p)  # used to crash in OpenCV
    _check_output(gray, 2)
    assert gray.lr.dtype == np.uint8
    rgba = align_pair(np.dstack([pair.lr, np.full(pair.lr.shape[:2], 255, np.uint8)]), pair.hr, p)
    assert rgba.lr_box == base.lr_box and np.array_equal(rgba.lr, base.lr)
    flt = align_pair(pair.lr / 255.0, pair.hr / 255.0, p)  # float [0, 1]: as a float TIFF, 16-bit
    _check_output(flt, 2)
    assert flt.lr.dtype == flt.hr.dtype == np.uint16
    for lr, msg in ((pair.lr.astype(np.float64), "LR: float images are taken in"), (pair.lr > 9, "LR: .* got bool")):
        with pytest.raises(ValueError, match=msg):
            align_pair(lr, pair.hr, p)
    with pytest.raises(ValueError, match="HR: the image holds NaN"):
        align_pair(pair.lr, np.full(pair.hr.shape, np.nan), p)


@pytest.mark.parametrize("scale", [2, 4])
def test_simulated_pairs_meet_accuracy_targets(scenes, scale):
    errs = []
    for i, sc in enumerate(scenes):
        pair = simulate_pair(sc, _spec(scale, i), seed=i)
        r = align_pair(pair.lr, pair.hr, AlignParams(scale=scale))
        _check_output(r, scale)
        errs.append(pair.truth.residual(r.mapping, r.lr_box)["mean"])
        assert r.residual.median < 0.15  # the figure measured on the written pair agrees
    assert np.median(errs) <= 0.1 and max(errs) <= 0.25, errs


@pytest.mark.parametrize("scale,zoom", [(3, 2.9), (2, 2.9)])
def test_non_integer_focal_ratio(scenes, scale, zoom):
    pair = simulate_pair(scenes[0], _spec(zoom, 1), seed=5)
    # scale 3 accepts 2.9 within the zoom tolerance; scale 2 needs the real ratio declared
    p = AlignParams(scale=scale, zoom=None if scale == 3 else zoom)
    r = align_pair(pair.lr, pair.hr, p)
    _check_output(r, scale)
    assert abs(r.zoom - zoom) < 0.02
    assert pair.truth.residual(r.mapping, r.lr_box)["mean"] < 0.1


def test_16bit_captures_stay_16bit(scenes):
    pair = simulate_pair(scenes[1], _spec(2, 0, bits=16), seed=2)
    r = align_pair(pair.lr, pair.hr, AlignParams(scale=2))
    _check_output(r, 2)
    assert r.lr.dtype == np.uint16 and r.hr.dtype == np.uint16
    assert pair.truth.residual(r.mapping, r.lr_box)["mean"] < 0.1


@pytest.mark.parametrize("refine", ["none", "ecc"])
def test_other_refinement_modes(scenes, refine):
    pair = simulate_pair(scenes[2], _spec(2, 2, ), seed=3)
    r = align_pair(pair.lr, pair.hr, AlignParams(scale=2, refine=refine))
    _check_output(r, 2)
    assert r.mapping.field is None
    assert pair.truth.residual(r.mapping, r.lr_box)["mean"] < 0.2


def test_affine_model_and_ransac(scenes):
    spec = _spec(2, 0)
    spec = CaptureSpec(**{**spec.__dict__, "perspective": 0.0, "distortion": 0.0})
    pair = simulate_pair(scenes[3], spec, seed=4)
    r = align_pair(pair.lr, pair.hr, AlignParams(scale=2, model="affine", method="ransac"))
    _check_output(r, 2)
    assert pair.truth.residual(r.mapping, r.lr_box)["mean"] < 0.1


def test_refinement_rounds_crop_the_centre(scenes):
    pair = simulate_pair(scenes[0], _spec(2, 0), seed=6)
    a = align_pair(pair.lr, pair.hr, AlignParams(scale=2, crop=0.0))
    b = align_pair(pair.lr, pair.hr, AlignParams(scale=2, crop=0.05))
    wa, wb = a.lr_box[2] - a.lr_box[0], b.lr_box[2] - b.lr_box[0]
    assert b.iterations >= 1 and wb <= wa * (1 - 0.1 * b.iterations) + 2


@pytest.mark.realdata
@pytest.mark.parametrize("scale", [2, 4])
def test_simulated_from_real_photos(scale, shared):
    files = sorted(shared("city100", "NikonD5500").glob("*H.png"))[:3] + sorted(shared("real_lr").glob("*.png"))
    errs = []
    for i, f in enumerate(files):
        pair = simulate_pair(read_image(f), _spec(scale, i), seed=i)
        r = align_pair(pair.lr, pair.hr, AlignParams(scale=scale))
        _check_output(r, scale)
        errs.append(pair.truth.residual(r.mapping, r.lr_box)["mean"])
    assert np.median(errs) <= 0.1 and max(errs) <= 0.25, errs


def _known_warp(i: int, shape: tuple[int, int]) -> np.ndarray:
    """The known homography applied to the i-th City100 HR capture."""
    return centred_homography(shape, 0.7 * (-1) ** i, 1.0 + 0.01 * i, (3.3 * i, -2.1 * i), (1e-6 * i, -2e-6 * i))


def _global_affine_residual(lr: np.ndarray, hr_small: np.ndarray) -> float:
    """Independent check: one ECC affine fit between the written LR and the downscaled written HR;
    the mean displacement it implies over the image (LR px). 0 for a perfectly aligned pair."""
    a = cv2.GaussianBlur(rgb_to_gray(lr), (0, 0), 1.0)
    b = cv2.GaussianBlur(rgb_to_gray(hr_small), (0, 0), 1.0)
    warp = np.eye(2, 3, dtype=np.float32)
    _, warp = cv2.findTransformECC(a, b, warp, cv2.MOTION_AFFINE,
                                   (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-7), None, 1)
    h, w = a.shape
    ys, xs = np.mgrid[0:h:8, 0:w:8]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1)
    return float(np.linalg.norm(pts @ warp.T.astype(np.float64) - pts[:, :2], axis=1).mean())


@pytest.mark.realdata
@pytest.mark.parametrize("camera", ["NikonD5500", "iPhoneX"])
@pytest.mark.parametrize("scale", [2, 4])
def test_city100_real_captures(camera, scale, shared):
    """LR = City100 L downscaled by the scale, HR = City100 H warped by a known homography.

    City100's own L/H registration is off by 0.1-4 px (docs/align.md), so the known homography is
    not sub-pixel truth here: the residual is measured on the written pair, by the manifest's tile
    measure and by an independent global ECC affine fit.
    """
    files = sorted(shared("city100", camera).glob("*H.png"))
    measured, independent = [], []
    for i, f in enumerate(files):
        pair = pair_from_registered(read_image(f), read_image(f.with_name(f.name.replace("H.png", "L.png"))),
                                    scale, _known_warp(i, read_image(f).shape[:2]))
        r = align_pair(pair.lr, pair.hr, AlignParams(scale=scale))
        _check_output(r, scale)
        measured.append(r.residual.median)
        independent.append(_global_affine_residual(to_float(r.lr), imresize(to_float(r.hr), 1 / scale)))
    for errs in (measured, independent):
        assert np.median(errs) <= 0.1 and max(errs) <= 0.25, (measured, independent)


def test_scale_8_as_d2crealsr():
    """x8 (D2CRealSR): the HR covers 1/8 of the LR width. Scenes whose central eighth is textured;
    an HR view of a flat area is failed as featureless (seeds 21 and 25 do that)."""
    errs = []
    for i, seed in enumerate((20, 22, 23, 24)):
        spec = CaptureSpec(lr_size=(1200, 1600), zoom=8.0, distortion=-0.02, rotation_deg=1.0 * (-1) ** seed,
                           offset=(5.0 * (seed - 20), -3.0))
        pair = simulate_pair(synthetic_scene(1200, 1600, seed), spec, seed=seed - 20)
        r = align_pair(pair.lr, pair.hr, AlignParams(scale=8))
        _check_output(r, 8)
        errs.append(pair.truth.residual(r.mapping, r.lr_box)["mean"])
    assert np.median(errs) <= 0.1 and max(errs) <= 0.25, errs
    flat = simulate_pair(synthetic_scene(1200, 1600, 21), CaptureSpec(lr_size=(1200, 1600), zoom=8.0, offset=(5.0, -3.0),
                                                                       rotation_deg=-1.0, distortion=-0.02), seed=1)
    with pytest.raises(AlignmentFailed, match="featureless"):
        align_pair(flat.lr, flat.hr, AlignParams(scale=8))
