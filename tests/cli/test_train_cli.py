"""`realsr train` end to end: degrade -> train -> eval beats bicubic; resume, overrides, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from realsr.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def test_short_training_beats_bicubic_on_held_out_pairs(degraded, tmp_path):
    train, val = degraded
    run = tmp_path / "run"
    assert _run("train", ROOT / "examples" / "tiny_cpu.yaml", "-o", run, "--train-data", train, "--val-data", val,
                "optim.iterations=400", "log.val_every=400", "log.save_every=200") == 0
    for name in ("config.yaml", "log.jsonl", "model.safetensors", "model_best.safetensors", "curves.png"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["iterations"] == 400
    out = tmp_path / "eval"
    assert _run("eval", run / "model.safetensors", val, "-o", out, "--no-compare") == 0
    report = json.loads((out / "eval.json").read_text())
    sr, bic = report["mean"]["psnr"], report["baseline"]["mean"]["psnr"]
    assert sr > bic + 0.3, (sr, bic)


def test_resume_and_refusals(degraded, tmp_path, capsys):
    train, _ = degraded
    cfg = ROOT / "examples" / "tiny_cpu.yaml"
    run = tmp_path / "run"
    small = ["optim.iterations=4", "log.save_every=2", "data.batch_size=2", "data.workers=0"]
    assert _run("train", cfg, "-o", run, "--train-data", train, *small) == 0
    capsys.readouterr()
    assert _run("train", cfg, "-o", run, "--train-data", train, *small) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _run("train", "-o", run, "--resume", "optim.iterations=6") == 0
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert max(r["iteration"] for r in recs) == 6
    capsys.readouterr()
    assert _run("train", cfg, "-o", tmp_path / "r2", "--train-data", tmp_path / "nothing") == 2
    assert "training data folder not found" in capsys.readouterr().err
    assert _run("train", cfg, "-o", tmp_path / "r3", "--train-data", train, "optim.iterationz=3") == 2
    assert "optim.iterationz: unknown key" in capsys.readouterr().err
    assert _run("train", cfg, "-o", tmp_path / "r4", "--train-data", train, "data.batch_size=two") == 2
    assert "data.batch_size: expected int" in capsys.readouterr().err
    assert _run("train", cfg, "-o", tmp_path / "r5", "--train-data", train, "scale=2", "data.patch_size=32") == 2
    assert "scale mismatch" in capsys.readouterr().err
    assert _run("train", "-o", tmp_path / "r6", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_takes_path_overrides_and_refuses_a_config_file(degraded, tmp_path, capsys):
    train, val = degraded
    run = tmp_path / "run"
    small = ["optim.iterations=2", "data.batch_size=2", "data.workers=0"]
    assert _run("train", ROOT / "examples" / "tiny_cpu.yaml", "-o", run, "--train-data", train, *small) == 0
    assert _run("train", "-o", run, "--resume", f"data.val={val}", "optim.iterations=3") == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["val"] == str(val)
    capsys.readouterr()
    assert _run("train", ROOT / "examples" / "tiny_cpu.yaml", "-o", run, "--resume") == 2
    assert "give changes as key=value" in capsys.readouterr().err
