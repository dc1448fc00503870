"""Learned degradation (``--mode dsgan``): the DSGAN generator, its official weights, the
degrader contract (sizes, determinism, tiles, replay) and ``realsr degrade --mode dsgan``."""

from __future__ import annotations

import hashlib
from dataclasses import replace
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from realsr.cli.main import main
from realsr.degrade.degrade_pair import degrade_pair, regenerate
from realsr.degrade.learned import LEARNED_MODES, LearnedSpec, load_degrader
from realsr.degrade.realism import noise_sigma
from realsr.errors import UsageError
from realsr.images import from_float, read_image, to_float, write_png
from realsr.resize import imresize, modcrop
from realsr.synthetic import synthetic_scene
from realsr.train.models.dsgan import PARAMETERS, DSGANGenerator, load_dsgan
from realsr.train.weights import load_state


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _entries(out: Path) -> dict[str, dict]:
    return {e["name"]: e for e in json.loads((out / "manifest.json").read_text())["pairs"]}


def _random_weights(path: Path, seed: int) -> Path:
    """A DSGAN state dict in the official layout with random weights (small enough slopes that the
    output is not saturated)."""
    torch.manual_seed(seed)
    net = DSGANGenerator()
    with torch.no_grad():
        for b in net.res_blocks:
            b.conv2.weight.mul_(0.1)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return _random_weights(tmp_path_factory.mktemp("w") / "random_G.pth", 0)


@pytest.fixture(scope="module")
def degrader(weights):
    return load_degrader(LearnedSpec("dsgan", str(weights), 4, "cpu", 0))


@pytest.fixture(scope="module")
def official(shared) -> Path:
    return shared("weights", "srrescgan", "dsgan_300_G.pth")


def test_architecture_size_and_receptive_radius():
    net = DSGANGenerator().eval()
    assert sum(p.numel() for p in net.parameters()) == PARAMETERS == 594_380
    assert net.receptive_radius == 18
    # an input change reaches exactly 18 px: the tile margin is enough
    x = torch.rand(1, 3, 61, 61, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[0, :, 30, 30] += 0.5
    with torch.no_grad():
        d = (net(x2) - net(x)).abs().amax(dim=1)[0]
    rows = torch.nonzero(d.amax(dim=1) > 0).flatten()
    assert rows.min() == 30 - 18 and rows.max() == 30 + 18


@pytest.mark.realdata
def test_official_weights_fit_exactly(official):
    state = load_state(official)
    own = DSGANGenerator().state_dict()
    assert set(state) == set(own)  # no key map needed
    assert all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)
    assert sum(v.numel() for v in state.values()) == PARAMETERS
    net = load_dsgan(official)
    assert len(net.res_blocks) == 8 and not net.training
    assert net.block_input[1].weight.numel() == 1  # one PReLU slope, as nn.PReLU()


def test_untested_scale_warned_once_not_per_worker(weights, caplog, monkeypatch):
    """The checking load warns about x2 (also with a known digest); worker processes re-load a
    checked spec, silently."""
    from realsr.degrade import learned

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    spec = LearnedSpec("dsgan", str(weights), 2, "cpu", 0, sha256=digest)
    with caplog.at_level("WARNING", logger="realsr"):
        monkeypatch.setattr(learned, "_LOADED", {})  # a fresh process each
        load_degrader(spec)
        assert sum("untested" in r.getMessage() for r in caplog.records) == 1
        caplog.clear()
        monkeypatch.setattr(learned, "_LOADED", {})
        load_degrader(replace(spec, checked=True))
        monkeypatch.setattr(learned, "_LOADED", {})
        load_degrader(LearnedSpec("dsgan", str(weights), 4, "cpu", 0))
    assert not [r for r in caplog.records if "untested" in r.getMessage()]


def test_untested_scale_warned_once_by_a_run_with_workers(weights, tmp_path, capfd):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        write_png(src / f"p{i}.png", synthetic_scene(32, 32, seed=i))
    assert main(["-q", "degrade", str(src), "-o", str(tmp_path / "out"), "--mode", "dsgan", "--weights",
                 str(weights), "--device", "cpu", "--scale", "2", "--workers", "2"]) == 0
    assert capfd.readouterr().err.count("degradation is untested") == 1  # the workers' stderr included


