"""DDNSR end to end through the CLI (issue 7): the preset (tiny overrides, pixel features: no VGG19
weights here) trains on unpaired clean HR and noisy real LR, resumes after a kill to the same
networks, its degradation network makes held-out pairs with `realsr degrade --mode network`, and
the jointly trained SR network beats bicubic on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from realsr.cli.main import main
from realsr.images import write_png
from realsr.resize import imresize
from realsr.synthetic import synthetic_scene
from realsr.train.weights import read_safetensors

ROOT = Path(__file__).resolve().parents[2]


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _data(root: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    hr, src, held = root / "hr", root / "real_lr", root / "held_out"
    for d in (hr, src, held):
        d.mkdir()
    for i in range(4):
        write_png(hr / f"h{i}.png", synthetic_scene(192, 192, seed=100 + i))
        clean = imresize(synthetic_scene(384, 384, seed=200 + i).astype(np.float32) / 255, scale=0.25)
        noisy = np.clip(np.round(clean * 255 + rng.normal(0, 8, clean.shape)), 0, 255).astype(np.uint8)
        write_png(src / f"r{i}.png", noisy)
    for i in range(2):
        write_png(held / f"v{i}.png", synthetic_scene(192, 192, seed=300 + i))
    return hr, src, held


def test_ddnsr_preset_trains_resumes_degrades_and_beats_bicubic(tmp_path):
    hr, src, held = _data(tmp_path)
    run = tmp_path / "run"
    tiny = ["model.args={nf: 16, nb: 1, gc: 8}", "losses.pixel={kind: l2, weight: 1.0}", "losses.perceptual.weight=0",
            "losses.gan.weight=0", "ddnsr.features=pixel", "ddnsr.content_weight=10.0",
            "ddnsr.network={nf: 16, blocks: 2}", "ddnsr.discriminator_args={num_feat: 16, batch_norm: inference}",
            "data.patch_size=32", "data.batch_size=8", "data.workers=0", "optim.iterations=1000",
            "optim.generator.lr=1e-3", "optim.discriminator.lr=1e-3", "optim.schedule.milestones=[500]",
            "log.every=50", "log.save_every=100", "log.val_every=0"]
    assert _run("train", ROOT / "examples" / "ddnsr_x4.yaml", "-o", run, "--train-data", hr,
                "--source-data", src, *tiny) == 0
    recs = [json.loads(r)["losses"] for r in (run / "log.jsonl").read_text().splitlines() if '"losses"' in r]
    assert {"content_down", "adv_down", "cycle_down", "d_down", "pixel", "noise_fake", "noise_source"} <= set(recs[-1])
    first = {k: read_safetensors(run / f)[0] for k, f in (("R", "model.safetensors"), ("Dn", "degradation.safetensors"))}
    (run / "checkpoints" / "iter_00001000.pt").unlink()  # as if killed after iteration 900
    assert _run("train", "-o", run, "--resume") == 0
    for k, f in (("R", "model.safetensors"), ("Dn", "degradation.safetensors")):
        again = read_safetensors(run / f)[0]
        assert all(torch.equal(first[k][n], again[n]) for n in first[k]), k

    pairs = tmp_path / "pairs"
    assert _run("degrade", held, "-o", pairs, "--mode", "network", "--weights", run / "degradation.safetensors",
                "--source", src, "--device", "cpu", "--workers", 1) == 0
    out = tmp_path / "eval"
    assert _run("eval", run / "model.safetensors", pairs, "-o", out, "--no-sr", "--no-compare") == 0
    rep = json.loads((out / "eval.json").read_text())
    print("ddnsr R", rep["mean"]["psnr"], "bicubic", rep["baseline"]["mean"]["psnr"])
    assert rep["mean"]["psnr"] > rep["baseline"]["mean"]["psnr"], (rep["mean"], rep["baseline"]["mean"])
