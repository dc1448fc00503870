"""``build_pool`` and ``realsr build-pool``: bad input, resume, shards, the pool API."""

import json

import cv2
import numpy as np
import pytest

from realsr.cli.main import main
from realsr.degrade import KernelChecks, KernelGANParams, NoiseParams, Pool, PoolSettings, build_pool, discover_sources
from realsr.images import write_png

FAST = KernelGANParams(iterations=30)
NOISE = NoiseParams(patch=64, stride=64, max_mean=240)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, scene_small):
    d = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    flat = np.full((256, 160, 3), (110, 120, 100), np.float64)  # a flat wall beside the scene
    photo = np.concatenate([scene_small.astype(np.float64), flat], axis=1)
    noisy = np.clip(np.round(photo + rng.normal(0, 2, photo.shape)), 0, 255).astype(np.uint8)
    write_png(d / "photo.png", noisy)
    write_png(d / "photo16.png", noisy.astype(np.uint16) * 257)
    write_png(d / "gray.png", noisy[..., 1])
    write_png(d / "tiny.png", noisy[:40, :50])
    write_png(d / "constant.png", np.full((200, 200, 3), 128, np.uint8))
    cv2.imwrite(str(d / "quarter.jpg"), noisy[:, :, ::-1])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (d / "empty.jpg").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def scene_small(scene):
    return np.ascontiguousarray(scene[200:456, 300:556])


LOOSE = KernelChecks(max_peak=1.0, max_offset=20.0, max_frame_mass=1.0, max_second_mode=1.0)


def _settings(**kw):
    """Orchestration tests run 30 iterations: accept whatever kernel comes out."""
    return PoolSettings(scale=kw.pop("scale", 4), kernelgan=FAST, noise=NOISE, checks=LOOSE, **kw)