def test_sizes_after_modcrop_and_any_dtype(degrader, weights):
    hr = synthetic_scene(37, 53, seed=2)
    h, lr, rec = degrade_pair(hr, "dsgan", 4, seed=5, learned=degrader)
    assert h.shape == (36, 52, 3) and lr.shape == (9, 13, 3) and lr.dtype == np.uint8
    assert rec["mode"] == "dsgan" and rec["kernel"] is None and rec["steps"][0]["op"] == "learned"
    assert rec["learned"] == [{"model": "dsgan", "weights": weights.name,
                               "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}]
    x2 = load_degrader(LearnedSpec("dsgan", str(weights), 2, "cpu", 0))
    assert degrade_pair(hr, "dsgan", 2, seed=5, learned=x2)[1].shape == (18, 26, 3)
    # gray, RGBA and 16-bit HR, as in the other modes
    gray = degrade_pair(hr[..., 1], "dsgan", 4, 0, learned=degrader)[1]
    assert gray.shape == (9, 13, 3)
    rgba = np.dstack([hr, np.full(hr.shape[:2], 9, np.uint8)])
    assert np.array_equal(degrade_pair(rgba, "dsgan", 4, 0, learned=degrader)[1], lr)
    lr16 = degrade_pair(hr.astype(np.uint16) * 257, "dsgan", 4, 0, learned=degrader)[1]
    assert lr16.dtype == np.uint16 and np.abs(lr16 / 257.0 - lr).max() <= 1
    # a tiny HR still gives a 1x1 LR; smaller than the scale is an error
    assert degrade_pair(hr[:4, :4], "dsgan", 4, 0, learned=degrader)[1].shape == (1, 1, 3)
    with pytest.raises(Exception, match="smaller than the scale"):
        degrade_pair(hr[:3, :40], "dsgan", 4, 0, learned=degrader)


def test_deterministic_replayable_and_tiles_change_nothing(degrader, weights, tmp_path):
    hr = synthetic_scene(160, 216, seed=3)
    h, lr, rec = degrade_pair(hr, "dsgan", 4, seed=1, learned=degrader)
    assert np.array_equal(degrade_pair(hr, "dsgan", 4, seed=1, learned=degrader)[1], lr)
    assert np.array_equal(degrade_pair(hr, "dsgan", 4, seed=2, learned=degrader)[1], lr)  # no noise input
    assert np.array_equal(regenerate(h, rec, learned=degrader), lr)
    # tiles of 20 LR px (margin 18) against the whole image, before rounding
    tiled = load_degrader(LearnedSpec("dsgan", str(weights), 4, "cpu", 20))
    x = to_float(h)
    assert np.abs(tiled.degrade(x, 0) - degrader.degrade(x, 0)).max() < 1e-4
    # replay needs the recorded weights
    with pytest.raises(UsageError, match="learned degradation 'dsgan'"):
        regenerate(h, rec)
    other = load_degrader(LearnedSpec("dsgan", str(_random_weights(tmp_path / "other.pth", 1)), 4, "cpu", 0))
    with pytest.raises(UsageError, match="not by"):
        regenerate(h, rec, learned=other)
    with pytest.raises(UsageError, match="needs --weights"):
        degrade_pair(hr, "dsgan", 4, 0)


@pytest.mark.realdata
def test_official_output_is_a_mild_degradation_of_the_bicubic_lr(official, shared):
    hr = modcrop(read_image(shared("sr_benchmarks", "Set5", "x4", "HR", "baby.png")), 4)
    deg = load_degrader(LearnedSpec("dsgan", str(official), 4, "cpu", 0))
    _, lr, _ = degrade_pair(hr, "dsgan", 4, seed=0, learned=deg)
    bic = np.clip(imresize(to_float(hr), 0.25), 0, 1) * 255
    diff = lr.astype(np.float64) - bic
    mad = np.abs(diff).mean()
    assert lr.shape == (128, 128, 3)
    assert 1.0 < mad < 10.0  # measured 5.2 grey levels
    assert np.abs(diff.mean(axis=(0, 1))).max() < 1.5  # mean colour kept (measured within 0.4)
    # it adds noise-like texture: the noise level of the smoothest blocks (0-255) goes up
    # (measured 1.7 / 1.7 / 2.1 -> 2.8 / 4.3 / 4.4)
    before, after = np.mean(noise_sigma(np.round(bic).astype(np.uint8))), np.mean(noise_sigma(lr))
    assert after > 1.5 * before


def test_cli_writes_pairs_manifest_and_resumes(weights, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_png(src / "a.png", synthetic_scene(90, 130, seed=1))
    write_png(src / "b.png", synthetic_scene(75, 102, seed=2))
    out = tmp_path / "out"
    assert _run("degrade", src, "-o", out, "--mode", "dsgan", "--weights", weights, "--device", "cpu",
                "--workers", 1) == 0
    man = json.loads((out / "manifest.json").read_text())
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert man["params"]["mode_params"] == {"weights": weights.name, "weights_sha256": sha}
    e = _entries(out)
    assert sorted(e) == ["a", "b"]
    deg = load_degrader(LearnedSpec("dsgan", str(weights), 4, "cpu", 0))
    for name, v in e.items():
        assert v["status"] == "ok" and v["mode"] == "dsgan"
        assert v["learned"][0]["weights_sha256"] == sha and v["steps"][0]["weights"] == weights.name
        hr, lr = read_image(out / "HR" / f"{name}.png"), read_image(out / "LR" / f"{name}.png")
        assert (hr.shape[0], hr.shape[1]) == (4 * lr.shape[0], 4 * lr.shape[1])
        assert v["lr_size"] == [lr.shape[1], lr.shape[0]]
        assert np.array_equal(regenerate(hr, v, learned=deg), lr)
    assert e["b"]["hr_size"] == [100, 72]
    # the same files with two worker processes (one torch thread each)
    out2 = tmp_path / "out2"
    assert _run("degrade", src, "-o", out2, "--mode", "dsgan", "--weights", weights, "--device", "cpu",
                "--workers", 2) == 0
    for n in ("a", "b"):
        assert np.array_equal(read_image(out / "LR" / f"{n}.png"), read_image(out2 / "LR" / f"{n}.png"))
    # a re-run resumes; other weights in the same folder are refused (settings differ)
    assert _run("degrade", src, "-o", out, "--mode", "dsgan", "--weights", weights, "--device", "cpu") == 0
    other = _random_weights(tmp_path / "other.pth", 2)
    assert _run("degrade", src, "-o", out, "--mode", "dsgan", "--weights", other, "--device", "cpu") == 2


def test_cli_bad_weights_and_inputs(weights, tmp_path, capsys, odd_formats):
    src = odd_formats(tmp_path / "src")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    x = tmp_path / "x"
    capsys.readouterr()
    for args, what in (((), "needs --weights"), (("--weights", tmp_path / "missing.pth"), "not found"),
                       (("--weights", corrupt), "cannot read DSGAN weights"),
                       (("--weights", wrong), "not a DSGAN generator"),
                       (("--weights", weights, "--device", "tpu"), "device")):
        assert _run("degrade", src, "-o", x, "--mode", "dsgan", *args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("realsr: error:") and what in err[0], err
    assert _run("degrade", src, "-o", x, "--mode", "bicubic", "--weights", weights) == 2
    assert "only used by --mode dsgan" in capsys.readouterr().err
    assert not x.exists()  # nothing written before the weights were checked
    out = tmp_path / "out"
    assert _run("degrade", src, "-o", out, "--mode", "dsgan", "--weights", weights, "--device", "cpu",
                "--workers", 1) == 1  # the corrupt image fails, the rest go on
    e = _entries(out)
    assert {n for n, v in e.items() if v["status"] == "ok"} == {"ok", "gray", "rgba", "deep"}
    assert e["corrupt"]["status"] == "failed"
    assert read_image(out / "LR" / "deep.png").dtype == np.uint16
    assert read_image(out / "LR" / "rgba.png").shape == (16, 16, 3)
    deg = load_degrader(LearnedSpec("dsgan", str(weights), 4, "cpu", 0))
    rgb = from_float(deg.degrade(to_float(synthetic_scene(64, 64, seed=5)), 0), np.uint8)  # rgba.png without alpha
    assert np.array_equal(read_image(out / "LR" / "rgba.png"), rgb)


def test_learned_modes_and_torch_free_import():
    assert "dsgan" in LEARNED_MODES
    code = "import sys, realsr.degrade, realsr.degrade.learned; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
