"""Degrading with a pool: exact against a hand-made pool, noise statistics, bad input."""

from types import SimpleNamespace

import numpy as np
import pytest

from realsr.degrade.kernels import gaussian_kernel, shift_to_convention
from realsr.degrade.operators import blur_downsample
from realsr.degrade.pool import Pool
from realsr.degrade.pool_degrade import degrade_with_pool, pool_noise
from realsr.errors import RealsrError, UsageError
from realsr.images import to_float, write_png

SIGMA = 3.0  # DN on the 0-255 scale


@pytest.fixture
def pool(tmp_path):
    """One known x2 kernel and one 64-px noise patch of known sigma."""
    k = shift_to_convention(gaussian_kernel(13, 1.3, 0.9, 0.5), 2).astype(np.float32)
    np.save(tmp_path / "k.npy", k)
    rng = np.random.default_rng(0)
    patch = np.clip(np.round(128 + rng.normal(0, SIGMA, (64, 64, 3))), 0, 255).astype(np.uint8)
    write_png(tmp_path / "n.png", patch)
    src = {"name": "a", "file": "a.png", "status": "ok", "reason": None,
           "kernel": {"name": "a", "file": "k.npy", "size": k.shape[0]},
           "noise": [{"file": "n.png", "y": 0, "x": 0, "gray_var": SIGMA ** 2, "gray_mean": 128.0}]}
    p = Pool(2, {}, {"a": src}, tmp_path)
    p.save(tmp_path / "pool.json")
    return Pool.load(tmp_path), k, patch


