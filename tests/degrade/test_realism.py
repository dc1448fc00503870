"""Realism report: noise, blur and spectrum estimators against synthetic truth; set comparison; the
report files end to end; bad input."""

import json
import re
import time

import cv2
import numpy as np
import pytest

from realsr.degrade.realism import (
    MIN_SIZE,
    blur_width,
    compare_sets,
    image_figures,
    noise_sigma,
    power_spectrum,
    realism_figure,
    write_realism_report,
)
from realsr.errors import UsageError
from realsr.images import read_image, write_png
from realsr.synthetic import synthetic_scene


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _rects(seed: int, size: int = 256, n: int = 14) -> np.ndarray:
    """Float RGB image (0-255) of random axis-aligned rectangles: pixel-grid step edges."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3))
    img[:] = rng.uniform(40, 215, 3)
    for _ in range(n):
        w, h = rng.integers(30, 100, 2)
        x, y = rng.integers(-20, size - 10, 2)
        img[max(y, 0):y + h, max(x, 0):x + w] = rng.uniform(20, 235, 3)
    return img


def _rotated(seed: int, size: int = 256, n: int = 12, ss: int = 4) -> np.ndarray:
    """Float RGB image of rectangles at random angles, drawn at 4x and area-downscaled."""
    rng = np.random.default_rng(seed)
    big = np.empty((size * ss, size * ss, 3))
    big[:] = rng.uniform(40, 215, 3)
    for _ in range(n):
        c = rng.uniform(0, size * ss, 2)
        w, h = rng.uniform(30 * ss, 100 * ss, 2)
        box = cv2.boxPoints(((c[0], c[1]), (w, h), rng.uniform(0, 180))).astype(np.int32)
        cv2.fillPoly(big, [box], tuple(float(v) for v in rng.uniform(20, 235, 3)))
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _blurred(seed: int, sigma: float, noise: float = 0.0) -> np.ndarray:
    img = cv2.GaussianBlur(_rects(seed), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    if noise:
        img = img + np.random.default_rng(seed + 100).normal(0, noise, img.shape)
    return _u8(img)


# ----------------------------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("sigmas", [(2.0, 5.0, 10.0), (10.0, 2.0, 5.0)])
def test_noise_sigma_per_channel_on_flat_image(sigmas):
    """Flat 8-bit 256x256 image + Gaussian noise of a different sigma per channel (0-255);
    measured: (2, 5, 10) -> (1.99, 5.18, 9.98) and (10, 2, 5) -> (9.87, 2.05, 4.83): at most 3.6%
    off (8-bit quantisation included)."""
    rng = np.random.default_rng(0)
    img = _u8(np.array([120.0, 110.0, 130.0]) + rng.standard_normal((256, 256, 3)) * np.array(sigmas))
    est = noise_sigma(img)
    assert len(est) == 3
    for e, s in zip(est, sigmas):
        assert abs(e / s - 1) < 0.10, (est, sigmas)


def test_noise_sigma_scales_dtypes_and_gray():
    rng = np.random.default_rng(1)
    img = _u8(128 + rng.normal(0, 4.0, (128, 160, 3)))
    ref = noise_sigma(img)
    assert noise_sigma(img.astype(np.uint16) * 257) == pytest.approx(ref, abs=1e-3)
    assert noise_sigma(img.astype(np.float32) / 255) == pytest.approx(ref, abs=1e-3)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert noise_sigma(rgba) == pytest.approx(ref)
    gray = noise_sigma(img[:, :, 1])
    assert len(gray) == 1 and gray == noise_sigma(np.repeat(img[:, :, 1:2], 3, axis=2))[:1]
    assert gray[0] == pytest.approx(ref[1], rel=0.08)  # other blocks: ranked on G alone
    assert abs(ref[1] / 4.0 - 1) < 0.10
    # a truly continuous (float) image: the plain median
    f = 0.5 + rng.normal(0, 3.0 / 255, (256, 256))
    assert abs(noise_sigma(f)[0] / 3.0 - 1) < 0.10
    assert noise_sigma(f.astype(np.float16))[0] == pytest.approx(noise_sigma(f)[0], rel=0.05)
    # 0-255 floats gave a noise 255 times too high; one image for a list was read as its rows
    with pytest.raises(ValueError, match="float images are taken in"):
        image_figures(img.astype(np.float64))
    with pytest.raises(ValueError, match="synthetic: give a list of images"):
        compare_sets(img, [img])


def test_noise_sigma_ignores_edges_and_texture():
    """Noise 5 on a scene with shapes, text and texture: the smoothest blocks give 5.02-5.23 (the
    scene's own pixel-scale texture measures 1.1 without noise); all of HH gives over 10% more."""
    rng = np.random.default_rng(2)
    scene = synthetic_scene(256, 256, seed=3).astype(np.float64)
    noisy = _u8(scene + rng.normal(0, 5.0, scene.shape))
    est = noise_sigma(noisy)
    assert all(abs(e / 5.0 - 1) < 0.10 for e in est), est
    hh = noisy[0::2, 0::2].astype(float) - noisy[0::2, 1::2] - noisy[1::2, 0::2] + noisy[1::2, 1::2]
    plain = np.median(np.abs(hh / 2), axis=(0, 1)) / 0.6745  # the estimator on every coefficient
    assert np.all(plain > np.array(est) * 1.1), (plain, est)
    rect = _blurred(4, 1.0, noise=3.0)
    assert all(abs(e / 3.0 - 1) < 0.10 for e in noise_sigma(rect))
    assert noise_sigma(np.full((64, 64, 3), 77, np.uint8)) == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------------------------
# blur

# measured (seeds 0-1, 256x256 8-bit): relative error without noise -0.1%..-0.8% for every sigma;
# with noise sigma 2 (0-255): -0.9%..-3.2% (sigma 1: -0.9/-1.5, 1.5: -1.6/-1.7, 2: -2.1/-1.6,
# 3: -3.2/-1.7).
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_blur_width_on_blurred_rectangles(sigma):
    """Random rectangles (pixel-grid steps) blurred by a Gaussian of known sigma (px): within 15%
    without noise and 25% with noise of sigma 2 (0-255); measured errors are under 1% and 3.5%."""
    clean = [blur_width(_blurred(seed, sigma)) for seed in (0, 1)]
    noisy = [blur_width(_blurred(seed, sigma, noise=2.0)) for seed in (0, 1)]
    for e in clean:
        assert e is not None and abs(e / sigma - 1) < 0.15, (clean, sigma)
        assert abs(e / sigma - 1) < 0.03  # what it measures today (<1%), with margin
    for e in noisy:
        assert e is not None and abs(e / sigma - 1) < 0.25, (noisy, sigma)
        assert abs(e / sigma - 1) < 0.06


def test_blur_width_on_oblique_edges():
    """Rectangles at random angles, area-downscaled from 4x (anti-aliased), then blurred: compared
    with sqrt(sigma^2 + 1/12) (the area sampling's own width); measured +6.0%, +2.3%, +1.2% for
    sigma 0.7, 1.5, 3."""
    for sigma in (0.7, 1.5, 3.0):
        e = blur_width(_u8(cv2.GaussianBlur(_rotated(0), (0, 0), sigma)))
        assert e is not None and abs(e / np.sqrt(sigma ** 2 + 1 / 12) - 1) < 0.10, (e, sigma)


def test_blur_width_none_without_edges():
    rng = np.random.default_rng(5)
    assert blur_width(np.full((128, 128, 3), 100, np.uint8)) is None
    assert blur_width(_u8(128 + rng.normal(0, 10, (128, 128, 3)))) is None  # noise only
    assert blur_width(np.tile(np.linspace(0, 1, 128), (128, 1))) is None  # smooth ramp
    assert blur_width(np.zeros((12, 12), np.uint8)) is None  # too small for a profile


# ----------------------------------------------------------------------------------------------
# spectrum


def test_spectrum_of_white_noise_is_flat_and_normalised():
    rng = np.random.default_rng(6)
    noise = rng.normal(0, 1, (256, 256))
    f, p = power_spectrum(0.5 + 0.05 * noise)
    assert f.shape == p.shape == (32,)
    assert f[0] > 0 and f[-1] <= 0.5 and np.all(np.diff(f) > 0)
    assert np.abs(p).max() < 0.3  # normalised: mean power 1 -> log10 0
    slope = np.polyfit(f, p, 1)[0]
    assert abs(slope) < 0.5, slope  # per cycle/px; measured -0.03 (max |value| 0.15)
    # shape only: brightness, contrast and size do not matter
    _, p_dim = power_spectrum(0.2 + 0.01 * noise)
    assert np.allclose(p_dim, p, atol=1e-6)
    _, p_small = power_spectrum(0.5 + 0.05 * noise[:128, :200])
    assert np.abs(p_small - p).mean() < 0.1


def test_spectrum_of_blurred_image_loses_high_frequencies():
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, (256, 256))
    f, p = power_spectrum(noise)
    _, pb = power_spectrum(cv2.GaussianBlur(noise, (0, 0), 1.5))
    hi = f > 0.25
    # Gaussian transfer exp(-2 pi^2 s^2 f^2): at 0.35 cycles/px, -47 dB; measured mean -42.6 dB
    assert (p[hi] - pb[hi]).mean() > 3.0  # more than 30 dB less high-frequency power
    assert pb[0] > p[0] + 0.5  # normalisation moves the power to low frequencies
    assert np.all(np.diff(pb[4:]) < 0.05)  # falls monotonically (up to sampling noise)