def test_bad_inputs_give_per_image_results_and_the_rest_is_built(sources, tmp_path):
    pool = build_pool(discover_sources([sources]), tmp_path / "pool", _settings(), workers=1, progress=False)
    s = pool.sources
    assert s["corrupt"]["status"] == "failed" and "corrupt.png" in s["corrupt"]["reason"]
    assert s["empty"]["status"] == "failed" and "empty" in s["empty"]["reason"]
    assert s["tiny"]["status"] == "rejected" and "too small" in s["tiny"]["reason"]
    assert s["constant"]["kernel"] is None and s["constant"]["kernel_reason"].startswith("featureless")
    assert s["constant"]["status"] == "ok" and len(s["constant"]["noise"]) == 9  # flat: noise patches of std 0
    for name in ("photo", "photo16", "gray", "quarter"):
        assert s[name]["status"] == "ok", s[name]
        assert s[name]["kernel"] is not None or s[name]["kernel_reason"]
    assert s["photo16"]["bit_depth"] == 16
    p16 = [n for n in pool.noise if n["source"].endswith("photo16.png")]
    assert p16 and cv2.imread(str(tmp_path / "pool" / p16[0]["file"]), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    # the written pool reads back, and its contents follow the format
    back = Pool.load(tmp_path / "pool")
    assert back.to_json() == pool.to_json()
    assert (tmp_path / "pool" / "preview.png").is_file()
    for i, e in enumerate(back.kernels):
        k = back.kernel(i)
        assert k.dtype == np.float32 and k.shape == (e["size"], e["size"]) and k.min() >= 0
        assert abs(float(k.sum()) - 1) < 1e-5
    noise, entry = back.random_noise(np.random.default_rng(0), size=32)
    assert noise.shape == (32, 32, 3) and np.allclose(noise.mean(axis=(0, 1)), 0, atol=1e-6)


def test_resume_skips_finished_sources_and_redoes_missing_files(sources, tmp_path, caplog):
    src = discover_sources([sources / "photo.png", sources / "corrupt.png"])
    out = tmp_path / "pool"
    first = build_pool(src, out, _settings(), workers=1, progress=False)
    kfile = out / first.sources["photo"]["kernel"]["file"]
    stamp = kfile.stat().st_mtime_ns
    caplog.set_level("INFO", logger="realsr")
    again = build_pool(src, out, _settings(), workers=1, progress=False)
    assert kfile.stat().st_mtime_ns == stamp  # not redone
    assert again.sources["photo"] == first.sources["photo"]
    kfile.unlink()  # an interrupted write: the source is redone
    third = build_pool(src, out, _settings(), workers=1, progress=False)
    assert kfile.is_file() and np.array_equal(np.load(kfile), np.load(out / third.sources["photo"]["kernel"]["file"]))


def test_same_seed_same_pool_and_shards_merge(sources, tmp_path):
    src = discover_sources([sources / "photo.png", sources / "gray.png", sources / "constant.png"])
    whole = build_pool(src, tmp_path / "a", _settings(scale=2), workers=1, progress=False)
    for k in (1, 2):
        build_pool(src, tmp_path / "b", _settings(scale=2), workers=1, shard=(k, 2), progress=False)
    merged = Pool.load(tmp_path / "b")
    assert sorted(merged.sources) == sorted(whole.sources)
    for a, b in zip(whole.kernels, merged.kernels):
        assert np.array_equal(np.load(tmp_path / "a" / a["file"]), np.load(tmp_path / "b" / b["file"]))
    assert (tmp_path / "b" / "preview.png").is_file()
    # two worker processes (one torch thread each) give the same kernels, bit for bit
    procs = build_pool(src, tmp_path / "c", _settings(scale=2), workers=2, batch=1, progress=False)
    assert sorted(procs.sources) == sorted(whole.sources)
    for a, c in zip(whole.kernels, procs.kernels):
        assert np.array_equal(np.load(tmp_path / "a" / a["file"]), np.load(tmp_path / "c" / c["file"]))


def test_cli_build_pool(sources, tmp_path):
    out = tmp_path / "pool"
    args = ["-q", "build-pool", str(sources / "photo.png"), str(sources / "corrupt.png"), "-o", str(out),
            "--iterations", "20", "--noise-patch", "64", "--noise-stride", "64", "--scale", "2", "--workers", "1"]
    assert main(args) == 1  # corrupt.png failed: exit 1, the rest is built
    pool = json.loads((out / "pool.json").read_text())
    assert pool["format"] == "realsr-pool" and pool["scale"] == 2
    photo = next(s for s in pool["sources"] if s["name"] == "photo")
    assert photo["status"] == "ok" and photo["noise"]
    if photo["kernel"]:  # 20 iterations may or may not give a kernel that passes the checks
        assert pool["kernels"][0]["file"] == "kernels/photo_x2.npy"
    else:
        assert photo["kernel_reason"] and not pool["kernels"]
    assert main(args[:-4] + ["--scale", "4"]) == 2  # other settings in the same folder: refused
    assert main(args + ["--scale", "3"]) == 2  # unsupported scale
    assert main(["-q", "build-pool", str(sources / "photo.png"), "-o", str(tmp_path / "x"), "--no-kernels",
                 "--no-noise"]) == 2
    assert main(["-q", "build-pool", str(sources / "photo.png"), "-o", str(tmp_path / "y"), "--device", "banana"]) == 2
    import torch

    if not torch.cuda.is_available():
        assert main(["-q", "build-pool", str(sources / "photo.png"), "-o", str(tmp_path / "y"), "--device", "cuda"]) == 2


def test_cli_kernel_support_option(sources, tmp_path):
    """--g-structure sets G's layers (a 19x19 kernel for 11,7,3,1,1,1), is recorded in pool.json, and
    impossible structures are refused with the reason."""
    out = tmp_path / "pool"
    base = ["-q", "build-pool", str(sources / "photo.png"), "-o", str(out), "--iterations", "5", "--no-noise",
            "--scale", "2", "--workers", "1", "--retries", "0"]
    assert main(base + ["--g-structure", "11,7,3,1,1,1"]) == 0  # seeded: this photo's estimate is accepted
    pool = json.loads((out / "pool.json").read_text())
    assert pool["params"]["kernelgan"]["g_structure"] == [11, 7, 3, 1, 1, 1]
    # the raw 19x19 estimate, post-processed (re-centring pads it)
    assert np.load(out / pool["kernels"][0]["file"]).shape[0] >= 19
    # --n-filtering: the official post-processing keeps the 40 largest weights (less 0.75 x the 41st);
    # 80 keeps a wider kernel from the same raw estimate (same seed), and is recorded
    wide = tmp_path / "wide"
    assert main(base[:4] + [str(wide)] + base[5:] + ["--g-structure", "11,7,3,1,1,1", "--n-filtering", "80"]) == 0
    wide_pool = json.loads((wide / "pool.json").read_text())
    assert wide_pool["params"]["kernelgan"]["n_filtering"] == 80 and pool["params"]["kernelgan"]["n_filtering"] == 40
    k40, k80 = (np.load(o / p["kernels"][0]["file"]) for o, p in ((out, pool), (wide, wide_pool)))
    assert (k80 > 1e-6).sum() > (k40 > 1e-6).sum()
    assert wide_pool["sources"][0]["kernel"]["sigma_major"] > pool["sources"][0]["kernel"]["sigma_major"]
    assert main(base[:4] + [str(tmp_path / "nf0")] + base[5:] + ["--n-filtering", "0"]) == 2
    for bad in ("7,5,x", "7,5,3", "61,1", "1,1", "8,5,3,1,1,1"):
        assert main(["-q", "build-pool", str(sources / "photo.png"), "-o", str(tmp_path / "bad"), "--no-noise",
                     "--g-structure", bad]) == 2, bad
    with pytest.raises(ValueError, match="too small for D"):
        KernelGANParams(g_structure=(57, 1))
    with pytest.raises(ValueError, match="14x14: its size .* must be odd"):  # misplaced every pool kernel
        KernelGANParams(g_structure=(8, 5, 3, 1, 1, 1))


def test_noise_only_pools_need_no_torch(sources, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    monkeypatch.delitem(sys.modules, "realsr.degrade.kernelgan", raising=False)
    src = [str(sources / "photo.png")]
    assert main(["-q", "build-pool", *src, "-o", str(tmp_path / "a"), "--noise-patch", "64"]) == 2  # kernels need torch
    assert main(["-q", "build-pool", *src, "-o", str(tmp_path / "b"), "--noise-patch", "64", "--noise-stride", "64",
                 "--no-kernels"]) == 0
    assert Pool.load(tmp_path / "b").noise


def test_runs_keep_the_medoid_and_retries_rerun_rejections():
    from realsr.degrade import estimate_kernels

    img = (np.random.default_rng(0).random((120, 120, 3)) * 255).astype(np.uint8)
    p = KernelGANParams(iterations=10, edge_shave=0)
    est = estimate_kernels([img], 2, p, runs=3, checks=LOOSE, retries=0)[0]
    assert est.reason is None and est.figures["runs"] == est.figures["runs_passed"] == 3 and est.figures["spread"] > 0
    one = estimate_kernels([img], 2, p, runs=1, checks=LOOSE, retries=0)[0]
    assert one.figures["runs_passed"] == 1 and one.figures["spread"] is None  # nothing to compare
    never = KernelChecks(max_peak=1e-6)  # every kernel is a "delta"
    est = estimate_kernels([img], 2, p, checks=never, retries=2)[0]
    assert est.kernel is None and est.reason.startswith("delta") and est.figures["attempts"] == 3



def test_worker_processes_give_the_same_estimates_in_input_order():
    from realsr.degrade import estimate_kernels

    rng = np.random.default_rng(1)
    imgs = [(rng.random((100 + 10 * i, 120, 3)) * 255).astype(np.uint8) for i in range(3)]
    imgs.insert(1, np.full((100, 100, 3), 7, np.uint8))  # rejected before any training: keeps its place
    p = KernelGANParams(iterations=10, edge_shave=0)
    one = estimate_kernels(imgs, 2, p, checks=LOOSE, retries=0, keys=[5, 6, 7, 8])
    two = estimate_kernels(imgs, 2, p, checks=LOOSE, retries=0, keys=[5, 6, 7, 8], workers=2)
    assert [e.reason is None for e in two] == [True, False, True, True]
    assert two[1].reason.startswith("featureless")
    for a, b in zip(one, two):
        assert (a.kernel is None and b.kernel is None) or np.array_equal(a.kernel, b.kernel)
        assert a.figures == b.figures
    with pytest.raises(ValueError, match="keys"):
        estimate_kernels(imgs, 2, p, keys=[1, 2])

NOISE_ONLY = dict(kernels=False, scale=2)


def test_duplicate_names_and_own_files_are_left_out(sources, tmp_path, caplog):
    """Two sources with one stem: the first is used, the second skipped with a warning (it would
    replace the first's entry and orphan its files), with 1 or 2 workers alike; the pool's own
    preview.png is not a source when the output folder is a source folder."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.png").write_bytes((sources / "photo.png").read_bytes())
    (b / "x.png").write_bytes((sources / "constant.png").read_bytes())
    caplog.set_level("WARNING", logger="realsr")
    for workers in (1, 2):
        pool = build_pool(discover_sources([a, b]), tmp_path / f"p{workers}", _settings(**NOISE_ONLY),
                          workers=workers, progress=False)
        assert list(pool.sources) == ["x"] and pool.sources["x"]["file"] == str(a / "x.png")
        assert pool.sources["x"]["status"] == "ok" and pool.sources["x"]["noise"]
        assert sorted(f.name for f in (tmp_path / f"p{workers}" / "noise").iterdir()) == \
            sorted(n["file"][len("noise/"):] for n in pool.noise)
    assert "skipping" in caplog.text and "rename one of them" in caplog.text
    for _ in range(2):
        pool = build_pool(discover_sources([a]), a, _settings(**NOISE_ONLY), workers=1, progress=False)
        assert list(pool.sources) == ["x"] and (a / "preview.png").is_file()


def test_files_no_pool_record_lists_are_not_replaced(sources, tmp_path):
    """A folder holding noise/, kernels/ files or a preview.png but no pool.json (someone else's):
    same-named patches and the preview were replaced without --overwrite; now refused untouched."""
    from realsr.errors import UsageError

    src = discover_sources([sources / "photo.png"])
    for where in ("noise/photo_0.png", "kernels/photo.npy", "preview.png"):
        out = tmp_path / where.replace("/", "_")
        (out / where).parent.mkdir(parents=True, exist_ok=True)
        (out / where).write_bytes(b"mine")
        with pytest.raises(UsageError, match=r"no realsr pool \(pool.json\)"):
            build_pool(src, out, _settings(**NOISE_ONLY), workers=1, progress=False)
        assert (out / where).read_bytes() == b"mine" and not (out / "pool.json").exists()
        pool = build_pool(src, out, _settings(**NOISE_ONLY), workers=1, overwrite=True, progress=False)
        assert pool.sources["photo"]["status"] == "ok"


def test_a_shard_with_other_settings_stops_before_any_work(sources, tmp_path):
    from realsr.errors import UsageError

    src = discover_sources([sources / "photo.png", sources / "gray.png"])
    out = tmp_path / "pool"
    build_pool(src, out, _settings(**NOISE_ONLY), workers=1, shard=(1, 2), progress=False)
    files = sorted(p.name for p in (out / "noise").iterdir())
    other = PoolSettings(scale=2, kernels=False, noise=NoiseParams(patch=32, stride=32, max_mean=240))
    with pytest.raises(UsageError, match=r"params.noise.patch: 64 -> 32"):
        build_pool(src, out, other, workers=1, shard=(2, 2), progress=False)
    assert sorted(p.name for p in (out / "noise").iterdir()) == files
    # --overwrite: the old shard's record and files go, the new settings' pool is whole
    pool = build_pool(src, out, other, workers=1, overwrite=True, progress=False)
    assert pool.record == out / "pool.json" and not list(out.glob("pool.shard-*"))
    assert sorted(p.name for p in (out / "noise").iterdir()) == sorted(n["file"][len("noise/"):] for n in pool.noise)


def test_cli_merge_joins_pool_shards_from_separate_folders(sources, tmp_path):
    src = discover_sources([sources / "photo.png", sources / "gray.png"])
    one, two = tmp_path / "one", tmp_path / "two"
    build_pool(src, one, _settings(**NOISE_ONLY), workers=1, shard=(1, 2), progress=False)
    build_pool(src, two, _settings(**NOISE_ONLY), workers=1, shard=(2, 2), progress=False)
    assert not (one / "pool.json").exists()
    for f in two.rglob("*"):
        if f.is_file():
            (one / f.relative_to(two)).parent.mkdir(exist_ok=True)
            (one / f.relative_to(two)).write_bytes(f.read_bytes())
    assert main(["-q", "merge", str(one)]) == 0
    pool = Pool.load(one)
    assert sorted(pool.sources) == ["gray", "photo"] and (one / "preview.png").is_file()
    pool.check_files()
    assert main(["-q", "merge", str(tmp_path / "nowhere")]) == 2
    assert main(["-q", "merge", str(tmp_path)]) == 2  # no shard records there


def test_array_apis_refuse_what_as_rgb_refuses():
    from realsr.degrade import clean_up, collect_noise, degrade_pair, estimate_kernels

    rng = np.random.default_rng(0)
    x = rng.random((40, 40, 3))
    bad = {"float images are taken in \\[0, 1\\]": x * 255, "NaN or infinite": np.where(x < 0.01, np.nan, x),
           "got bool": x > 0.5, "got int64": [[1, 2], [3, 4]]}
    for msg, img in bad.items():
        for api in (collect_noise, clean_up, lambda im: degrade_pair(im, "bicubic", 2, 0)):
            with pytest.raises(ValueError, match=msg):
                api(img)
        with pytest.raises(ValueError, match=f"images\\[1\\]: .*{msg}"):
            estimate_kernels([(x * 255).astype(np.uint8), img])
