"""`realsr degrade` end to end: every mode, manifest replay, seeds, resume, shards, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from realsr.cli.main import main
from realsr.degrade.degrade_pair import regenerate
from realsr.degrade.kernels import gaussian_kernel, shift_to_convention
from realsr.degrade.pool import Pool, write_synthetic_pool
from realsr.images import read_image, write_png
from realsr.synthetic import synthetic_scene


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _entries(out: Path) -> dict[str, dict]:
    return {e["name"]: e for e in json.loads((out / "manifest.json").read_text())["pairs"]}


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hr")
    for i in range(3):
        write_png(d / f"img{i}.png", synthetic_scene(90 + 7 * i, 130 + 5 * i, seed=i))
    return d


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory) -> Path:
    """A hand-made x4 pool: one kernel, two noise patches."""
    d = tmp_path_factory.mktemp("pool")
    write_synthetic_pool(d, shift_to_convention(gaussian_kernel(25, 2.5), 4), n_noise=2, noise_size=48, name="a")
    return d


@pytest.mark.parametrize("mode", ["pool", "classic", "bicubic", "highorder"])
def test_every_mode_writes_pairs_that_regenerate(hr_dir, pool_dir, tmp_path, mode):
    out = tmp_path / mode
    extra = ["--pool", pool_dir] if mode == "pool" else []
    assert _run("degrade", hr_dir, "-o", out, "--mode", mode, "--scale", 4, "--workers", 1, *extra) == 0
    pool = Pool.load(pool_dir) if mode == "pool" else None
    entries = _entries(out)
    assert sorted(entries) == ["img0", "img1", "img2"]
    for name, e in entries.items():
        assert e["status"] == "ok" and e["mode"] == mode
        assert {"seed", "kernel", "noise", "jpeg_quality", "steps"} <= set(e)
        hr, lr = read_image(out / "HR" / f"{name}.png"), read_image(out / "LR" / f"{name}.png")
        assert hr.shape[0] == 4 * lr.shape[0] and hr.shape[1] == 4 * lr.shape[1]
        assert np.array_equal(regenerate(hr, e, pool), lr)
    if mode == "pool":
        assert entries["img0"]["kernel"] == [{"type": "pool", "file": "kernels/a_x4.npy"}]


def test_same_seed_same_files_and_other_seed_differs(hr_dir, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert _run("degrade", hr_dir, "-o", tmp_path / name, "--mode", "classic", "--seed", seed, "--workers", 1) == 0
    a, b, c = (read_image(tmp_path / n / "LR" / "img1.png") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_workers_shards_and_resume_give_the_same_files(hr_dir, tmp_path):
    ref = tmp_path / "ref"
    assert _run("degrade", hr_dir, "-o", ref, "--mode", "highorder", "--workers", 1) == 0
    sh = tmp_path / "sh"
    assert _run("degrade", hr_dir, "-o", sh, "--mode", "highorder", "--shard", "1/2", "--workers", 1) == 0
    assert not (sh / "manifest.json").exists()
    assert _run("degrade", hr_dir, "-o", sh, "--mode", "highorder", "--shard", "2/2", "--workers", 2) == 0
    assert sorted(_entries(sh)) == sorted(_entries(ref))
    for n in _entries(ref):
        assert np.array_equal(read_image(ref / "LR" / f"{n}.png"), read_image(sh / "LR" / f"{n}.png"))
    # resume: a deleted LR is redone, the others are kept as they are
    (ref / "LR" / "img2.png").unlink()
    before = (ref / "LR" / "img0.png").stat().st_mtime_ns
    assert _run("degrade", hr_dir, "-o", ref, "--mode", "highorder", "--workers", 1) == 0
    assert (ref / "LR" / "img2.png").exists() and (ref / "LR" / "img0.png").stat().st_mtime_ns == before
    # other settings into the same folder are refused
    assert _run("degrade", hr_dir, "-o", ref, "--mode", "classic") == 2


def test_cleanup_add_makes_clean_pairs(hr_dir, tmp_path):
    out = tmp_path / "c"
    assert _run("degrade", hr_dir / "img0.png", "-o", out, "--mode", "bicubic", "--scale", 2, "--cleanup", "add") == 0
    e = _entries(out)
    assert sorted(e) == ["img0", "img0_clean"] and e["img0_clean"]["cleanup"] is True
    assert read_image(out / "HR" / "img0_clean.png").shape == (44, 64, 3)  # ceil(90/2)=45 -> mod 2 = 44


def test_bad_input(hr_dir, pool_dir, tmp_path, odd_formats):
    src = odd_formats(tmp_path / "src")
    write_png(src / "tiny.png", np.zeros((10, 10, 3), np.uint8))  # smaller than the 31-px pool kernel
    (src / "corrupt.png").write_bytes((hr_dir / "img0.png").read_bytes()[:300])
    (src / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    assert _run("degrade", src, "-o", out, "--pool", pool_dir, "--workers", 1) == 1
    e = _entries(out)
    assert {n for n, v in e.items() if v["status"] == "ok"} == {"ok", "gray", "rgba", "deep"}
    assert "smaller than the 31-px kernel" in e["tiny"]["reason"]
    assert "truncated" in e["corrupt"]["reason"] and "empty" in e["empty"]["reason"]
    assert read_image(out / "LR" / "deep.png").dtype == np.uint16
    assert not (out / "LR" / "tiny.png").exists()
    # pool problems stop the run with the cause named (exit 2)
    assert _run("degrade", src, "-o", tmp_path / "x", "--scale", 4) == 2  # no --pool
    assert _run("degrade", src, "-o", tmp_path / "x", "--pool", pool_dir, "--scale", 2) == 2  # wrong scale
    bad = tmp_path / "badpool"
    bad.mkdir()
    (bad / "pool.json").write_text("{")
    assert _run("degrade", src, "-o", tmp_path / "x", "--pool", bad) == 2
    empty = tmp_path / "emptypool"
    empty.mkdir()
    Pool(4, {}, {}, empty).save(empty / "pool.json")
    assert _run("degrade", src, "-o", tmp_path / "x", "--pool", empty) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("pool.json", "noise"):
        (broken / f).symlink_to(pool_dir / f)
    (broken / "kernels").mkdir()
    (broken / "kernels" / "a_x4.npy").write_bytes(b"not a numpy file")
    assert _run("degrade", src, "-o", tmp_path / "x", "--pool", broken) == 2
    assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "classic", "--noise", "pink") == 2
    assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "classic", "--blur-sigma", "3", "1") == 2
    # an option the mode does not use is an error, not silently ignored
    assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "classic", "--pool", pool_dir) == 2
    cfg = tmp_path / "h.yaml"
    cfg.write_text("second_stage_prob: 0.5")
    assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "classic", "--highorder-config", cfg) == 2
    assert not (tmp_path / "x").exists()


def test_name_collisions_never_touch_another_sources_pair(hr_dir, tmp_path):
    """Two sources called x (different folders), and x_clean next to x with --cleanup add: the later
    one is skipped with a warning; the first's pair is kept; a resume with a different file under
    the same name redoes the pair instead of trusting the old one."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_png(a / "x.png", synthetic_scene(40, 48, seed=1))
    write_png(b / "x.png", synthetic_scene(40, 48, seed=2))
    write_png(a / "x_clean.png", synthetic_scene(40, 48, seed=3))
    out = tmp_path / "o"
    assert _run("degrade", a / "x.png", b / "x.png", "-o", out, "--mode", "bicubic", "--scale", 2) == 0
    e = _entries(out)
    assert list(e) == ["x"] and e["x"]["status"] == "ok" and e["x"]["hr_file"] == str(a / "x.png")
    assert np.array_equal(read_image(out / "HR" / "x.png"), synthetic_scene(40, 48, seed=1))
    assert _run("degrade", b / "x.png", "-o", out, "--mode", "bicubic", "--scale", 2) == 0
    assert _entries(out)["x"]["hr_file"] == str(b / "x.png")
    assert np.array_equal(read_image(out / "HR" / "x.png"), synthetic_scene(40, 48, seed=2))
    out2 = tmp_path / "o2"
    assert _run("degrade", a, "-o", out2, "--mode", "bicubic", "--scale", 2, "--cleanup", "add") == 0
    e = _entries(out2)
    assert sorted(e) == ["x", "x_clean"] and e["x_clean"]["cleanup"] is True  # the cleaned x, not x_clean.png