def test_spectrum_handles_tiny_and_constant_images():
    _, p = power_spectrum(np.random.default_rng(8).normal(0, 1, (16, 16)))
    assert np.isfinite(p).all() and p.shape == (32,)
    _, p0 = power_spectrum(np.full((64, 64, 3), 9, np.uint8))
    assert np.array_equal(p0, np.zeros(32))


# ----------------------------------------------------------------------------------------------
# figures and comparison


def test_image_figures_keys_and_speed():
    rng = np.random.default_rng(9)
    img = _u8(synthetic_scene(512, 512, seed=1) + rng.normal(0, 2, (512, 512, 3)))
    image_figures(img)
    t = time.perf_counter()
    f = image_figures(img)
    dt = time.perf_counter() - t
    assert set(f) == {"size", "noise_sigma", "blur_width", "spectrum"}
    assert f["size"] == [512, 512] and len(f["noise_sigma"]) == 3 and len(f["spectrum"]) == 32
    assert isinstance(f["blur_width"], float) and 0.2 < f["blur_width"] < 1.5
    assert dt < 0.6, dt  # ~0.07 s on 2 cores; generous against busy machines
    json.dumps(f)  # plain Python numbers


def test_compare_identical_sets():
    imgs = [_blurred(s, 1.2, noise=3.0) for s in (0, 1)]
    rep = compare_sets(imgs, imgs)
    assert rep["noise_ratio"] == [1.0, 1.0, 1.0]
    assert rep["blur_width_diff_px"] == 0.0
    assert rep["spectrum_distance_db"] == 0.0
    assert rep["synthetic"]["count"] == rep["real"]["count"] == 2
    assert "matches the real one within 10%" in rep["summary"][0]
    assert "blur matches" in rep["summary"][1]


