import numpy as np
import pytest

from realsr.capture_align.photometric import fit_transfer
from realsr.images import to_float


@pytest.mark.parametrize("mode", ["color", "luminance", "none"])
def test_transfer_undoes_a_colour_change(scene, mode):
    hr = to_float(scene)
    a = np.array([[0.9, 0.05, 0.0], [0.02, 0.8, 0.03], [0.0, 0.04, 0.95]])
    lr = np.clip(hr @ a.T + np.array([0.03, 0.05, -0.02]), 0, 1).astype(np.float32)
    t = fit_transfer(lr, hr, mode)
    err_before = np.abs(lr - hr).mean()
    err_after = np.abs(t.apply(lr) - hr).mean()
    if mode == "none":
        assert np.allclose(t.matrix, np.eye(3)) and err_after == pytest.approx(err_before)
    elif mode == "luminance":
        assert err_after < 0.8 * err_before
        assert np.allclose(t.matrix, np.eye(3) * t.matrix[0, 0])  # one gain for all channels
    else:  # mean+covariance matching: exact up to a rotation in colour space
        assert err_after < 0.2 * err_before


def test_gray_lr_falls_back_to_luminance(scene):
    hr = to_float(scene)
    gray = hr @ np.array([0.299, 0.587, 0.114], np.float32)
    lr = np.repeat(gray[:, :, None] * 0.9 + 0.02, 3, axis=2).astype(np.float32)
    t = fit_transfer(lr, hr, "color")
    assert t.mode == "luminance" and np.abs(t.matrix).max() < 2.0
    out = t.apply(lr)
    assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])  # stays gray
