"""`realsr align` end to end on generated captures: bad inputs, exit codes, resume, workers, shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realsr.atomic import TMP_PREFIX
from realsr.capture_align import Mapping
from realsr.capture_align.simulate import CaptureSpec, Truth, simulate_lr, simulate_pair, write_simulated_dataset
from realsr.cli.main import main
from realsr.images import read_image, write_png
from realsr.manifest import Manifest
from realsr.synthetic import synthetic_scene


SPEC = CaptureSpec(lr_size=(360, 480), zoom=2.0, distortion=-0.01)


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _entries(out: Path) -> dict[str, dict]:
    return {e["name"]: e for e in _manifest(out)["pairs"]}


def _run(*args: str) -> int:
    return main(["-q", *map(str, args)])


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> Path:
    """Four good simulated capture pairs (LR/, HR/, truth.json)."""
    d = tmp_path_factory.mktemp("captures")
    scenes = [(f"p{i}", synthetic_scene(600, 800, seed=10 + i)) for i in range(4)]
    write_simulated_dataset(d, scenes, SPEC, seed=1)
    return d


def test_main_job_outputs_and_truth(captures, tmp_path):
    out = tmp_path / "out"
    assert _run("align", captures / "LR", captures / "HR", "-o", out, "--scale", "2", "--workers", "1") == 0
    m = _manifest(out)
    assert m["format"] == "realsr-pairs" and m["stage"] == "align" and m["scale"] == 2
    truth = json.loads((captures / "truth.json").read_text())
    for e in m["pairs"]:
        assert e["status"] == "ok" and e["reason"] is None
        lr, hr = read_image(out / "LR" / f"{e['name']}.png"), read_image(out / "HR" / f"{e['name']}.png")
        assert hr.shape[0] == 2 * lr.shape[0] and hr.shape[1] == 2 * lr.shape[1]
        assert e["lr_size"] == [lr.shape[1], lr.shape[0]]
        for key in ("homography", "lr_box", "inliers", "iterations", "residual_px", "psnr_y", "seconds"):
            assert key in e
        err = Truth.from_json(truth[e["name"]]).residual(Mapping.from_manifest(e), e["lr_box"])["mean"]
        assert err < 0.1
        assert (out / "previews" / f"{e['name']}.png").is_file()
    assert not list(out.rglob(TMP_PREFIX + "*"))


def _bad_dataset(captures: Path, root: Path) -> Path:
    lr, hr = root / "LR", root / "HR"
    for side, d in (("LR", lr), ("HR", hr)):
        d.mkdir(parents=True)
        for n in ("p0", "p1"):
            shutil.copy(captures / side / f"{n}.png", d / f"good_{n}.png")
    flat = np.full((360, 480, 3), 128, np.uint8)
    write_png(lr / "featureless.png", flat)
    write_png(hr / "featureless.png", np.full((360, 480, 3), 130, np.uint8))
    other = simulate_pair(synthetic_scene(600, 800, seed=99), SPEC, seed=9)
    shutil.copy(captures / "LR" / "p2.png", lr / "nonoverlap.png")
    write_png(hr / "nonoverlap.png", other.hr)
    shutil.copy(captures / "HR" / "p3.png", lr / "swapped.png")
    shutil.copy(captures / "LR" / "p3.png", hr / "swapped.png")
    x4 = simulate_pair(synthetic_scene(600, 800, seed=12), CaptureSpec(lr_size=(360, 480), zoom=4.0), seed=3)
    write_png(lr / "wrongscale.png", x4.lr)
    write_png(hr / "wrongscale.png", x4.hr)
    (lr / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5000))
    shutil.copy(captures / "HR" / "p0.png", hr / "corrupt.png")
    data = (captures / "HR" / "p1.png").read_bytes()
    shutil.copy(captures / "LR" / "p1.png", lr / "truncated.png")
    (hr / "truncated.png").write_bytes(data[: len(data) // 2])
    (lr / "empty.png").write_bytes(b"")
    shutil.copy(captures / "HR" / "p2.png", hr / "empty.png")
    shutil.copy(captures / "LR" / "p2.png", lr / "missing.png")
    return root


def test_bad_inputs_are_recorded_and_others_complete(captures, tmp_path):
    src = _bad_dataset(captures, tmp_path / "bad")
    out = tmp_path / "out"
    rc = _run("align", src / "LR", src / "HR", "-o", out, "--scale", "2", "--workers", "2")
    assert rc == 1  # the run finished but some pairs failed
    e = _entries(out)
    assert e["good_p0"]["status"] == e["good_p1"]["status"] == "ok"
    expect = {
        "featureless": ("failed", "featureless"),
        "nonoverlap": ("failed", "no overlap"),
        "swapped": (None, "swapped"),
        "wrongscale": ("rejected", "wrong scale: measured zoom 3.9"),
        "corrupt": ("failed", "corrupt PNG"),
        "truncated": ("failed", "truncated PNG"),
        "empty": ("failed", "empty file"),
        "missing": ("failed", "missing HR file"),
    }
    for name, (status, text) in expect.items():
        assert status is None or e[name]["status"] == status, (name, e[name])
        assert e[name]["status"] != "ok" and text in e[name]["reason"], (name, e[name]["reason"])
        assert not (out / "HR" / f"{name}.png").exists() and not (out / "LR" / f"{name}.png").exists()
    assert "corrupt.png" in e["corrupt"]["reason"] and "truncated.png" in e["truncated"]["reason"]
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["good_p0.png", "good_p1.png"]
    # a scale mismatch is rejected before anything is rendered: no preview (quality-gate rejections
    # do get one, see test_rejection_by_quality_gate_keeps_exit_zero)
    assert not (out / "previews" / "wrongscale.png").exists()


def test_rejection_by_quality_gate_keeps_exit_zero(captures, tmp_path):
    out = tmp_path / "out"
    rc = _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
              "--min-psnr", "60")
    assert rc == 0
    e = _entries(out)["p0"]
    assert e["status"] == "rejected" and e["reason"].startswith("PSNR-Y") and "< 60" in e["reason"]
    assert e["psnr_y"] is not None and not (out / "HR" / "p0.png").exists()
    assert (out / "previews" / "p0.png").exists()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _strip_times(m: dict) -> dict:
    for e in m["pairs"]:
        e.pop("seconds", None)
    return m


def test_workers_and_shards_give_the_same_files(captures, tmp_path):
    a, b, c = tmp_path / "serial", tmp_path / "workers", tmp_path / "shards"
    assert _run("align", captures / "LR", captures / "HR", "-o", a, "--scale", "2", "--workers", "1") == 0
    assert _run("align", captures / "LR", captures / "HR", "-o", b, "--scale", "2", "--workers", "2") == 0
    assert _run("align", captures / "LR", captures / "HR", "-o", c, "--scale", "2", "--shard", "1/2", "--workers", "1") == 0
    assert not (c / "manifest.json").exists()  # half done: not merged yet
    assert _run("align", captures / "LR", captures / "HR", "-o", c, "--scale", "2", "--shard", "2/2", "--workers", "1") == 0
    assert _tree(a) == _tree(b) == _tree(c)
    assert _strip_times(_manifest(a)) == _strip_times(_manifest(b)) == _strip_times(_manifest(c))
    # explicit merge command works too
    (c / "manifest.json").unlink()
    assert _run("merge", c) == 0 and _strip_times(_manifest(c)) == _strip_times(_manifest(a))


def test_resume_skips_done_pairs_and_interrupt_leaves_no_partial_file(captures, tmp_path, monkeypatch):
    import realsr.capture_align.dataset as ds

    out = tmp_path / "out"
    real = ds.align_pair
    calls = []

    def flaky(lr, hr, p):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(lr, hr, p)

    monkeypatch.setattr(ds, "align_pair", flaky)
    assert _run("align", captures / "LR", captures / "HR", "-o", out, "--scale", "2", "--workers", "1") == 130
    done = _entries(out)
    assert list(done) == ["p0"] and done["p0"]["status"] == "ok"
    assert not list(out.rglob(TMP_PREFIX + "*"))
    # an interrupted write: the temporary file goes, the final name never appears
    import realsr.atomic as atomic

    def broken_write(path, data):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(data[: len(data) // 3])
            raise KeyboardInterrupt

    monkeypatch.setattr(ds, "align_pair", real)
    monkeypatch.setattr("realsr.images.write_bytes_atomic", broken_write)
    assert _run("align", captures / "LR", captures / "HR", "-o", out, "--scale", "2", "--workers", "1") == 130
    assert not list(out.rglob(TMP_PREFIX + "*")) and not (out / "HR" / "p1.png").exists()
    monkeypatch.undo()
    left = out / "HR" / f"{TMP_PREFIX}left-by-kill.png"
    left.write_bytes(b"partial")  # as a SIGKILL would leave, two hours ago
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    calls.clear()
    monkeypatch.setattr(ds, "align_pair", lambda lr, hr, p: (calls.append(1), real(lr, hr, p))[1])
    assert _run("align", captures / "LR", captures / "HR", "-o", out, "--scale", "2", "--workers", "1") == 0
    assert len(calls) == 3  # p0 was skipped
    assert set(_entries(out)) == {"p0", "p1", "p2", "p3"}
    assert not list(out.rglob(TMP_PREFIX + "*"))


def test_sigint_on_a_real_process(captures, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "realsr.cli", "-q", "align", str(captures / "LR"), str(captures / "HR"), "-o",
           str(out), "--scale", "2", "--workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if (out / "manifest.json").exists() and _manifest(out)["pairs"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    assert not list(out.rglob(TMP_PREFIX + "*"))
    for p in out.rglob("*.png"):
        read_image(p)  # every file under its final name is complete
    assert _run("align", captures / "LR", captures / "HR", "-o", out, "--scale", "2", "--workers", "1") == 0
    assert len(_entries(out)) == 4


def test_other_settings_need_overwrite(captures, tmp_path):
    out = tmp_path / "out"
    assert _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2") == 0
    before = (out / "HR" / "p0.png").read_bytes()
    assert _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
                "--crop", "0.05") == 2
    assert (out / "HR" / "p0.png").read_bytes() == before  # nothing lost
    assert _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
                "--crop", "0.05", "--overwrite") == 0
    # --overwrite removes the old run's pairs that the new run does not redo (no stale pair stays)
    (out / "HR" / "old.png").write_bytes(before)
    (out / "LR" / "old.png").write_bytes(before)
    m = Manifest.load(out / "manifest.json")
    m.set("old", "ok")
    m.scale = 3  # a record made with other settings
    m.save(out / "manifest.json")
    assert _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
                "--crop", "0.05", "--overwrite") == 0
    assert list(_entries(out)) == ["p0"] and not (out / "HR" / "old.png").exists()
    assert not (out / "LR" / "old.png").exists() and (out / "HR" / "p0.png").is_file()


def test_csv_and_suffix_pairing(captures, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    for n in ("p0", "p1"):
        shutil.copy(captures / "LR" / f"{n}.png", one / f"{n}L.png")
        shutil.copy(captures / "HR" / f"{n}.png", one / f"{n}H.png")
    out = tmp_path / "out"
    assert _run("align", one, one, "--lr-suffix", "L", "--hr-suffix", "H", "-o", out, "--scale", "2") == 0
    assert set(_entries(out)) == {"p0", "p1"}
    csv = tmp_path / "pairs.csv"
    csv.write_text("name,lr,hr\nfirst,one/p0L.png,one/p0H.png\nsecond,one/p1L.png,one/nothere.png\n")
    out2 = tmp_path / "out2"
    assert _run("align", csv, "-o", out2, "--scale", "2") == 1
    e = _entries(out2)
    assert e["first"]["status"] == "ok" and e["second"]["status"] == "failed"
    assert "file not found" in e["second"]["reason"]


def test_usage_errors_exit_2_with_one_line(captures, tmp_path, capsys):
    assert _run("align", captures / "LR", captures / "LR", "-o", tmp_path / "o", "--scale", "2") == 2
    err = capsys.readouterr().err
    assert err.startswith("realsr: error:") and len(err.strip().splitlines()) == 1
    assert _run("align", captures / "LR", captures / "HR", "-o", tmp_path / "o", "--scale", "2", "--shard", "3/2") == 2
    assert _run("align", captures / "LR", "-o", tmp_path / "o", "--scale", "2") == 2
    assert _run("align", tmp_path / "missing", captures / "HR", "-o", tmp_path / "o", "--scale", "2") == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{ broken")
    assert _run("align", captures / "LR", captures / "HR", "-o", tmp_path / "bad", "--scale", "2") == 2
    assert (tmp_path / "bad" / "manifest.json").read_text() == "{ broken"  # never overwritten


def test_version_and_help():
    assert main(["--version"]) == 0
    assert main(["align", "--help"]) == 0
    r = subprocess.run(["realsr", "align", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--scale" in r.stdout and "default" in r.stdout


def test_simulate_command_then_align(tmp_path):
    caps = tmp_path / "caps"
    assert _run("simulate", "-o", caps, "--count", "2", "--zoom", "4", "--lr-size", "640x480", "--bits", "16") == 0
    assert _run("align", caps / "LR", caps / "HR", "-o", tmp_path / "out", "--scale", "4") == 0
    e = _entries(tmp_path / "out")
    truth = json.loads((caps / "truth.json").read_text())
    for name, entry in e.items():
        assert entry["status"] == "ok" and entry["bit_depth"] == 16
        assert Truth.from_json(truth[name]).residual(Mapping.from_manifest(entry), entry["lr_box"])["mean"] < 0.1


@pytest.mark.realdata
def test_raw_capture_through_the_whole_command(tmp_path, shared):
    """HR = the real RAW file (developed by rawpy inside the command); LR = a simulated wider,
    blurrier, noisier capture rendered from the developed RAW."""
    raw = shared("raw", "RAW_KODAK_DC50.KDC")
    hr = read_image(raw)
    pair = simulate_lr(hr, CaptureSpec(zoom=2.0, fov_fill=0.95, distortion=0.0, bits=16), seed=0)
    (tmp_path / "LR").mkdir()
    (tmp_path / "HR").mkdir()
    write_png(tmp_path / "LR" / "kodak.png", pair.lr)
    shutil.copy(raw, tmp_path / "HR" / "kodak.KDC")
    out = tmp_path / "out"
    assert _run("align", tmp_path / "LR", tmp_path / "HR", "-o", out, "--scale", "2") == 0
    e = _entries(out)["kodak"]
    assert e["status"] == "ok", e["reason"]
    out_hr = cv2.imread(str(out / "HR" / "kodak.png"), cv2.IMREAD_UNCHANGED)
    assert out_hr.dtype == np.uint16
    assert pair.truth.residual(Mapping.from_manifest(e), e["lr_box"])["mean"] < 0.1


def test_gray_rgba_and_16bit_inputs(captures, tmp_path, capfd):
    lr_rgb, hr_rgb = read_image(captures / "LR" / "p1.png"), read_image(captures / "HR" / "p1.png")
    (tmp_path / "LR").mkdir()
    (tmp_path / "HR").mkdir()
    cv2.imwrite(str(tmp_path / "LR" / "g.png"), cv2.cvtColor(lr_rgb, cv2.COLOR_RGB2GRAY))  # 8-bit gray LR
    rgba = np.dstack([hr_rgb[:, :, ::-1], np.full(hr_rgb.shape[:2], 200, np.uint8)])
    cv2.imwrite(str(tmp_path / "HR" / "g.png"), rgba)  # RGBA HR
    write_png(tmp_path / "LR" / "d16.png", lr_rgb.astype(np.uint16) * 257)
    write_png(tmp_path / "HR" / "d16.png", hr_rgb.astype(np.uint16) * 257)
    out = tmp_path / "out"
    assert main(["-v", "align", str(tmp_path / "LR"), str(tmp_path / "HR"), "-o", str(out), "--scale", "2"]) == 0
    err = capfd.readouterr().err  # fd level: the warning comes from a worker process
    assert "alpha channel dropped" in err and "g: ok" in err  # -v: one line per pair
    e = _entries(out)
    assert e["g"]["status"] == "ok" and e["g"]["colour_transform"]["mode"] == "luminance"
    assert e["d16"]["status"] == "ok" and e["d16"]["bit_depth"] == 16
    assert read_image(out / "LR" / "g.png").std(axis=2).max() == 0  # the gray LR stays gray


def test_debug_shows_traceback(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{ broken")
    assert main(["align", str(tmp_path), str(tmp_path), "--lr-suffix", "L", "-o", str(tmp_path / "bad"),
                 "--scale", "2"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "align", str(tmp_path), str(tmp_path), "--lr-suffix", "L", "-o",
                 str(tmp_path / "bad"), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "realsr: error:" in err


def test_every_align_option_reaches_the_run(captures, tmp_path):
    out = tmp_path / "out"
    args = ["align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
            "--zoom", "2.0", "--zoom-tolerance", "0.2", "--model", "homography", "--robust", "ransac",
            "--ratio", "0.7", "--max-features", "3000", "--coarse-size", "512", "--work-size", "800",
            "--blur", "0.6", "--crop", "0.03", "--max-iters", "1", "--tol", "0.1", "--refine", "field",
            "--field-degree", "2", "--photometric", "none", "--photometric-sigma", "1.0",
            "--interpolation", "lanczos", "--min-inliers", "10", "--max-residual", "0.4", "--min-psnr", "15",
            "--raw-bits", "8", "--raw-linear", "--no-preview", "--workers", "1"]
    assert _run(*args) == 0
    m = _manifest(out)
    a = m["params"]["align"]
    assert (a["zoom"], a["zoom_tolerance"], a["method"], a["ratio"], a["max_features"]) == (2.0, 0.2, "ransac", 0.7, 3000)
    assert (a["coarse_size"], a["work_size"], a["blur"], a["crop"], a["max_iters"], a["tol"]) == (512, 800, 0.6, 0.03, 1, 0.1)
    assert (a["refine"], a["field_degree"], a["photometric"], a["photometric_sigma"]) == ("field", 2, "none", 1.0)
    assert (a["interpolation"], a["min_inliers"], a["max_residual"], a["min_psnr"]) == ("lanczos", 10, 0.4, 15.0)
    assert m["params"]["raw"] == {"linear": True, "bits": 8, "half_size": False}
    e = m["pairs"][0]
    assert e["status"] == "ok" and e["iterations"] <= 1
    assert e["colour_transform"]["mode"] == "none" and (e["field"] is None or e["field"]["degree"] <= 2)
    assert not (out / "previews").exists()


@pytest.mark.parametrize("opt,reason", [
    (["--min-inliers", "100000"], "too few inliers"),
    (["--max-residual", "0"], "residual misalignment"),
    (["--zoom", "3", "--zoom-tolerance", "0.05"], "wrong scale"),
])
def test_gates_reject_with_the_figure(captures, tmp_path, opt, reason):
    out = tmp_path / "out"
    assert _run("align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", out, "--scale", "2",
                *opt) == 0
    e = _entries(out)["p0"]
    assert e["status"] == "rejected" and e["reason"].startswith(reason)


def test_simulate_options_and_determinism(tmp_path):
    base = ["simulate", "--count", "1", "--lr-size", "160x120", "--zoom", "2"]
    assert _run(*base, "-o", tmp_path / "a", "--seed", "3", "--jpeg", "60", "--noise", "0.02", "--blur", "1.0",
                "--distortion", "-0.03") == 0
    assert _run(*base, "-o", tmp_path / "b", "--seed", "3", "--jpeg", "60", "--noise", "0.02", "--blur", "1.0",
                "--distortion", "-0.03") == 0
    assert _run(*base, "-o", tmp_path / "c", "--seed", "4") == 0
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # same seed, same files
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")
    t = json.loads((tmp_path / "a" / "truth.json").read_text())["scene000"]
    assert t["k1"] == -0.03 and t["lr_shape"] == [120, 160]
    lr = read_image(tmp_path / "a" / "LR" / "scene000.png")
    assert lr.shape == (120, 160, 3)
    photo = tmp_path / "photo.png"
    write_png(photo, synthetic_scene(300, 400, seed=5))
    assert _run("simulate", photo, "-o", tmp_path / "d", "--lr-size", "200x150") == 0
    assert (tmp_path / "d" / "HR" / "photo.png").exists()



def test_simulate_refuses_photos_one_pixel_wide(tmp_path, capsys):
    """OpenCV's remap with reflected borders never returned on a 1-px side (and ignored Ctrl-C)."""
    row = tmp_path / "row.png"
    write_png(row, np.full((1, 64, 3), 120, np.uint8))
    assert _run("simulate", row, "-o", tmp_path / "o", "--lr-size", "64x48") == 2
    assert "photo 64x1 px is too small to simulate captures from (at least 2 px per side)" in capsys.readouterr().err
    assert _run("simulate", "-o", tmp_path / "big", "--lr-size", "100000x100000") == 2  # was a MemoryError
    assert "size must be at most 8192x8192" in capsys.readouterr().err
    with pytest.raises(ValueError, match="1x1 px"):
        simulate_pair(np.zeros((1, 1, 3), np.uint8))
    assert simulate_pair(np.full((2, 2, 3), 9, np.uint8), CaptureSpec(lr_size=(32, 32))).lr.shape == (32, 32, 3)


