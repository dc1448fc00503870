"""SRResCGAN end to end on its own degradation: `realsr degrade --mode dsgan` pairs, the preset
(official G_perceptual init, high-pass RaGAN, value range 255, gradient-difference TV, mixup)
trains and resumes after a kill to the same result. A perceptual GAN recipe does not beat bicubic in
PSNR: the official final SRResCGAN x4 model itself scores 26.32 dB against bicubic's 26.62 dB on
DSGAN-degraded Set5 (docs/methods/srrescgan.md), so the held-out check is that the short run stays
within that kind of distance of bicubic (a broken loss scale or filter would fall far below)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from realsr.cli.main import main
from realsr.images import write_png
from realsr.synthetic import synthetic_scene

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT.parent / "shared" / "data" / "weights" / "srrescgan"

pytestmark = pytest.mark.skipif(not (WEIGHTS / "dsgan_300_G.pth").is_file(), reason="needs ../shared/data weights")


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _val(run: Path) -> dict:
    return [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines() if '"val"' in r][-1]["val"]


@pytest.mark.parametrize("preset, extra_terms", [
    ("srrescgan_x4", set()),
    ("srrescycgan_x4", {"cycle", "lr_gan", "lr_d"}),
    ("srrescycgan_aim2020_x4", {"cycle", "lr_gan", "lr_d", "ssim", "ms_ssim"}),
])
def test_srrescgan_presets_on_dsgan_pairs(tmp_path, preset, extra_terms):
    """Each SRResCGAN-family preset trains, logs its own loss terms, resumes exactly and stays near
    bicubic on held-out pairs of its degradation."""
    for name, seeds in (("train", range(3)), ("val", range(50, 52))):
        src = tmp_path / f"hr_{name}"
        src.mkdir()
        for s in seeds:
            write_png(src / f"s{s}.png", synthetic_scene(160, 160, seed=s))
        assert _run("degrade", src, "-o", tmp_path / name, "--scale", 4, "--mode", "dsgan",
                    "--weights", WEIGHTS / "dsgan_300_G.pth", "--workers", 1) == 0
    from realsr.train.vgg import vgg19_features

    torch.manual_seed(0)  # a stand-in VGG (no torchvision weights here); the layer choice is the test's
    torch.save({f"features.{k}": v for k, v in vgg19_features(4).state_dict().items()}, tmp_path / "vgg.pth")
    run = tmp_path / "run"
    tiny = ["data.batch_size=2", "data.workers=0", "optim.iterations=6", "log.save_every=3", "log.val_every=6",
            "log.every=1", "data.mixup.prob=1.0", f"model.init={WEIGHTS / 'srresdnet_G_perceptual.pth'}",
            f"losses.perceptual.vgg_weights={tmp_path / 'vgg.pth'}", "losses.perceptual.layers={conv1_2: 1.0}"]
    assert _run("train", ROOT / "examples" / f"{preset}.yaml", "-o", run, "--train-data", tmp_path / "train",
                "--val-data", tmp_path / "val", *tiny) == 0
    recs = [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines() if '"losses"' in r]
    assert set(recs[0]["losses"]) >= {"pixel", "perceptual", "tv", "gan", "d"} | extra_terms
    # value range 255: L1 x10 on [0, 255] is hundreds, not a fraction
    assert recs[0]["losses"]["pixel"] > 10
    first = _val(run)
    (run / "checkpoints" / "iter_00000006.pt").unlink()
    assert _run("train", "-o", run, "--resume") == 0
    assert _val(run)["psnr"] == pytest.approx(first["psnr"], abs=1e-6)
    out = tmp_path / "eval"
    assert _run("eval", run / "model.safetensors", tmp_path / "val", "-o", out, "--no-sr", "--no-compare") == 0
    rep = json.loads((out / "eval.json").read_text())
    assert rep["mean"]["psnr"] > rep["baseline"]["mean"]["psnr"] - 0.5, (rep["mean"], rep["baseline"]["mean"])
