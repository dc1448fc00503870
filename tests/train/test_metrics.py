"""PSNR / SSIM: the benchmark protocol, numpy vs torch, bit depths, the published bicubic baselines."""

import math

import cv2
import numpy as np
import pytest

from realsr.resize import imresize
from realsr.train.metrics import prepare, psnr, psnr_torch, ssim, ssim_torch


@pytest.fixture
def pair(scene):
    hr = scene[:96, :128]
    noisy = np.clip(hr.astype(int) + np.random.default_rng(0).integers(-6, 7, hr.shape), 0, 255).astype(np.uint8)
    return noisy, hr


def test_psnr_values_and_conventions(pair):
    sr, hr = pair
    assert psnr(hr, hr, 4) == math.inf and ssim(hr, hr, 4) == pytest.approx(1.0)
    one = hr.astype(int) + 1
    one[one > 255] = 254
    # RGB: every pixel 1 level off -> MSE 1 -> 20 log10(255)
    assert psnr(one.astype(np.uint8), hr, 0, y_channel=False) == pytest.approx(20 * math.log10(255), abs=0.01)
    # Y: a +1 on R, G and B moves Y by (65.481 + 128.553 + 24.966) / 255 = 0.8588
    flat = np.full((32, 32, 3), 100, np.uint8)
    assert psnr(flat + 1, flat) == pytest.approx(20 * math.log10(255 / 0.858824), abs=1e-4)
    # MATLAB's rounded Y: 0.86 rounds to a whole level
    assert psnr(flat + 1, flat, round_y=True) == pytest.approx(20 * math.log10(255), abs=1e-6)
    # the crop happens before the conversion and changes the number
    assert psnr(sr, hr, 0) != psnr(sr, hr, 4)
    assert prepare(hr, 4).shape == (88, 120) and prepare(hr, 4, y_channel=False).shape == (88, 120, 3)
    assert prepare(hr).min() >= 16 and prepare(hr).max() <= 235


def test_bit_depths_and_float_inputs(pair):
    sr, hr = pair
    ref = psnr(sr, hr, 2), ssim(sr, hr, 2)
    assert (psnr(sr.astype(np.uint16) * 257, hr.astype(np.uint16) * 257, 2), ssim(sr.astype(np.uint16) * 257, hr.astype(np.uint16) * 257, 2)) == pytest.approx(ref)
    # float SR outputs are rounded to 8 bit first: a sub-level perturbation changes nothing
    f = sr / 255.0 + 0.3 / 255
    assert psnr(f, hr, 2) == pytest.approx(ref[0]) and ssim(f, hr, 2) == pytest.approx(ref[1])
    # 16-bit keeps its precision: half a level of difference is measured
    base = np.minimum(hr, 254).astype(np.uint16) * 257
    assert psnr(base + 128, base, 0, y_channel=False) == pytest.approx(20 * math.log10(255 / (128 / 257)), abs=1e-6)
    with pytest.raises(ValueError, match="differ in size"):
        psnr(sr[:-1], hr)
    # 0-255 floats used to be clipped to white silently; NaN and other pixel types are refused too
    for bad, msg in ((sr.astype(np.float64), "float images are taken in"), (np.full(sr.shape, np.nan), "NaN"),
                     (sr.astype(np.int32), "got int32")):
        for metric in (psnr, ssim):
            with pytest.raises(ValueError, match=msg):
                metric(bad, hr)
    with pytest.raises(ValueError, match="11x11"):
        ssim(sr[:20, :20], hr[:20, :20], crop_border=5)
    gray = psnr(sr[..., 0], hr[..., 0], 2)
    assert gray == pytest.approx(psnr(sr[..., :1].repeat(3, 2), hr[..., :1].repeat(3, 2), 2, y_channel=False))


def test_torch_equals_numpy(pair, scene):
    torch = pytest.importorskip("torch")
    sr, hr = pair
    srs = np.stack([sr, scene[100:196, :128]])
    hrs = np.stack([hr, hr])

    def t(a):
        return torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 255)

    for y in (True, False):
        for r in (False, True):
            p = psnr_torch(t(srs), t(hrs), 3, y, r)
            s = ssim_torch(t(srs), t(hrs), 3, y, r)
            for i in range(2):
                assert float(p[i]) == pytest.approx(psnr(srs[i], hrs[i], 3, y, r), abs=1e-6)
                assert float(s[i]) == pytest.approx(ssim(srs[i], hrs[i], 3, y, r), abs=1e-7)
    assert math.isinf(float(psnr_torch(t(hrs), t(hrs))[0]))


# Published bicubic baselines (Set5, Y channel, crop = scale), METHODS.md 7 / the issue
PUBLISHED = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.mark.realdata
@pytest.mark.parametrize("round_y", [False, True])
def test_reproduces_published_bicubic_baselines(shared, round_y):
    """MATLAB bicubic x2/x3/x4 of the Set5 LR files against HR. Measured (BasicSR convention, Y not
    rounded): 33.674 / 0.9303, 30.405 / 0.8689, 28.430 / 0.8111; MATLAB's rounded Y: 33.641 /
    0.9292, 30.386 / 0.8678, 28.418 / 0.8101. Both within 0.02 dB and 0.001 of the published values."""
    root = shared("sr_benchmarks", "Set5")
    for s, (want_p, want_s) in PUBLISHED.items():
        ps, ss = [], []
        for hr_path in sorted((root / f"x{s}" / "HR").glob("*.png")):
            hr = cv2.imread(str(hr_path))[:, :, ::-1]
            lr = cv2.imread(str(hr_path.parent.parent / "LR" / hr_path.name))[:, :, ::-1]
            sr = imresize(lr, s)  # MATLAB on uint8: rounded per pass
            ps.append(psnr(sr, hr, s, round_y=round_y))
            ss.append(ssim(sr, hr, s, round_y=round_y))
        assert len(ps) == 5
        assert np.mean(ps) == pytest.approx(want_p, abs=0.02), (s, np.mean(ps))
        assert np.mean(ss) == pytest.approx(want_s, abs=0.001), (s, np.mean(ss))
