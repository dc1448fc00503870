
import cv2
import numpy as np
import pytest

from realsr.resize import imresize, modcrop, resize_matrix



def _sparse_reference(x: np.ndarray, s: int) -> np.ndarray:
    """The general (sparse-matrix) path, which the integer fast path must reproduce."""
    h, w = x.shape[:2]
    m1, m2 = resize_matrix(h, h // s, 1 / s), resize_matrix(w, w // s, 1 / s)
    y = (m1 @ x.reshape(h, -1)).reshape((h // s, w) + x.shape[2:])
    y = np.moveaxis(y, 1, 0)
    return np.moveaxis((m2 @ y.reshape(w, -1)).reshape((w // s, h // s) + x.shape[2:]), 0, 1)


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_fast_integer_path_equals_general_path(s):
    rng = np.random.default_rng(s)
    x = rng.random((8 * s, 12 * s, 3))
    assert np.abs(imresize(x, 1 / s) - _sparse_reference(x, s)).max() < 1e-12
    g = rng.random((8 * s, 12 * s))
    assert imresize(g, 1 / s).shape == (8, 12)


def test_constant_image_stays_constant_and_sizes_are_ceil():
    x = np.full((13, 17, 3), 0.3)
    y = imresize(x, 0.25)
    assert y.shape == (4, 5, 3) and np.allclose(y, 0.3)
    up = imresize(x, 2.0)
    assert up.shape == (26, 34, 3) and np.allclose(up, 0.3)
    assert imresize(x, output_shape=(7, 9)).shape == (7, 9, 3)


def test_integer_input_rounds_per_pass_like_matlab():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 44, 3)).astype(np.uint8)
    y = imresize(x, 0.5)
    assert y.dtype == np.uint8
    m_h, m_w = resize_matrix(40, 20, 0.5), resize_matrix(44, 22, 0.5)
    first = np.clip(np.floor((m_h @ x.astype(np.float64).reshape(40, -1)).reshape(20, 44, 3) + 0.5), 0, 255)
    second = (m_w @ np.moveaxis(first, 1, 0).reshape(44, -1)).reshape(22, 20, 3)
    expect = np.clip(np.floor(np.moveaxis(second, 0, 1) + 0.5), 0, 255)  # half away from zero
    assert np.array_equal(y, expect)
    f = imresize(x, 0.5, float_result=True)
    assert f.dtype == np.float32 and np.abs(f - imresize(x.astype(np.float64), 0.5)).max() < 1e-3


def test_upscaling_matches_cubic_a_minus_half():
    # Upscaling a linear ramp by 2 with a = -0.5 cubic interpolates it exactly away from borders.
    x = np.tile(np.arange(20, dtype=np.float64), (6, 1))
    y = imresize(x, 2.0)
    inner = y[:, 6:-6]
    cols = (np.arange(40)[6:-6] + 0.5) / 2 - 0.5
    assert np.allclose(inner, cols[None, :])


def test_modcrop():
    assert modcrop(np.zeros((13, 17, 3)), 4).shape == (12, 16, 3)
    with pytest.raises(ValueError, match="positive integer"):
        modcrop(np.zeros((13, 17, 3)), 0)  # was a ZeroDivisionError


def test_bad_scales_sizes_and_pixel_types_are_refused():
    x = np.zeros((8, 8, 3), np.uint8)
    for kw in ({"scale": 0}, {"scale": -2}, {"scale": float("nan")}, {"scale": float("inf")}):
        with pytest.raises(ValueError, match="scale must be a positive finite number"):
            imresize(x, **kw)
    with pytest.raises(ValueError, match="output_shape must be at least"):
        imresize(x, output_shape=(0, 4))
    for img in (x.astype(bool), x.astype(np.int32), x.tolist()):  # cv2 errors or silent clipping before
        with pytest.raises(ValueError, match="takes uint8, uint16 or float"):
            imresize(img, 0.5)
    with pytest.raises(ValueError, match="empty"):
        imresize(np.zeros((0, 4)), 2)
    assert imresize(x.astype(np.float16), 0.5).dtype == np.float32


@pytest.mark.realdata
def test_matches_matlab_bicubic_lr_files(shared):
    """The SelfExSR LR files were made with MATLAB imresize on uint8. Away from the outer pixel ring
    (which they computed from the un-cropped originals) our uint8 result equals them on >= 99 %
    of pixels per image and is within 1 level on all but single pixels (measured: one pixel off
    by 2 in Set5 x2 baby; every other image within 1)."""
    root = shared("sr_benchmarks")
    checked = 0
    for hr_path in sorted(root.glob("*/x*/HR/*.png")):
        s = int(hr_path.parts[-3][1:])
        lr_path = hr_path.parent.parent / "LR" / hr_path.name
        if not lr_path.exists():
            continue
        hr = cv2.imread(str(hr_path))[:, :, ::-1]
        lr = cv2.imread(str(lr_path))[:, :, ::-1].astype(int)
        out = imresize(modcrop(hr, s), 1 / s).astype(int)
        assert out.shape == lr.shape, hr_path
        d = np.abs(out - lr)[1:-1, 1:-1]
        assert d.max() <= 2 and (d <= 1).mean() > 0.9999, (hr_path, d.max())
        assert (d == 0).mean() > 0.99, hr_path
        checked += 1
    assert checked >= 40
