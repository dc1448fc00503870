import cv2
import numpy as np
import pytest

from realsr.capture_align.quality import psnr, residual_shifts
from realsr.color import rgb_to_gray
from realsr.images import to_float


@pytest.mark.parametrize("dx,dy", [(0.05, 0.0), (0.3, -0.2), (-1.2, 0.7)])
def test_tile_shifts_are_unbiased_and_gain_invariant(scene, dx, dy):
    a = cv2.GaussianBlur(rgb_to_gray(to_float(scene)), (0, 0), 1.0)
    # b(x) = a(x + d): the content of b sits at -d relative to a
    m = np.float32([[1, 0, -dx], [0, 1, -dy]])
    b = cv2.warpAffine(a, m, a.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) * 0.7 + 0.2
    r = residual_shifts(a, b)
    assert r.tiles > 100
    assert np.median(r.shifts[:, 2]) == pytest.approx(-dx, abs=0.005)
    assert np.median(r.shifts[:, 3]) == pytest.approx(-dy, abs=0.005)
    assert r.median == pytest.approx(np.hypot(dx, dy), abs=0.01)


def test_flat_and_edge_only_images_give_no_tiles():
    flat = np.full((200, 300), 0.5, np.float32)
    assert residual_shifts(flat, flat).tiles == 0
    stripes = np.tile((np.sin(np.arange(300) / 3.0) * 0.3 + 0.5).astype(np.float32), (200, 1))
    r = residual_shifts(stripes, stripes)  # vertical stripes: no vertical information (aperture)
    assert r.tiles == 0 and np.isnan(r.median)


def test_psnr():
    a = np.zeros((4, 4))
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1.0) == pytest.approx(10 * np.log10(255.0**2))
