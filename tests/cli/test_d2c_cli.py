"""D2C-SR end to end: the preset trains (tiny overrides) on `realsr degrade` pairs, resumes after a
kill to the same result, beats bicubic on held-out pairs, and `realsr eval --branches` scores each
branch with the fused output at least as good as the best of them."""

from __future__ import annotations

import json
from pathlib import Path

from realsr.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

TINY = ["model.args={num_feat: 16, num_group: 1, num_block: 1, reduction: 4}", "data.patch_size=48",
        "data.batch_size=8", "data.workers=0", "optim.iterations=200", "optim.generator.lr=3e-3",
        "optim.convergence.lr=3e-3", "optim.schedule={type: cosine, eta_min: 0.05, warmup: 20}",
        "d2c.epoch_iterations=0", "data.val_crop=128", "log.val_every=200", "log.save_every=100", "log.every=20"]


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _val(run: Path) -> dict:
    return [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines() if '"val"' in r][-1]["val"]


def test_d2c_preset_trains_resumes_and_beats_bicubic(degraded, tmp_path, capsys):
    train, val = degraded
    run = tmp_path / "run"
    assert _run("train", ROOT / "examples" / "d2csr_x4.yaml", "-o", run, "--train-data", train, "--val-data", val, *TINY) == 0
    first = _val(run)
    # a kill after iteration 100: the last checkpoint is lost, --resume redoes 100..200 identically
    (run / "checkpoints" / "iter_00000200.pt").unlink()
    assert _run("train", "-o", run, "--resume") == 0
    again = _val(run)
    assert again["psnr"] == first["psnr"]
    branches = [again[f"psnr_branch_{b}"] for b in ("11", "12", "21", "22")]
    assert again["psnr"] >= max(branches), again
    capsys.readouterr()
    out = tmp_path / "eval"
    assert _run("eval", run / "model.safetensors", val, "-o", out, "--branches", "--no-sr") == 0
    assert "branch 22: psnr" in capsys.readouterr().err
    rep = json.loads((out / "eval.json").read_text())
    m = rep["mean"]
    assert m["psnr"] > rep["baseline"]["mean"]["psnr"] + 0.15, (m, rep["baseline"]["mean"])
    assert set(m["branches"]) == {"11", "12", "21", "22"}
    assert m["psnr"] >= max(b["psnr"] for b in m["branches"].values())
    assert sorted(p.name for p in (out / "branches").iterdir()) == sorted(f"{p.stem}.png" for p in (val / "LR").iterdir())
    # --branches on a single-output model is refused
    assert _run("eval", "bicubic", val, "-o", tmp_path / "e2", "--scale", 4, "--branches") == 2
