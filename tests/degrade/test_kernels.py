"""Kernel arrays: analytic kernels, KernelGAN post-processing, the x4 kernel, checks, the operator."""

import numpy as np
import pytest
from scipy import ndimage

from realsr.degrade.kernels import (
    KernelChecks, analytic_x4, bicubic_kernel, blindsr_kernel, centre_of_mass, check_kernel, gaussian_kernel, kernel_distance,
    kernel_shape, post_process, shift_to_convention, wanted_centre, zeroize_negligible,
)
from realsr.degrade.operators import blur_downsample


def test_bicubic_kernel_is_kernelgans_table():
    k = bicubic_kernel(2)
    assert k.shape == (8, 8)
    # values of the official DownScaleLoss table (loss.py)
    assert k[0, 0] == pytest.approx(0.0001373291015625, abs=1e-12)
    assert k[3, 3] == pytest.approx(0.1880035400390630, abs=1e-12)
    assert k[2, 3] == pytest.approx(0.0491180419921875, abs=1e-12)
    assert k.sum() == pytest.approx(1.0)
    assert centre_of_mass(k) == pytest.approx((3.5, 3.5))


def test_wanted_centre_convention():
    assert wanted_centre(13, 2) == 6.5
    assert wanted_centre(29, 4) == 15.5
    assert wanted_centre(8, 2) == 5.0


def test_shift_to_convention_centres_and_keeps_mass():
    k = gaussian_kernel(13, 1.2, 2.0, 0.3, centre=(5.2, 7.9))
    out = shift_to_convention(k, 2)
    assert out.shape[0] > 13 and out.shape[0] % 2 == 1
    c = wanted_centre(out.shape[0], 2)
    assert centre_of_mass(out) == pytest.approx((c, c), abs=0.02)
    assert out.min() >= 0 and out.sum() == pytest.approx(1.0)
    raw = shift_to_convention(k, 2, clip_negative=False)  # the official spline rings below zero
    assert raw.min() < 0


def test_zeroize_negligible_keeps_the_largest_values():
    k = gaussian_kernel(13, 1.5)
    z = zeroize_negligible(k, 40)
    thr = 0.75 * np.sort(k.ravel())[-41]
    assert np.array_equal(z > 0, k > thr) and z.sum() == pytest.approx(1.0)
    assert np.allclose(z, (k - thr).clip(0) / (k - thr).clip(0).sum())