def test_lr_is_blur_subsample_plus_zero_mean_noise(pool, scene):
    p, k, patch = pool
    hr = scene[:203, :301]  # odd sizes: mod-cropped to 202 x 300
    lr, rec = degrade_with_pool(hr, p, 2, np.random.default_rng(1), quantize=False)
    clean = blur_downsample(to_float(hr[:202, :300]), k, 2)
    assert lr.shape == (101, 150, 3) == clean.shape
    n = lr - clean
    assert rec["kernel"] == "k.npy" and len(rec["noise"]) == 2 * 3  # 64-px tiles over 101 x 150
    for t in rec["noise"]:  # every tile is a zero-mean crop of the patch
        x, y = t["at"]
        x0, y0, x1, y1 = t["crop"]
        crop = patch[y0:y1, x0:x1].astype(np.float64) / 255
        assert np.allclose(n[y:y + y1 - y0, x:x + x1 - x0], crop - crop.mean(axis=(0, 1)), atol=1e-6)
    assert n.std() * 255 == pytest.approx(SIGMA, rel=0.1)
    q, _ = degrade_with_pool(hr, p, 2, np.random.default_rng(1))
    assert q.dtype == np.uint8 and np.array_equal(q, np.floor(np.clip(lr, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_same_seed_same_lr_and_dtypes(pool, scene):
    p, _, _ = pool
    hr = scene[:128, :128]
    a, ra = degrade_with_pool(hr, p, 2, np.random.default_rng(5))
    b, rb = degrade_with_pool(hr, p, 2, np.random.default_rng(5))
    assert np.array_equal(a, b) and ra == rb
    lr16, _ = degrade_with_pool(hr.astype(np.uint16) * 257, p, 2, np.random.default_rng(5))
    assert lr16.dtype == np.uint16 and np.abs(lr16 / 257.0 - a).max() <= 1
    gray, _ = degrade_with_pool(hr[..., 1], p, 2, np.random.default_rng(5), noise=False)
    assert gray.shape == (64, 64, 3)


def test_bad_input(pool, tmp_path):
    p, _, _ = pool
    with pytest.raises(RealsrError, match="smaller than"):
        degrade_with_pool(np.zeros((10, 40, 3), np.uint8), p, 2, np.random.default_rng(0))
    with pytest.raises(UsageError, match="x2, not x4"):
        degrade_with_pool(np.zeros((64, 64, 3), np.uint8), p, 4, np.random.default_rng(0))
    empty = Pool(2, {}, {}, tmp_path)
    with pytest.raises(UsageError, match="no kernels"):
        degrade_with_pool(np.zeros((64, 64, 3), np.uint8), empty, 2, np.random.default_rng(0))
    with pytest.raises(UsageError, match="no noise"):
        pool_noise((8, 8), empty, np.random.default_rng(0))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pool.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot read pool"):
        Pool.load(tmp_path / "bad")
    (tmp_path / "bad" / "pool.json").write_text('{"format": "realsr-pool", "version": 1, "scale": 2}')
    with pytest.raises(UsageError, match="malformed pool"):
        Pool.load(tmp_path / "bad")


def test_torch_random_pool_and_noise_bank(pool, scene):
    """The batched pool degradation on torch: each LR is the pool kernel's blur + subsample plus one
    zero-mean crop of a pool patch (Real-SR's noiseDataset); inject clamps to [0, 1]."""
    torch = pytest.importorskip("torch")
    from realsr.degrade import ops

    p, k, patch = pool
    hr = scene[:96, :128]
    x = torch.from_numpy(to_float(hr).transpose(2, 0, 1).copy())[None].repeat(2, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    bank = ops.NoiseBank(p)
    clean = blur_downsample(to_float(hr), k, 2)
    lr = ops.random_pool(x, 2, p, None, np.random.default_rng(0), g)
    assert np.abs(lr[1].permute(1, 2, 0).numpy() - clean).max() < 1e-5
    noisy = ops.random_pool(x, 2, p, bank, np.random.default_rng(0), g)
    n = (noisy - lr).numpy()
    assert np.abs(n.mean(axis=(2, 3))).max() < 1e-6 and n.std() * 255 == pytest.approx(SIGMA, rel=0.15)
    assert not np.array_equal(n[0], n[1])  # one crop per image
    out = bank.inject(torch.ones(3, 3, 16, 16), g)
    assert out.max() <= 1 and out.shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="larger than the smallest pool patch"):
        bank.sample(1, 65, 10)
    # the torch path refuses what the NumPy path refuses: another scale's pool, integer tensors
    with pytest.raises(UsageError, match="built for x2, not x4"):
        ops.random_pool(x, 4, p, None, np.random.default_rng(0))
    u8 = (x * 255).to(torch.uint8)
    for call in (lambda: ops.random_pool(u8, 2, p, None, np.random.default_rng(0)), lambda: bank.inject(u8)):
        with pytest.raises(ValueError, match="float tensor in \\[0, 1\\], got a 4-D torch.uint8 tensor"):
            call()

    assert bank.inject(x[:0, :, :16, :16]).shape == (0, 3, 16, 16)  # an empty batch stays empty
    with pytest.raises(ValueError, match="noise patches have 3 channels, the images 1"):  # was broadcast to RGB
        bank.inject(x[:, :1, :16, :16])
    # a seed serves as well as a Generator for the pool's draws (an int gave an AttributeError)
    assert np.array_equal(p.random_kernel(3)[0], p.random_kernel(np.random.default_rng(3))[0])
    assert np.array_equal(p.random_noise(3, 16)[0], p.random_noise(np.random.default_rng(3), 16)[0])
    with pytest.raises(ValueError, match="give a CPU generator"):  # what the degrade benchmark passed on CUDA
        bank.sample(1, 8, 8, generator=SimpleNamespace(device=torch.device("cuda")))  # a stand-in: no GPU here
    assert ops.blur_downsample(x[:0], k, 2).shape == (0, 3, 48, 64)
    # a sources entry without its photo's path is still usable (its kernels and noise list it as None)
    rec = p.sources["a"]
    rec.pop("file")
    assert p.kernels[0]["source"] is None and p.noise[0]["source"] is None


def test_bad_kernel_files_are_refused_naming_the_file(pool, tmp_path):
    p, k, _ = pool
    bad = {"nan": np.full((5, 5), np.nan), "zero": np.zeros((5, 5)), "flat": np.ones((5, 3)), "cube": np.ones((3, 3, 3)),
           "neg": np.array([[1.0, -1.0], [1.0, 1.0]]), "bool": np.ones((3, 3), bool), "cplx": np.ones((3, 3), complex)}
    msgs = {"nan": "finite values with a positive sum", "zero": "positive sum", "flat": "square 2-D",
            "cube": "square 2-D", "neg": "negative weight", "bool": "not numbers", "cplx": "not numbers"}
    for name, arr in bad.items():
        np.save(tmp_path / f"{name}.npy", arr)
        with pytest.raises(UsageError, match=msgs[name]) as e:
            p.kernel_file(f"{name}.npy")
        assert f"{name}.npy" in str(e.value)
    np.save(tmp_path / "int.npy", np.ones((3, 3), np.int64))  # integer weights are normalised
    assert p.kernel_file("int.npy").sum() == pytest.approx(1.0)