def test_compare_sets_with_extra_noise_and_less_blur():
    real = [_blurred(s, 2.0, noise=2.0) for s in (0, 1)]
    syn = [_blurred(s, 1.0, noise=6.0) for s in (2, 3)]
    rep = compare_sets(syn, real)
    assert all(2.6 < q < 3.4 for q in rep["noise_ratio"]), rep["noise_ratio"]  # 6 / 2
    assert rep["blur_width_diff_px"] == pytest.approx(-1.0, abs=0.15)
    assert rep["spectrum_distance_db"] > 1.0
    text = "\n".join(rep["summary"])  # measured: 3.08x/2.98x/2.90x, -0.98 px, 10.5 dB
    for ch in "RGB":
        assert re.search(rf"^synthetic noise is [23]\.\d\dx the real one in {ch} \(", text, re.M), text
    assert re.search(r"^synthetic LR is sharper than real by (0\.9|1\.0)\d px", text, re.M), text
    assert "more power above 0.25" in text


def test_compare_mixed_dtypes_gray_and_16_bit():
    img = _blurred(0, 1.5, noise=3.0)
    other = [img.astype(np.uint16) * 257, img.astype(np.float32) / 255]
    rep = compare_sets([img, img], other)
    assert rep["noise_ratio"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)
    assert rep["spectrum_distance_db"] < 0.01
    g = img[:, :, 1]
    gray = compare_sets([g], [np.repeat(g[:, :, None], 3, axis=2)])  # gray counts for all channels
    assert gray["synthetic"]["noise_sigma"] == [gray["synthetic"]["noise_sigma"][0]] * 3
    assert gray["noise_ratio"] == [1.0, 1.0, 1.0] and gray["spectrum_distance_db"] == 0.0