def test_analytic_x4_equals_two_x2_degradations():
    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((160, 160)), 2.0)
    k2 = post_process(gaussian_kernel(13, 1.1, 1.7, 0.4))
    k4 = analytic_x4(k2)
    kk = k2.shape[0]
    assert k4.shape[0] == 3 * kk - 2 - 2 * (kk // 2)
    c = wanted_centre(k4.shape[0], 4)
    assert centre_of_mass(k4) == pytest.approx((c, c), abs=0.05)
    twice = blur_downsample(blur_downsample(img, k2, 2), k2, 2)
    once = blur_downsample(img, k4, 4)
    inner = (slice(8, -8), slice(8, -8))  # borders differ (reflection of a reflection)
    assert np.abs(twice[inner] - once[inner]).max() < 2e-3


@pytest.mark.parametrize("size", [7, 8])
def test_blur_downsample_is_scipy_correlate_then_subsample(size):
    rng = np.random.default_rng(1)
    img = rng.random((37, 41, 3))
    k = rng.random((size, size))
    k /= k.sum()
    ref = np.stack([ndimage.correlate(img[..., c], k, mode="reflect") for c in range(3)], 2)[::2, ::2]
    out = blur_downsample(img, k, 2)
    assert out.shape == (19, 21, 3)
    assert np.abs(out - ref).max() < 1e-5


def test_kernel_shape_of_a_rotated_gaussian():
    s = kernel_shape(gaussian_kernel(41, 1.5, 3.0, np.deg2rad(30)))
    assert s.sigma_major == pytest.approx(3.0, abs=0.01)
    assert s.sigma_minor == pytest.approx(1.5, abs=0.01)
    assert s.angle == pytest.approx(30.0, abs=0.5)


def test_kernel_distance_ignores_position_only():
    a = gaussian_kernel(15, 1.3)
    b = gaussian_kernel(19, 1.3, centre=(8.4, 10.1))
    assert kernel_distance(a, b) < 1e-3
    assert kernel_distance(a, gaussian_kernel(15, 2.5)) > 0.05


def _raw_gaussian(sigma=1.4, centre=(6.5, 6.5)):
    return gaussian_kernel(13, sigma, centre=centre)


@pytest.mark.parametrize("raw, word", [
    (np.full((13, 13), np.nan), "nan"),
    (np.pad(np.ones((1, 1)), 6), "delta"),
    (_raw_gaussian(1.0, (2.5, 2.5)), "off-centre"),
    (gaussian_kernel(13, 4.5), "cut by support"),
    (_raw_gaussian(0.8, (6.5, 3.0)) + _raw_gaussian(0.8, (6.5, 10.0)), "multi-modal"),
    (-_raw_gaussian(), "empty"),
])
def test_check_kernel_rejects_degenerate_estimates(raw, word):
    with np.errstate(all="ignore"):
        final = post_process(raw) if np.isfinite(raw).all() and raw.sum() > 0 else raw
    reason = check_kernel(raw, final, KernelChecks())
    assert reason is not None and reason.startswith(word)


def test_check_kernel_accepts_a_plausible_kernel():
    raw = _raw_gaussian(1.3)
    assert check_kernel(raw, post_process(raw)) is None


def test_blindsr_kernels_follow_div2krk():
    """DIV2KRK's recipe: x2 kernels 11 x 11 before centring, covariance eigenvalues in [0.35, 5]
    (std 0.59-2.24 px; the multiplicative noise moves the measured figures a little), centred on the
    x2 convention, non-negative, sum 1; the same generator state gives the same kernels."""
    rng = np.random.default_rng(7)
    ks = [blindsr_kernel(rng, 2) for _ in range(40)]
    for k in ks:
        assert k.shape[0] == k.shape[1] >= 11 and k.min() >= 0 and abs(k.sum() - 1) < 1e-9
        c = wanted_centre(k.shape[0], 2)
        assert np.allclose(centre_of_mass(k), (c, c), atol=0.05)
        s = kernel_shape(k)
        assert 0.45 < s.sigma_minor <= s.sigma_major < 2.3
    majors = [kernel_shape(k).sigma_major for k in ks]
    assert max(majors) > 1.8 and min(majors) < 1.2  # the range is covered
    again = [blindsr_kernel(np.random.default_rng(7), 2)]
    assert np.array_equal(again[0], ks[0])
    assert blindsr_kernel(np.random.default_rng(0), 4, noise_level=0).shape[0] >= 31


def test_kernels_given_to_the_helpers_are_checked():
    """analytic_x4 of an all-zero kernel was all NaN, of a non-square one a broadcast error;
    kernel_distance of a zero or NaN kernel failed inside NumPy. Non-square kernels still compare."""
    g = gaussian_kernel(13, 1.5)
    for bad, msg in ((np.zeros((13, 13)), "positive sum"), (np.full((5, 5), np.nan), "positive sum"),
                     (np.ones((13, 9)), "square 2-D"), (np.ones((3, 3, 3)), "square 2-D")):
        with pytest.raises(ValueError, match=msg):
            analytic_x4(bad)
    for bad in (np.zeros((5, 5)), np.full((5, 5), np.inf), np.zeros((0, 0)), np.ones(5)):
        with pytest.raises(ValueError, match="kernel must"):
            kernel_distance(bad, g)
    assert kernel_distance(np.ones((5, 3)), g) > 0
