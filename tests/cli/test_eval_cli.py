"""`realsr eval` and `realsr upscale` end to end: outputs, exit codes, bad input, 16-bit and alpha."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from realsr.cli.main import main  # noqa: E402
from realsr.images import read_image, write_png  # noqa: E402
from realsr.resize import imresize  # noqa: E402
from realsr.synthetic import synthetic_scene  # noqa: E402


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


@pytest.fixture
def dataset(tmp_path):
    for sub in ("LR", "HR"):
        (tmp_path / "ds" / sub).mkdir(parents=True)
    for i in range(2):
        hr = synthetic_scene(64, 80, seed=i)
        write_png(tmp_path / "ds" / "HR" / f"p{i}.png", hr)
        write_png(tmp_path / "ds" / "LR" / f"p{i}.png", imresize(hr, 0.25))
    return tmp_path / "ds"


def test_eval_writes_the_report_and_flags_a_bad_pair(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run("eval", "bicubic", dataset, "-o", out, "--tile", "12", "--overlap", "4") == 0
    rep = json.loads((out / "eval.json").read_text())
    assert rep["counts"] == {"done": 2, "failed": 0} and rep["settings"]["scale"] == 4
    assert (out / "eval.csv").is_file() and len(list((out / "SR").iterdir())) == 2
    assert len(list((out / "compare").iterdir())) == 2
    assert "bicubic x4: psnr" in capsys.readouterr().err
    (dataset / "HR" / "p1.png").write_bytes(b"not an image")
    assert _run("eval", "bicubic", dataset / "LR", dataset / "HR", "-o", tmp_path / "o2", "--no-sr", "--no-compare") == 1
    rep = json.loads((tmp_path / "o2" / "eval.json").read_text())
    assert [f["name"] for f in rep["failed"]] == ["p1"] and rep["counts"]["done"] == 1
    assert not (tmp_path / "o2" / "SR").exists()


def test_eval_usage_errors_are_one_line(dataset, tmp_path, capsys):
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return (print, ("never",))

    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    cases = [(["eval", tmp_path / "evil.pth", dataset], "full unpickling is refused"),
             (["eval", "bicubic", dataset, "--arch", "nope"], "unknown architecture"),
             (["eval", "bicubic", dataset, "--lpips-lin", tmp_path / "evil.pth"], "needs both"),
             (["eval", "bicubic", dataset, "--tile", "16", "--overlap", "8"], "under half the tile"),
             (["eval", "bicubic", dataset / "LR"], "pair dataset")]
    for args, msg in cases:
        capsys.readouterr()
        assert _run(*args, "-o", tmp_path / "o") == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("realsr: error:") and msg in err[0], err


def test_eval_model_of_the_wrong_scale_fails_every_pair_with_the_reason(dataset, tmp_path):
    assert _run("eval", "bicubic", dataset, "--scale", "2", "-o", tmp_path / "o") == 1
    rep = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert all("pair is x4 but the model is x2" in f["reason"] for f in rep["failed"])


def test_upscale_keeps_bit_depth_and_alpha_and_skips_done_files(tmp_path, bomb_png):
    src = tmp_path / "in"
    src.mkdir()
    rgba = np.dstack([synthetic_scene(20, 24, seed=1), np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (20, 1))])
    write_png(src / "rgba.png", rgba)
    gray16 = (synthetic_scene(16, 18, seed=2)[:, :, 1].astype(np.uint16) * 257)
    import cv2

    cv2.imwrite(str(src / "gray16.png"), gray16)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    (src / "bomb.png").write_bytes(bomb_png)  # over the decoder's pixel limit: skipped like the broken one
    out = tmp_path / "out"
    assert _run("upscale", "bicubic", "--scale", "2", src, "-o", out) == 1  # two broken inputs, the rest done
    assert not (out / "bomb.png").exists()
    a = read_image(out / "rgba.png", keep_alpha=True)
    assert a.shape == (40, 48, 4) and a.dtype == np.uint8
    assert np.abs(a[:, :, 3].astype(int) - np.clip(imresize(rgba[:, :, 3], 2), 0, 255)).max() <= 1
    g = read_image(out / "gray16.png")
    assert g.shape == (32, 36, 3) and g.dtype == np.uint16
    before = (out / "rgba.png").stat().st_mtime_ns
    (src / "broken.jpg").unlink()
    (src / "bomb.png").unlink()
    assert _run("upscale", "bicubic", "--scale", "2", src / "rgba.png", "-o", out) == 0
    assert (out / "rgba.png").stat().st_mtime_ns == before


def test_a_datasets_own_scale_is_used_and_a_mismatch_stops_before_any_pair(tmp_path, capsys):
    """eval of an x2 dataset with the bicubic model took the default x4 and failed pair by pair (one
    warning each); subimages took another --scale the same way."""
    hr = tmp_path / "hr"
    write_png(hr / "a.png", synthetic_scene(48, 48, seed=3))
    ds = tmp_path / "x2"
    assert _run("degrade", hr, "-o", ds, "--mode", "bicubic", "--scale", "2", "--workers", "1") == 0
    assert _run("eval", "bicubic", ds, "-o", tmp_path / "e", "--no-compare") == 0
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["settings"]["scale"] == 2
    capsys.readouterr()
    assert _run("eval", "bicubic", ds, "-o", tmp_path / "e4", "--scale", "4") == 2
    assert "the dataset is x2 (manifest.json) but the model is x4" in capsys.readouterr().err
    assert not (tmp_path / "e4").exists()
    assert _run("subimages", ds, "-o", tmp_path / "s", "--scale", "4") == 2
    assert "the dataset is x2 (manifest.json) but --scale is x4" in capsys.readouterr().err
    assert _run("subimages", ds, "-o", tmp_path / "s", "--crop", "16", "--step", "16") == 0  # x2 from the manifest


def test_upscale_records_its_settings_and_refuses_other_ones(tmp_path, capsys):
    """A re-run with another scale or model counted the old outputs as finished ("skipped"); files
    of output names with no upscale.json were taken for finished outputs too."""
    src = tmp_path / "in"
    write_png(src / "a.png", synthetic_scene(16, 20, seed=1))
    out = tmp_path / "out"
    assert _run("upscale", "bicubic", "--scale", "2", src, "-o", out) == 0
    rec = json.loads((out / "upscale.json").read_text())["settings"]
    assert rec["scale"] == 2 and rec["model"]["arch"] == "bicubic"
    assert _run("upscale", "bicubic", "--scale", "2", src, "-o", out) == 0  # same settings: resumes
    capsys.readouterr()
    assert _run("upscale", "bicubic", "--scale", "4", src, "-o", out) == 2
    assert "upscaled with other settings (model.arch_args.scale: 2 -> 4; scale: 2 -> 4)" in capsys.readouterr().err
    assert read_image(out / "a.png").shape == (32, 40, 3)
    assert _run("upscale", "bicubic", "--scale", "4", src, "-o", out, "--overwrite") == 0
    assert read_image(out / "a.png").shape == (64, 80, 3)
    # an --overwrite run with other settings killed part-way leaves no old output to pass as finished
    write_png(src / "b.png", synthetic_scene(16, 20, seed=4))
    assert _run("upscale", "bicubic", "--scale", "2", src, "-o", tmp_path / "k") == 0
    import realsr.train.upscale as up

    real, seen = up.upscale_array, []

    def second_fails(*a, **k):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    up.upscale_array = second_fails
    try:
        assert _run("upscale", "bicubic", "--scale", "3", src, "-o", tmp_path / "k", "--overwrite") == 130
    finally:
        up.upscale_array = real
    assert _run("upscale", "bicubic", "--scale", "3", src, "-o", tmp_path / "k") == 0
    assert {p.name: read_image(p).shape[:2] for p in (tmp_path / "k").glob("*.png")} == {"a.png": (48, 60),
                                                                                         "b.png": (48, 60)}
    (src / "b.png").unlink()
    mine = tmp_path / "mine"
    write_png(mine / "a.png", synthetic_scene(17, 17, seed=2))
    assert _run("upscale", "bicubic", "--scale", "2", src, "-o", mine) == 2
    assert "no upscale.json says how they were made" in capsys.readouterr().err
    assert read_image(mine / "a.png").shape == (17, 17, 3)


def test_eval_protocol_options_reach_the_report(dataset, tmp_path):
    out = tmp_path / "o"
    assert _run("eval", "bicubic", dataset, "-o", out, "--rgb", "--round-y", "--crop-border", "3", "--half",
                "--batch", "2", "--tile", "10", "--overlap", "2", "--compare-size", "16", "--no-sr") == 0
    rep = json.loads((out / "eval.json").read_text())
    assert rep["conventions"]["channel"] == "RGB" and rep["conventions"]["crop_border"] == 3
    assert rep["conventions"]["round_y"] is True
    assert rep["settings"]["precision"] == "half" and rep["settings"]["tile"] == 10
    panel = read_image(out / "compare" / "p0.png")
    assert panel.shape[1] == 4 * 16 + 3 * 4
    y = json.loads(((tmp_path / "y") / "eval.json").read_text()) if _run(
        "eval", "bicubic", dataset, "-o", tmp_path / "y", "--no-sr", "--no-compare") == 0 else None
    assert y is not None and y["mean"]["psnr"] != rep["mean"]["psnr"]  # Y and RGB differ