def test_undecodable_file_names_and_bad_options(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    name = b"caf\xe9.png"  # Latin-1, not UTF-8
    try:
        write_png(Path(os.fsdecode(bytes(src).__add__(b"/" + name))), synthetic_scene(32, 32, seed=1))
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    out = tmp_path / "o"
    assert _run("degrade", src, "-o", out, "--mode", "classic", "--scale", 2) == 0
    assert _run("degrade", src, "-o", out, "--mode", "classic", "--scale", 2) == 0  # resumes: manifest reads back
    (entry,) = _entries(out).values()
    assert entry["status"] == "ok" and (out / "LR" / f"{entry['name']}.png").exists()
    assert _run("degrade", src, "-o", tmp_path / "x", "--seed", "-1") == 2
    cfg = tmp_path / "h.yaml"
    for bad in ("first: {sigma: [0, 0]}", "poisson_peak: 0", "first: {kernel_sizes: [8]}", "methods: []",
                "second: {noise_sigma: [-1, 2]}", "banana: 1"):
        cfg.write_text(bad)
        assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "highorder", "--highorder-config", cfg) == 2, bad

    # classic ranges are named by their options (they were named by internal fields: gaussian_sigma)
    for opts, msg in ((("--noise-sigma", "-3", "-1"), "--noise-sigma must be a range [a, b]"),
                      (("--blur-sigma", "3", "0.2"), "--blur-sigma must be a range [a, b]"),
                      (("--jpeg-quality", "0", "50"), "--jpeg-quality must be a range [a, b] with 1 <= a")):
        capsys.readouterr()
        assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "classic", *opts) == 2, opts
        assert msg in capsys.readouterr().err, opts
    # a reference folder with nothing readable stops the run before any pair is made (it failed after all)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    capsys.readouterr()
    assert _run("degrade", src, "-o", tmp_path / "r", "--mode", "bicubic", "--reference", junk) == 2
    assert "no readable reference images (1 tried; last:" in capsys.readouterr().err
    assert not (tmp_path / "r" / "manifest.json").exists()
    # malformed files are named in plain words (they gave Python's own: "'list' object has no attribute ...")
    for bad, msg in (("- 1", "the parameters must be a mapping of keys, got list"),
                     ("second_stage_prob: abc", "second_stage_prob: expected a number, got 'abc'"),
                     ("first: 5", "first must be a mapping of keys, got int 5"),
                     ("first: {sigma: [0.2, x]}", "first.sigma item: expected a number, got 'x'"),
                     ("a: [", "not valid YAML (while parsing a flow node)")):
        cfg.write_text(bad)
        capsys.readouterr()
        assert _run("degrade", src, "-o", tmp_path / "x", "--mode", "highorder", "--highorder-config", cfg) == 2, bad
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err