def test_inputs_and_foreign_files_in_the_output_folder_are_safe(captures, tmp_path, capsys):
    """`align same/LR same/HR -o same` (simulate's layout) would overwrite the HR captures with the
    aligned crops: refused before anything is written. An OUT whose HR/ holds images no manifest
    lists is refused unless --overwrite. A file name that is not valid UTF-8 gets a preview (OpenCV's
    text drawing crashed on it)."""
    same = tmp_path / "same"
    for side in ("LR", "HR"):
        (same / side).mkdir(parents=True)
        shutil.copy(captures / side / "p0.png", same / side / "p0.png")
    before = (same / "HR" / "p0.png").read_bytes()
    assert _run("align", same / "LR", same / "HR", "-o", same, "--scale", "2") == 2
    assert "lies in the output's LR/ folder" in capsys.readouterr().err
    assert (same / "HR" / "p0.png").read_bytes() == before and not (same / "manifest.json").exists()
    foreign = tmp_path / "foreign"
    (foreign / "HR").mkdir(parents=True)
    (foreign / "HR" / "p0.png").write_bytes(before)
    args = ["align", captures / "LR" / "p0.png", captures / "HR" / "p0.png", "-o", foreign, "--scale", "2"]
    assert _run(*args) == 2
    assert "holds images that no realsr manifest lists" in capsys.readouterr().err
    assert (foreign / "HR" / "p0.png").read_bytes() == before
    assert _run(*args, "--overwrite") == 0
    odd = tmp_path / "odd"
    name = b"caf\xe9 x.png"  # Latin-1, not UTF-8
    try:
        for side in ("LR", "HR"):
            (odd / side).mkdir(parents=True)
            Path(os.fsdecode(bytes(odd / side) + b"/" + name)).write_bytes((captures / side / "p0.png").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    out = tmp_path / "o"
    assert _run("align", odd / "LR", odd / "HR", "-o", out, "--scale", "2", "--workers", "1") == 0
    assert len(list((out / "previews").iterdir())) == 1


def test_simulate_refuses_to_mix_or_lose_captures(tmp_path, capsys):
    out = tmp_path / "s"
    small = ["--lr-size", "64x48"]
    assert _run("simulate", "-o", out, "--count", "2", *small) == 0
    truth = (out / "truth.json").read_bytes()
    assert _run("simulate", "-o", out, "--count", "1", "--zoom", "4", *small) == 2  # would mix zoom 2 and 4
    assert "already holds captures" in capsys.readouterr().err and (out / "truth.json").read_bytes() == truth
    assert _run("simulate", "-o", out, "--count", "1", "--zoom", "4", *small, "--overwrite") == 0
    assert sorted(p.name for p in (out / "HR").iterdir()) == ["scene000.png"]
    assert list(json.loads((out / "truth.json").read_text())) == ["scene000"]
    (out / "truth.json").unlink()  # as a simulation killed before its end leaves it
    assert _run("simulate", "-o", out, "--count", "1", "--zoom", "4", *small) == 2
    assert "unfinished simulation (no truth.json); start again with --overwrite" in capsys.readouterr().err
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        write_png(d / "img.png", synthetic_scene(120, 160, seed=1))
    assert _run("simulate", a, b, "-o", tmp_path / "d", *small) == 2  # two photos called img
    assert "two photos are called 'img'" in capsys.readouterr().err
    for bad in (["--seed", "-1"], ["--zoom", "nan"], ["--zoom", "inf"], ["--distortion", "nan"]):
        assert _run("simulate", "-o", tmp_path / "x", *small, *bad) == 2, bad
    assert _run("align", out / "LR", out / "HR", "-o", tmp_path / "al", "--scale", "2",
                "--zoom-tolerance", "nan") == 2  # NaN would switch the scale gate off
    assert not (tmp_path / "x").exists() and not (tmp_path / "al").exists()


def test_the_same_photo_twice_and_a_far_too_large_scale_are_named(captures, tmp_path, capsys):
    """Both used to get a misleading reason: "swapped?" for one view twice, "featureless" for a
    --scale far above the zoom (the HR is matched shrunk by the scale, to a few pixels)."""
    lr, hr = captures / "LR" / "p0.png", captures / "HR" / "p0.png"
    assert _run("align", lr, lr, "-o", tmp_path / "a", "--scale", "2") == 2
    assert "LR and HR are the same file" in capsys.readouterr().err
    (tmp_path / "copy").mkdir()
    shutil.copy(lr, tmp_path / "copy" / "p0.png")
    assert _run("align", lr, tmp_path / "copy" / "p0.png", "-o", tmp_path / "b", "--scale", "2") == 0
    reason = _entries(tmp_path / "b")["p0"]["reason"]
    assert "measured zoom 1.000" in reason and "same photo twice" in reason and "swapped" not in reason, reason
    assert _run("align", lr, hr, "-o", tmp_path / "c", "--scale", "16") == 1
    reason = _entries(tmp_path / "c")["p0"]["reason"]
    assert "featureless" in reason and "is --scale right?" in reason, reason
