"""The Y-median fusion rule (realsr.train.fusion) against hand-computed values on tiny images, each
option's effect, NumPy/torch agreement and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realsr.train.fusion import FusionRule, expand_weights, fuse, fuse_info, luma, median_y

SUM = 65.481 + 128.553 + 24.966  # = 219: studio Y of white minus black


def grey(v: float, h: int = 2, w: int = 2) -> np.ndarray:
    return np.full((h, w, 3), v, np.float64)


def test_luma_and_median_by_hand():
    img = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                    [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    assert luma(img) == pytest.approx(np.array([[16 + 65.481, 16 + 128.553], [16 + 24.966, 16.0]]))
    assert luma(img, "full") == pytest.approx(np.array([[0.299 * 255, 0.587 * 255], [0.114 * 255, 0.0]]))
    # an even count: the mean of the two middle values (16 + 24.966 and 16 + 65.481)
    assert median_y(img) == pytest.approx(16 + (24.966 + 65.481) / 2)
    assert median_y(img, "full") == pytest.approx((0.114 + 0.299) * 255 / 2)
    assert median_y(grey(0.5)) == pytest.approx(16 + SUM * 0.5)
    # odd count: the middle value; the outlier does not move it
    odd = np.zeros((1, 3, 3))
    odd[0, 0] = 1.0
    assert median_y(odd) == pytest.approx(16.0)
    t = torch.from_numpy(img).permute(2, 0, 1)
    assert median_y(t) == pytest.approx(median_y(img))
    assert median_y(torch.stack([t, t * 0])).tolist() == pytest.approx([median_y(img), 16.0])


def test_regimes_alpha_beta_gamma():
    a, b = grey(0.1), grey(0.3)  # mean grey 0.2: studio Y = 16 + 219 * 0.2 = 59.8
    rule = FusionRule(alpha=0.75, beta=0.25, gamma=64)
    out, info = fuse_info([a, b], rule)
    assert info == {"median_y": pytest.approx(59.8), "dark": True, "weights": (0.75, 0.25)}
    assert out == pytest.approx(grey(0.75 * 0.1 + 0.25 * 0.3))  # alpha
    out, info = fuse_info([a, b], FusionRule(alpha=0.75, beta=0.25, gamma=59))
    assert not info["dark"] and out == pytest.approx(grey(0.25 * 0.1 + 0.75 * 0.3))  # beta
    # the threshold is strict: median == gamma takes beta
    m = median_y(grey(0.2))
    assert not fuse_info([a, b], FusionRule(alpha=0.75, beta=0.25, gamma=m))[1]["dark"]
    assert fuse_info([a, b], FusionRule(alpha=0.75, beta=0.25, gamma=m + 1e-9))[1]["dark"]
    # defaults [INFERENCE]: alpha 1 (dark -> the first input alone), beta 0.5 (the average), gamma 64
    assert fuse([a, b]) == pytest.approx(a)
    assert fuse([grey(0.5), grey(0.7)]) == pytest.approx(grey(0.6))


def test_luma_and_source_options():
    a, b = grey(0.1), grey(0.3)
    # studio Y of the mean grey 0.2 is 59.8, full-range Y is 51: gamma 55 separates the two conventions
    assert not fuse_info([a, b], FusionRule(gamma=55))[1]["dark"]
    assert fuse_info([a, b], FusionRule(gamma=55, luma="full"))[1]["dark"]
    assert fuse_info([a, b], FusionRule(luma="full"))[1]["median_y"] == pytest.approx(51.0)
    # source: the first image (Y 37.9) or the mean (59.8); gamma 50 separates them
    assert fuse_info([a, b], FusionRule(gamma=50, source="first"))[1]["dark"]
    assert not fuse_info([a, b], FusionRule(gamma=50, source="mean"))[1]["dark"]
    # an explicit reference of another size (the LR) overrides the source
    out, info = fuse_info([a, b], FusionRule(gamma=50, alpha=0.0, beta=1.0), reference=grey(0.9, 1, 1))
    assert not info["dark"] and info["median_y"] == pytest.approx(16 + SUM * 0.9)
    assert out == pytest.approx(a)  # beta = 1: the first input


def test_three_inputs_weights_and_clipping(caplog):
    imgs = [grey(0.2), grey(0.4), grey(0.9)]  # mean 0.5: Y 125.5
    rule = FusionRule(alpha=(0.2, 0.3, 0.5), beta=(0.5, 0.5, 0.0), gamma=200)
    out, info = fuse_info(imgs, rule)
    assert info["dark"] and info["weights"] == (0.2, 0.3, 0.5)
    assert out == pytest.approx(grey(0.2 * 0.2 + 0.3 * 0.4 + 0.5 * 0.9))
    assert fuse(imgs, FusionRule(alpha=(0.2, 0.3, 0.5), beta=(0.5, 0.5, 0.0), gamma=100)) == pytest.approx(grey(0.3))
    # extrapolating weights are allowed (they still sum to 1), with a warning; the result is clipped
    caplog.set_level("WARNING", logger="realsr")
    FusionRule(alpha=(0.2, 0.3, 0.5), beta=1.0)
    assert "outside [0, 1]" not in caplog.text
    assert fuse([grey(0.9), grey(0.1)], FusionRule(alpha=2.0, gamma=255)) == pytest.approx(grey(1.0))
    assert "alpha 2.0 puts weights outside [0, 1]" in caplog.text
    assert expand_weights(0.3, 2) == (0.3, 0.7) and expand_weights([0.3], 2) == (0.3, 0.7)


def test_pure_and_dtypes():
    a = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)
    b = np.random.default_rng(1).random((5, 6, 3)).astype(np.float32)
    a0, b0 = a.copy(), b.copy()
    out = fuse([a, b], FusionRule(beta=0.3))
    assert out.dtype == np.float32 and out.shape == a.shape
    assert (a == a0).all() and (b == b0).all()
    assert out == pytest.approx(0.3 * a + 0.7 * b, abs=1e-6)


def test_torch_matches_numpy_and_batches_decide_per_image():
    rng = np.random.default_rng(2)
    a, b = rng.random((7, 5, 3)) * 0.3, rng.random((7, 5, 3))
    rule = FusionRule(alpha=0.8, beta=0.4, gamma=64)
    ref, info = fuse_info([a, b], rule)
    t = [torch.from_numpy(x).permute(2, 0, 1).float() for x in (a, b)]
    out, tinfo = fuse_info(t, rule)
    assert out.dtype == torch.float32 and tinfo["weights"] == info["weights"]
    assert tinfo["median_y"] == pytest.approx(info["median_y"], abs=1e-4)
    assert out.permute(1, 2, 0).numpy() == pytest.approx(ref, abs=1e-6)
    # a batch: a dark item and a bright one get different weights
    dark, bright = torch.full((3, 4, 4), 0.05), torch.full((3, 4, 4), 0.8)
    out, binfo = fuse_info([torch.stack([dark, bright]), torch.stack([dark * 3, bright * 0.5])], rule)
    assert binfo["dark"] == [True, False] and binfo["weights"] == [pytest.approx((0.8, 0.2)), pytest.approx((0.4, 0.6))]
    assert out[0] == pytest.approx(torch.full((3, 4, 4), 0.8 * 0.05 + 0.2 * 0.15))
    assert out[1] == pytest.approx(torch.full((3, 4, 4), 0.4 * 0.8 + 0.6 * 0.4))


@pytest.mark.parametrize("images, rule, match", [
    ([grey(0.1)], FusionRule(), "at least 2 images"),
    ([grey(0.1), grey(0.1, 3, 2)], FusionRule(), "differ in size"),
    ([grey(0.1), torch.zeros(3, 2, 2)], FusionRule(), "mix of NumPy"),
    ([grey(0.1), grey(0.2)], FusionRule(alpha=(0.5, 0.6)), "alpha: the weights sum to 1.1, not 1"),
    ([grey(0.1), grey(0.2), grey(0.3)], FusionRule(), "alpha: a single number gives the weights of 2 images"),
    ([grey(0.5), grey(0.6)], FusionRule(beta=(0.5, 0.25, 0.25)), "beta: 3 weights for 2 images"),
    ([np.zeros((2, 2)), np.zeros((2, 2))], FusionRule(), r"expected an \(H, W, 3\) RGB array"),
])
def test_errors(images, rule, match):
    with pytest.raises(ValueError, match=match):
        fuse(images, rule)


def test_rule_validation():
    with pytest.raises(ValueError, match="luma must be one of studio, full"):
        FusionRule(luma="bt709")
    with pytest.raises(ValueError, match="source must be one of mean, first"):
        FusionRule(source="last")
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        FusionRule(gamma=float("nan"))
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        FusionRule(alpha=(0.5, float("inf")))
