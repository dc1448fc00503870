"""Real-noise patch collection."""

import glob

import numpy as np
import pytest
from PIL import Image

from realsr.degrade.noise import NoiseParams, collect_noise, gray_255, zero_mean
from realsr.images import read_image


def test_gray_matches_pil_L():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(img).convert("L"), dtype=np.float64)
    assert np.array_equal(gray_255(img), ref)
    assert np.allclose(gray_255(img.astype(np.uint16) * 257), gray_255(img.astype(np.float64) / 255), atol=1e-9)


def test_flat_noiseless_image_gives_zero_std_patches():
    img = np.full((600, 600, 3), (120, 130, 140), np.uint8)
    ps = collect_noise(img, NoiseParams())
    assert len(ps) == 4  # grid positions 0 and 256 per axis: the official loop stops before 600 - 256
    for p in ps:
        assert p.image.shape == (256, 256, 3) and p.image.dtype == np.uint8
        assert np.abs(zero_mean(p.image)).max() < 1e-9 and p.gray_var == 0


def test_grid_skips_the_last_position_like_the_official_loop():
    img = np.full((300, 512, 3), 100, np.uint8)
    assert [p.x for p in collect_noise(img)] == [0]
    assert [p.x for p in collect_noise(img, NoiseParams(include_last=True))] == [0, 256]


def test_textured_regions_are_never_picked():
    rng = np.random.default_rng(3)
    img = np.full((512, 1024, 3), 128.0)
    img[:, 512:] += 60 * np.sin(np.arange(512) / 3.0)[None, :, None]  # texture on the right half
    img += rng.normal(0, 2.0, img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    ps = collect_noise(img, NoiseParams(patch=64, stride=64))
    assert ps and all(p.x + 64 <= 512 for p in ps)


def test_thresholds_and_cap():
    img = np.full((128, 128, 3), 30, np.uint8)  # too dark for the default mean floor of 50
    assert collect_noise(img, NoiseParams(patch=64, stride=64)) == []
    assert len(collect_noise(img, NoiseParams(patch=64, stride=64, min_mean=0))) == 1
    big = np.full((640, 640, 3), 100, np.uint8)
    capped = collect_noise(big, NoiseParams(patch=64, stride=64, max_per_image=5), np.random.default_rng(0))
    assert len(capped) == 5 and len({(p.y, p.x) for p in capped}) == 5
    assert collect_noise(np.zeros((10, 10, 3), np.uint8)) == []  # smaller than a patch


def test_sixteen_bit_and_gray_sources():
    img16 = np.full((300, 300, 3), 30000, np.uint16)
    ps = collect_noise(img16, NoiseParams())
    assert len(ps) == 1 and ps[0].image.dtype == np.uint16
    assert ps[0].gray_mean == pytest.approx(30000 * 255 / 65535)
    gray = np.full((300, 300), 90, np.uint8)
    assert collect_noise(gray)[0].image.shape == (256, 256, 3)


def test_zero_mean_is_per_channel():
    patch = np.zeros((8, 8, 3), np.uint8)
    patch[..., 0], patch[..., 1] = 100, 200
    patch[0, 0, 2] = 64
    z = zero_mean(patch)
    assert z.dtype == np.float32 and np.allclose(z.mean(axis=(0, 1)), 0, atol=1e-7)
    assert z[0, 0, 2] == pytest.approx(64 / 255 * 63 / 64, rel=1e-6)


@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_pool_noise_has_the_added_sigma(shared, sigma):
    """Clean photos + Gaussian noise of known sigma: the collected patches carry that sigma (15 %)."""
    files = sorted(glob.glob(str(shared("sr_benchmarks", "Set14", "x2", "HR") / "*.png")))
    files += sorted(glob.glob(str(shared("sr_benchmarks", "Set5", "x2", "HR") / "*.png")))
    params = NoiseParams(patch=64, stride=64, local=16, max_mean=240)
    stds = []
    for i, f in enumerate(files):
        img = read_image(f).astype(np.float64)
        noisy = np.clip(np.round(img + np.random.default_rng(i).normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)
        stds += [float((zero_mean(p.image) * 255).std(axis=(0, 1)).mean()) for p in collect_noise(noisy, params)]
    assert len(stds) >= 3
    assert np.mean(stds) == pytest.approx(sigma, rel=0.15)
    assert all(abs(s - sigma) <= 0.15 * sigma for s in stds)