def test_constant_images_have_no_spectral_shape():
    """A constant (featureless) image has no spectrum: left out of its set's mean; a set of only
    constant images gives no spectral distance, and the summary and picture say so."""
    img = _blurred(0, 1.5, noise=3.0)
    flat = np.full_like(img, 128)
    assert image_figures(flat)["spectrum"] is None
    mixed = compare_sets([img], [img, flat])
    assert mixed["real"]["spectrum_images"] == 1 and mixed["spectrum_distance_db"] == 0.0
    rep = compare_sets([img], [flat])
    assert rep["spectrum_distance_db"] is None and rep["real"]["spectrum"] is None
    assert "spectral shape not measured: the real images are all constant" in rep["summary"]
    assert realism_figure([img], [flat], rep).ndim == 3
    json.dumps(rep)


def test_realism_figure_shape():
    syn = [_blurred(s, 1.0, noise=5.0) for s in range(5)]
    real = [_blurred(s, 2.0, noise=2.0)[:100, :90] for s in range(2)]
    rep = compare_sets(syn, real)
    fig = realism_figure(syn, real, rep)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    assert fig.shape[1] == 4 * (256 + 4)
    assert 800 < fig.shape[0] < 1200
    # the first synthetic crop is drawn at 2x, nearest neighbour, under the 26-px header
    crop = syn[0][64:192, 64:192]
    assert np.array_equal(fig[26:26 + 256:2, 0:256:2], crop)


# ----------------------------------------------------------------------------------------------
# the report files


def _write_refs(folder, seeds=(0, 1)) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    imgs = [_blurred(s, 2.0, noise=2.0) for s in seeds]
    for s, img in zip(seeds, imgs):
        write_png(folder / f"real_{s}.png", img)
    return imgs


def test_write_realism_report_end_to_end(tmp_path):
    _write_refs(tmp_path / "real")
    syn_dir = tmp_path / "syn"
    syn_dir.mkdir()
    for s in (2, 3, 4):
        write_png(syn_dir / f"s{s}.png", _blurred(s, 1.0, noise=6.0))
    out = tmp_path / "out"
    rep = write_realism_report(syn_dir, tmp_path / "real", out)
    text = (out / "realism.json").read_text()
    on_disk = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in realism.json"))  # strict JSON
    assert on_disk == json.loads(json.dumps(rep))
    for key in ("synthetic", "real", "frequency", "noise_ratio", "blur_width_diff_px", "spectrum_distance_db",
                "summary", "images", "skipped", "units", "settings", "reference"):
        assert key in on_disk, key
    assert on_disk["synthetic"]["count"] == 3 and on_disk["real"]["count"] == 2
    assert on_disk["skipped"] == []
    assert all(2.6 < q < 3.4 for q in on_disk["noise_ratio"])
    assert on_disk["blur_width_diff_px"] == pytest.approx(-1.0, abs=0.15)
    assert [f["file"] for f in on_disk["images"]["real"]] == ["real_0.png", "real_1.png"]
    png = read_image(out / "realism.png")
    assert png.dtype == np.uint8 and png.shape[1] == 1040 and 800 < png.shape[0] < 1200
    # the report's own picture is never taken for a synthetic image
    with pytest.raises(UsageError, match="synthetic folder holds no image files"):
        write_realism_report(out, tmp_path / "real", out)