def test_pool_entries_outside_the_pool_are_refused(pool_dir, hr_dir, tmp_path):
    bad = tmp_path / "p"
    bad.mkdir()
    obj = json.loads((pool_dir / "pool.json").read_text())
    obj["sources"][0]["kernel"]["file"] = "../../outside.npy"
    (bad / "pool.json").write_text(json.dumps(obj))
    assert _run("degrade", hr_dir, "-o", tmp_path / "x", "--pool", bad) == 2


def test_options_reach_the_recipe_and_the_realism_report(hr_dir, pool_dir, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    for i in range(2):
        write_png(ref / f"r{i}.png", synthetic_scene(60, 80, seed=10 + i))
    out = tmp_path / "c"
    assert _run("degrade", hr_dir, "-o", out, "--mode", "classic", "--resize-methods", "lanczos3", "--antialias",
                "--noise", "none", "--jpeg-prob", "1", "--jpeg-quality", "40", "40", "--blur-sigma", "1", "1",
                "--reference", ref) == 0
    for e in _entries(out).values():
        ops = [s["op"] for s in e["steps"]]
        assert ops == ["blur", "resize", "clip", "jpeg"] and e["jpeg_quality"] == [40] and e["noise"] is None
        assert e["steps"][1]["method"] == "lanczos3" and e["steps"][1]["antialias"] is True
        assert e["kernel"][0]["sigma_x"] == 1.0
    report = json.loads((out / "realism.json").read_text())
    assert report["synthetic"]["count"] == 3 and report["real"]["count"] == 2 and report["summary"]
    assert read_image(out / "realism.png").shape[1] > 500
    # pool mode without noise, HR cleaned up
    out = tmp_path / "p"
    assert _run("degrade", hr_dir / "img0.png", "-o", out, "--pool", pool_dir, "--no-pool-noise", "--cleanup", "replace") == 0
    e = _entries(out)["img0"]
    assert e["cleanup"] is True and e["noise"] is None and [s["op"] for s in e["steps"]] == ["blur", "subsample"]
    assert read_image(out / "HR" / "img0.png").shape == (44, 64, 3)  # ceil(90/2)=45, ceil(130/2)=65 -> mod 4
    # a highorder config that changes the defaults
    cfg = tmp_path / "h.yaml"
    cfg.write_text("second_stage_prob: 0\nfinal_sinc_prob: 0\nfirst: {jpeg_quality: [90, 90]}\n")
    out = tmp_path / "h"
    assert _run("degrade", hr_dir / "img0.png", "-o", out, "--mode", "highorder", "--highorder-config", cfg) == 0
    e = _entries(out)["img0"]
    assert e["jpeg_quality"][0] == 90 and len(e["jpeg_quality"]) == 2
    assert not any(s["op"] == "blur" and s["kernel"]["type"] == "sinc" and s is e["steps"][-1] for s in e["steps"])


def test_the_output_folder_never_eats_its_sources_or_keeps_stale_pairs(hr_dir, tmp_path, capsys):
    """Sources inside OUT/HR (or OUT/LR) are refused before anything is written (degrade would
    overwrite them with their mod-cropped copies); the run's own realism.png is not a source on the
    next run; --overwrite over other settings removes the old pairs it does not redo; a shard with
    other settings than a sibling shard's record is refused before it writes a pair."""
    ds = tmp_path / "ds"
    (ds / "HR").mkdir(parents=True)
    write_png(ds / "HR" / "odd.png", synthetic_scene(41, 43, seed=5))
    before = (ds / "HR" / "odd.png").read_bytes()
    assert _run("degrade", ds / "HR", "-o", ds, "--mode", "bicubic", "--scale", 3) == 2
    assert "lies in the output's HR/ folder" in capsys.readouterr().err
    assert (ds / "HR" / "odd.png").read_bytes() == before and not (ds / "LR").exists()
    # the output folder is the source folder: pairs go to OUT/HR and OUT/LR, the report is not a source
    src = tmp_path / "src"
    src.mkdir()
    write_png(src / "a.png", synthetic_scene(48, 64, seed=6))
    for _ in range(2):
        assert _run("degrade", src, "-o", src, "--mode", "bicubic", "--scale", 2, "--reference", hr_dir) == 0
    assert (src / "realism.png").is_file() and list(_entries(src)) == ["a"]
    # --overwrite with other settings: the three old pairs go, the one redone pair stays
    out = tmp_path / "o"
    assert _run("degrade", hr_dir, "-o", out, "--mode", "bicubic", "--scale", 2) == 0
    assert _run("degrade", hr_dir / "img1.png", "-o", out, "--mode", "classic", "--scale", 2) == 2  # not without it
    assert _run("degrade", hr_dir / "img1.png", "-o", out, "--mode", "classic", "--scale", 2, "--overwrite") == 0
    assert list(_entries(out)) == ["img1"] and _entries(out)["img1"]["mode"] == "classic"
    assert sorted(p.name for p in (out / "LR").iterdir()) == sorted(p.name for p in (out / "HR").iterdir()) == ["img1.png"]
    # shards of one folder must share their settings: shard 2 with another seed stops at once
    sh = tmp_path / "sh"
    assert _run("degrade", hr_dir, "-o", sh, "--mode", "classic", "--scale", 2, "--shard", "1/2") == 0
    done = sorted(p.name for p in (sh / "LR").iterdir())
    capsys.readouterr()
    assert _run("degrade", hr_dir, "-o", sh, "--mode", "classic", "--scale", 2, "--seed", 1, "--shard", "2/2") == 2
    err = capsys.readouterr().err
    assert "params.seed: 0 -> 1" in err and "manifest.shard-1-of-2.json" in err
    assert sorted(p.name for p in (sh / "LR").iterdir()) == done


def test_malformed_pool_entries_are_named(pool_dir, hr_dir, tmp_path, capsys):
    """Each broken `sources` entry of pool.json stops the run with exit 2 and says what is wrong;
    a pool file with another name than pool.json is loaded (and its digest recorded) as given."""
    good = json.loads((pool_dir / "pool.json").read_text())
    cases = {
        "kernel has no 'file' path": lambda o: o["sources"][0]["kernel"].pop("file"),
        "kernel is str": lambda o: o["sources"][0].__setitem__("kernel", "x"),
        "noise is str": lambda o: o["sources"][0].__setitem__("noise", "abc"),
        "noise[0] has no 'file' path": lambda o: o["sources"][0]["noise"].__setitem__(0, None),
        "has no name": lambda o: o["sources"][0].pop("name"),
        "has status 'good'": lambda o: o["sources"][0].__setitem__("status", "good"),
        "is int, not an object": lambda o: o["sources"].__setitem__(0, 7),
        "scale must be a positive integer, not 4.7": lambda o: o.__setitem__("scale", 4.7),
    }
    bad = tmp_path / "p"
    shutil.copytree(pool_dir, bad)
    for why, spoil in cases.items():
        obj = json.loads(json.dumps(good))
        spoil(obj)
        (bad / "pool.json").write_text(json.dumps(obj))
        capsys.readouterr()
        assert _run("degrade", hr_dir, "-o", tmp_path / "x", "--pool", bad) == 2, why
        err = capsys.readouterr().err
        assert "malformed pool" in err and why in err and "internal error" not in err, (why, err)
    (bad / "pool.json").unlink()
    (bad / "mine.json").write_text(json.dumps(good))
    out = tmp_path / "y"
    assert _run("degrade", hr_dir / "img0.png", "-o", out, "--pool", bad / "mine.json") == 0
    recorded = json.loads((out / "manifest.json").read_text())["params"]["mode_params"]
    assert recorded["pool"].endswith("mine.json") and recorded["pool_json_sha256"]


def test_a_damaged_manifest_is_named_and_overwrite_replaces_it(hr_dir, tmp_path, capsys):
    """An empty or truncated manifest.json stopped every later run, --overwrite included, with no
    hint; now the error says what to do and --overwrite starts over."""
    out = tmp_path / "o"
    args = ["degrade", hr_dir, "-o", out, "--mode", "bicubic", "--scale", "2", "--workers", "1"]
    assert _run(*args) == 0
    (out / "manifest.json").write_text("")
    capsys.readouterr()
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert "cannot read manifest" in err and "delete it, or use --overwrite or another -o" in err
    assert _run(*args, "--overwrite") == 0
    assert json.loads((out / "manifest.json").read_text())["pairs"]
    (out / "manifest.json").unlink()
    (out / "manifest.json").mkdir()  # not even --overwrite deletes a folder in its place
    capsys.readouterr()
    assert _run(*args, "--overwrite") == 2
    assert "manifest.json is a folder, not a record" in capsys.readouterr().err
