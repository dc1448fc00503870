import numpy as np

from realsr.color import rgb_to_gray, rgb_to_y


def test_y_is_matlab_studio_swing():
    px = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]])
    y = rgb_to_y(px)
    assert np.allclose(y[0, :2], [16.0, 235.0])
    assert np.isclose(y[0, 2], 16 + 65.481)


def test_gray_full_range():
    px = np.array([[[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]], np.float32)
    g = rgb_to_gray(px)
    assert g.dtype == np.float32 and np.allclose(g[0], [1.0, 0.587])


def test_empty_float32_images_give_empty_planes():
    # OpenCV's transform returns None for an empty image: the realism figures crashed on a 0x0 one
    e = np.zeros((0, 7, 3), np.float32)
    assert rgb_to_gray(e).shape == (0, 7) and rgb_to_y(e).shape == (0, 7)