def test_reference_folder_missing_or_empty(tmp_path):
    syn = [_blurred(0, 1.0)]
    with pytest.raises(UsageError) as e:
        write_realism_report(syn, tmp_path / "nope", tmp_path / "out")
    assert "reference folder does not exist" in str(e.value) and "nope" in str(e.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(UsageError) as e:
        write_realism_report(syn, tmp_path / "empty", tmp_path / "out")
    assert "holds no image files" in str(e.value) and "empty" in str(e.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (bad / "b.jpg").write_bytes(b"")
    with pytest.raises(UsageError) as e:
        write_realism_report(syn, bad, tmp_path / "out")
    assert "no readable reference images (2 tried" in str(e.value) and str(bad) in str(e.value)
    assert not (tmp_path / "out" / "realism.json").exists()


def test_corrupt_small_gray_rgba_and_16_bit_references(tmp_path):
    """The references hold a gray PNG, an RGBA PNG and a 16-bit PNG of the same kind of image
    (blur 2 px, noise 2), a corrupt PNG and a 10-px PNG: the last two are skipped with reasons."""
    ref = tmp_path / "ref"
    ref.mkdir()
    a, b, c = (_blurred(s, 2.0, noise=2.0) for s in (0, 1, 2))
    cv2.imwrite(str(ref / "gray.png"), a[:, :, 1])
    cv2.imwrite(str(ref / "rgba.png"), np.dstack([b[:, :, ::-1], np.full(b.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(ref / "deep.png"), c[:, :, ::-1].astype(np.uint16) * 257)
    good = (ref / "deep.png").read_bytes()
    (ref / "corrupt.png").write_bytes(good[: len(good) // 2])
    write_png(ref / "tiny.png", np.zeros((10, 40, 3), np.uint8))
    rep = write_realism_report([_blurred(3, 2.0, noise=2.0)], ref, tmp_path / "out")
    assert rep["real"]["count"] == 3
    reasons = {s["file"]: s["reason"] for s in rep["skipped"]}
    assert set(reasons) == {"corrupt.png", "tiny.png"}
    assert "truncated PNG" in reasons["corrupt.png"]
    assert f"need at least {MIN_SIZE} px" in reasons["tiny.png"]
    assert all(s["set"] == "real" for s in rep["skipped"])
    real = {f["file"]: f for f in rep["images"]["real"]}
    assert all(abs(v / 2.0 - 1) < 0.15 for f in real.values() for v in f["noise_sigma"])
    assert all(abs(f["blur_width"] / 2.0 - 1) < 0.15 for f in real.values())
    assert rep["noise_ratio"] == pytest.approx([1.0, 1.0, 1.0], abs=0.1)
    assert abs(rep["blur_width_diff_px"]) < 0.15
    on_disk = json.loads((tmp_path / "out" / "realism.json").read_text())
    assert on_disk["skipped"] == rep["skipped"]


def test_max_images_draws_a_reproducible_subset(tmp_path):
    _write_refs(tmp_path / "real", seeds=(0, 1, 2, 3))
    syn = [_blurred(s, 1.0) for s in (4, 5, 6)]
    r1 = write_realism_report(syn, tmp_path / "real", tmp_path / "o1", max_images=2, rng_seed=3)
    r2 = write_realism_report(syn, tmp_path / "real", tmp_path / "o2", max_images=2, rng_seed=3)
    assert r1["real"]["count"] == r1["synthetic"]["count"] == 2
    assert r1["settings"]["available"] == {"synthetic": 3, "real": 4}
    assert r1["noise_ratio"] == [0.0, 0.0, 0.0]  # noiseless synthetic vs noise 2
    assert r1["summary"][0].startswith("synthetic noise is 0.00x the real one in R")
    names = [f["file"] for f in r1["images"]["real"]]
    assert names == [f["file"] for f in r2["images"]["real"]] and len(set(names)) == 2
    with pytest.raises(UsageError):
        write_realism_report(syn, tmp_path / "real", tmp_path / "o3", max_images=0)
