"""Samsung-SLSI-MSL NTIRE 2020 end to end (docs/methods/samsung.md): a PSNR RCAN on the classic
degradation (rcan_x4.yaml + data.degradation), the two GAN presets started from it (standard and
relativistic D, tiny overrides) train, resume after a kill to the same result and beat bicubic on
held-out pairs of their training degradation, and `realsr fuse` fuses their outputs (scores in
fuse.json, also above bicubic); its bad inputs stop with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from realsr.cli.main import main
from realsr.images import read_image, write_png

ROOT = Path(__file__).resolve().parents[2]

# the classic degradation narrowed to the one of the `degraded` fixture's held-out pairs
DEG = "data.degradation={mode: classic, params: {sigma: [1.2, 1.4], methods: [bicubic], noise: [none]}}"
SMALL_RCAN = "model.args={num_feat: 16, num_group: 1, num_block: 2, reduction: 4}"
PSNR = [SMALL_RCAN, DEG, "data.patch_size=64", "data.batch_size=8", "data.workers=0", "optim.iterations=400",
        "optim.generator.lr=3e-3", "optim.schedule={type: cosine, eta_min: 0.05, warmup: 20}", "optim.ema=0.9",
        "data.val_crop=128", "log.val_every=400", "log.save_every=400", "log.every=50"]
GAN = [SMALL_RCAN, DEG, "discriminator.args={num_in_ch: 3, num_feat: 8, input_size: 128}", "data.batch_size=2",
       "data.workers=0", "optim.iterations=6", "log.save_every=3", "log.val_every=6", "log.every=1",
       "losses.perceptual.layers={conv1_2: 1.0}", "data.val_crop=128"]


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _val(run: Path) -> dict:
    return [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines() if '"val"' in r][-1]["val"]


@pytest.fixture(scope="module")
def stage(degraded, tmp_path_factory):
    """``stage(kind)``: the run folder and eval folder of step 1 (``psnr``) or of a GAN preset
    (``gan``, ``ragan``), trained once per module (the GAN runs start from the PSNR model)."""
    train, val = degraded
    root = tmp_path_factory.mktemp("samsung")
    done: dict[str, tuple[Path, Path]] = {}
    torch.manual_seed(0)  # a stand-in VGG (no torchvision weights here); the layer choice is the test's
    from realsr.train.vgg import vgg19_features

    torch.save({f"features.{k}": v for k, v in vgg19_features(4).state_dict().items()}, root / "vgg.pth")

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in done:
            run, ev = root / kind, root / f"eval_{kind}"
            if kind == "psnr":
                args = ["train", ROOT / "examples" / "rcan_x4.yaml", *PSNR]
            else:
                init = get("psnr")[0] / "model.safetensors"
                args = ["train", ROOT / "examples" / f"samsung_rcan_x4_{kind}.yaml", *GAN,
                        f"model.init={init}", f"losses.perceptual.vgg_weights={root / 'vgg.pth'}"]
            assert _run(*args, "-o", run, "--train-data", train / "HR", "--val-data", val) == 0
            assert _run("eval", run / "model.safetensors", val, "-o", ev, "--no-compare") == 0
            done[kind] = (run, ev)
        return done[kind]

    return get


@pytest.mark.parametrize("kind", ["gan", "ragan"])
def test_samsung_gan_preset_trains_and_resumes(stage, kind):
    run, ev = stage(kind)
    cfg = (run / "config.yaml").read_text()
    assert f"kind: {'vanilla' if kind == 'gan' else 'ragan'}" in cfg and "mode: classic" in cfg
    recs = [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines() if '"losses"' in r]
    assert set(recs[0]["losses"]) >= {"pixel", "perceptual", "gan", "d"}
    first = _val(run)
    (run / "checkpoints" / "iter_00000006.pt").unlink()  # a kill after iteration 3
    assert _run("train", "-o", run, "--resume") == 0
    assert _val(run)["psnr"] == pytest.approx(first["psnr"], abs=1e-9)
    rep = json.loads((ev / "eval.json").read_text())
    # 6 GAN steps from the PSNR model (+0.40 dB over bicubic): still beats bicubic on the held-out pairs
    assert rep["mean"]["psnr"] > rep["baseline"]["mean"]["psnr"] + 0.15, (rep["mean"], rep["baseline"]["mean"])


def test_psnr_stage_beats_bicubic(stage):
    rep = json.loads((stage("psnr")[1] / "eval.json").read_text())
    assert rep["mean"]["psnr"] > rep["baseline"]["mean"]["psnr"] + 0.15, (rep["mean"], rep["baseline"]["mean"])


def test_fuse_two_gans_on_held_out_pairs(stage, degraded, tmp_path, capsys):
    _, val = degraded
    a, b = stage("gan")[1] / "SR", stage("ragan")[1] / "SR"
    out = tmp_path / "fused"
    capsys.readouterr()
    assert _run("fuse", a, b, "-o", out, "--hr", val / "HR") == 0
    assert "fused: psnr" in capsys.readouterr().err
    rep = json.loads((out / "fuse.json").read_text())
    names = sorted(p.stem for p in (val / "LR").iterdir())
    assert [r["name"] for r in rep["images"]] == names
    m = rep["mean"]
    # bright synthetic scenes: the beta regime (the average), which scores at least the worse input
    assert all(not r["dark"] and r["weights"] == [0.5, 0.5] for r in rep["images"])
    assert m["fused"]["psnr"] >= min(m["input1"]["psnr"], m["input2"]["psnr"]) - 1e-6
    bicubic = json.loads((stage("gan")[1] / "eval.json").read_text())["baseline"]["mean"]["psnr"]
    assert m["fused"]["psnr"] > bicubic + 0.15, (m, bicubic)
    fa, fb = (read_image(d / f"{names[0]}.png").astype(float) for d in (a, b))
    fo = read_image(out / f"{names[0]}.png").astype(float)
    assert np.abs(fo - (fa + fb) / 2).max() <= 0.5 + 1e-9
    # --gamma above every median: the alpha regime (alpha 1 = the standard GAN's output)
    out2 = tmp_path / "fused_dark"
    assert _run("fuse", a, b, "-o", out2, "--gamma", 255) == 0
    assert (read_image(out2 / f"{names[0]}.png") == read_image(a / f"{names[0]}.png")).all()
    # the LR inputs as the luminance reference give the same decisions here
    assert _run("fuse", a, b, "-o", tmp_path / "f3", "--reference", val / "LR") == 0
    rep3 = json.loads((tmp_path / "f3" / "fuse.json").read_text())
    assert rep3["rule"]["median_of"] == "reference"
    assert [r["dark"] for r in rep3["images"]] == [r["dark"] for r in rep["images"]]


def test_samsung_preset_needs_its_weight_files(degraded, tmp_path, capsys):
    train, val = degraded
    for kind in ("gan", "ragan"):
        capsys.readouterr()
        assert _run("train", ROOT / "examples" / f"samsung_rcan_x4_{kind}.yaml", "-o", tmp_path / kind,
                    "--train-data", train / "HR") == 2
        err = capsys.readouterr().err
        assert err.startswith("realsr: error:") and "RCAN_CLASSIC_PSNR_X4_REQUIRED" in err and "Traceback" not in err
        assert not (tmp_path / kind).exists()


# ------------------------------------------------------------------- realsr fuse on tiny folders


def _folder(path: Path, images: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        write_png(path / f"{name}.png", img)
    return path


def _flat(v: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


@pytest.fixture
def two(tmp_path) -> tuple[Path, Path]:
    a = _folder(tmp_path / "A", {"dark": _flat(20), "bright": _flat(200)})
    b = _folder(tmp_path / "B", {"dark": _flat(60), "bright": _flat(100)})
    return a, b


def test_fuse_cli_rule_on_tiny_folders(two, tmp_path):
    a, b = two
    out = tmp_path / "out"
    assert _run("fuse", a, b, "-o", out, "--alpha", 0.75, "--beta", 0.25, "--gamma", 64) == 0
    # median Y (studio) of the mean: dark 40/255 grey -> 16 + 219 * 40/255 = 50.35 < 64 (alpha);
    # bright 150/255 -> 144.8 >= 64 (beta)
    assert (read_image(out / "dark.png") == round(0.75 * 20 + 0.25 * 60)).all()  # 30
    assert (read_image(out / "bright.png") == round(0.25 * 200 + 0.75 * 100)).all()  # 125
    rep = json.loads((out / "fuse.json").read_text())
    by = {r["name"]: r for r in rep["images"]}
    assert by["dark"]["dark"] and not by["bright"]["dark"]
    assert by["dark"]["median_y"] == pytest.approx(16 + (65.481 + 128.553 + 24.966) * 40 / 255)
    assert rep["counts"] == {"fused": 2, "dark": 1}
    # three inputs, per-input weights. Dark image: Y of input 1 (grey 20) is 33.2, Y of the mean of the
    # three (grey 26.7) is 38.9, so with gamma 36 --median-of first takes alpha and mean takes beta
    c = _folder(tmp_path / "C", {"dark": _flat(0), "bright": _flat(0)})
    w = ["--alpha", "0.5,0.5,0", "--beta", "0.2,0.3,0.5", "--gamma", 36]
    assert _run("fuse", a, b, c, "-o", tmp_path / "first", *w, "--median-of", "first") == 0
    assert (read_image(tmp_path / "first" / "dark.png") == 40).all()  # 0.5 * 20 + 0.5 * 60
    assert (read_image(tmp_path / "first" / "bright.png") == 70).all()  # 0.2 * 200 + 0.3 * 100
    assert _run("fuse", a, b, c, "-o", tmp_path / "mean", *w) == 0
    assert (read_image(tmp_path / "mean" / "dark.png") == 22).all()  # 0.2 * 20 + 0.3 * 60
    # --luma full: Y = grey level itself; the dark mean (40) is then below 45, the studio Y (50.35) is not
    assert _run("fuse", a, b, "-o", tmp_path / "full", "--gamma", 45, "--luma", "full") == 0
    assert (read_image(tmp_path / "full" / "dark.png") == 20).all()  # alpha 1: input 1
    assert _run("fuse", a, b, "-o", tmp_path / "studio", "--gamma", 45) == 0
    assert (read_image(tmp_path / "studio" / "dark.png") == 40).all()  # beta 0.5: the average


def test_fuse_cli_bad_inputs(two, tmp_path, capsys):
    a, b = two

    def fails(*args, match: str) -> None:
        capsys.readouterr()
        assert _run("fuse", *args) == 2
        err = capsys.readouterr().err
        assert match in err.strip().splitlines()[-1] and "Traceback" not in err, err
        # one line, except click's own usage errors (usage line, hint, then the error)
        assert len(err.strip().splitlines()) == 1 or err.startswith("Usage:"), err

    out = tmp_path / "out"
    fails(a, "-o", out, match="at least 2 input folders")
    fails(a, tmp_path / "nope", "-o", out, match="input 2: not a folder")
    fails(a, _folder(tmp_path / "empty", {}), "-o", out, match="no images found")
    fails(a, _folder(tmp_path / "B1", {"dark": _flat(1)}), "-o", out, match="input 2 lacks 1 of the 2 images of input 1: bright")
    fails(a, _folder(tmp_path / "B3", {"dark": _flat(1), "bright": _flat(1), "x": _flat(1)}), "-o", out,
          match="input 2 has 1 images that input 1 lacks: x")
    fails(a, _folder(tmp_path / "Bs", {"dark": _flat(1, 8, 9), "bright": _flat(1)}), "-o", out,
          match="9x8 but dark.png of input 1 is 8x8")
    fails(a, b, "-o", out, "--alpha", "0.5,0.6", match="alpha: the weights sum to 1.1, not 1")
    fails(a, b, "-o", out, "--beta", "0.2,0.3,0.5", match="beta: 3 weights for 2 images")
    fails(a, b, "-o", out, "--alpha", "x", match="Invalid value for '--alpha'")
    fails(a, b, "-o", a, match="the output folder is input 1")
    hr = _folder(tmp_path / "HRo", {"dark": _flat(1), "bright": _flat(1)})
    fails(a, b, "-o", hr, "--hr", hr, match="the output folder is the HR folder")  # it would overwrite the truth
    fails(a, b, "-o", hr, "--reference", hr, match="the output folder is the reference folder")
    assert (read_image(hr / "dark.png") == 1).all()
    fails(a, b, "-o", out, "--hr", _folder(tmp_path / "H", {"dark": _flat(1, 32, 32), "bright": _flat(1)}),
          "--crop-border", 1, match="HR 32x32 does not fit the SR size 8x8")
    fails(a, b, "-o", out, "--hr", a, match="image bright (8x8) is too small for crop border 4")
    fails(a, b, "-o", out, "--reference", _folder(tmp_path / "R", {"dark": _flat(1)}),
          match="reference folder lacks 1 of the 2 images: bright")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dark.png").write_bytes(b"not a png")
    write_png(tmp_path / "bad" / "bright.png", _flat(1))
    fails(a, tmp_path / "bad", "-o", out, match="dark.png")
    assert not out.exists()  # nothing written before the inputs check out
    assert _run("fuse", a, b, "-o", out) == 0
    fails(a, b, "-o", out, match="already holds a fusion")
    assert _run("fuse", a, b, "-o", out, "--overwrite") == 0
    # someone's own image of an output's name, with no fuse.json: it was replaced without --overwrite
    mine = tmp_path / "mine"
    write_png(mine / "dark.png", _flat(7))
    fails(a, b, "-o", mine, match="already holds 1 image(s) this fusion would replace (dark) and no fuse.json")
    assert (read_image(mine / "dark.png") == 7).all()
    assert _run("fuse", a, b, "-o", mine, "--overwrite") == 0 and (read_image(mine / "dark.png") == 20).all()
    # a run stopped by a damaged input (past its header) leaves its first images and no fuse.json:
    # the re-run needs no --overwrite
    stop, dam = tmp_path / "stop", tmp_path / "damaged"
    write_png(dam / "bright.png", _flat(100))
    write_png(dam / "dark.png", _flat(60))
    good = (dam / "dark.png").read_bytes()
    (dam / "dark.png").write_bytes(good[:-20])
    write_png(stop / "zzz.png", _flat(5))  # an earlier interrupted fusion's output, listed in its marker
    (stop / ".fuse-running.json").write_text('{"names": ["zzz"]}')
    assert _run("fuse", a, dam, "-o", stop) != 0
    assert (stop / "bright.png").exists() and not (stop / "fuse.json").exists()
    assert json.loads((stop / ".fuse-running.json").read_text())["names"] == ["bright", "dark", "zzz"]  # kept
    (dam / "dark.png").write_bytes(good)
    assert _run("fuse", a, dam, "-o", stop) == 0
    assert (stop / "fuse.json").exists() and not list(stop.glob(".fuse-running*"))
