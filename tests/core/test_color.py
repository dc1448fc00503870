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
