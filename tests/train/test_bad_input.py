"""Bad and edge-case input for train, eval, upscale and subimages: tiny images, unpaired files, an
output folder that holds the inputs, temporaries of a killed run, NaN settings, missing devices."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realsr.cli.main import _resume_hint, main  # noqa: E402
from realsr.errors import UsageError  # noqa: E402
from realsr.images import write_png  # noqa: E402
from realsr.resize import imresize  # noqa: E402
from realsr.synthetic import synthetic_scene  # noqa: E402
from realsr.train.config import from_dict  # noqa: E402
from realsr.train.data import load_items, load_val  # noqa: E402
from realsr.train.evaluate import EvalOptions, evaluate, find_pairs  # noqa: E402
from realsr.train.infer import InferOptions, resolve_device  # noqa: E402
from realsr.train.model_files import load_model  # noqa: E402
from realsr.train.models import build  # noqa: E402
from realsr.train.subimages import extract_subimages  # noqa: E402
from realsr.train.trainer import Trainer  # noqa: E402
from realsr.train.upscale import upscale_files  # noqa: E402
from realsr.train.weights import load_error_detail  # noqa: E402

TMP = ".realsr-tmp-killed.png"


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


def _garbage_temporary(folder: Path, age_s: float = 7200.0) -> Path:
    """A half-written file a killed run left, ``age_s`` seconds old."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / TMP
    p.write_bytes(b"\x89PNG\r\n\x1a\n half written")
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 image of any size, smooth enough to score."""
    return synthetic_scene(max(h, 16), max(w, 16), seed=seed)[:h, :w]


def _pair(root: Path, name: str, h: int, w: int, scale: int = 4, seed: int = 0) -> None:
    """LR ``h`` x ``w`` and its x``scale`` HR, LR = MATLAB bicubic of HR."""
    hr = _img(h * scale, w * scale, seed)
    write_png(root / "HR" / f"{name}.png", hr)
    write_png(root / "LR" / f"{name}.png", imresize(hr, 1 / scale))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------ training
def test_validation_pairs_too_small_to_score_are_skipped_not_a_crash(tmp_path, pairs, kit, caplog):
    """A validation pair under 2*scale + 11 HR px (border + SSIM window) used to stop training at
    the first validation, and again at every --resume; it is now left out at the start, with a
    warning. So is an HR image without its LR."""
    val = tmp_path / "val"
    _pair(val, "big", 8, 9)
    _pair(val, "tiny", 4, 30)  # HR 16 px high: 16 - 8 < 11
    write_png(val / "HR" / "lonely.png", synthetic_scene(32, 32, seed=3))
    caplog.set_level("WARNING", logger="realsr")
    got = load_val(val, 4)
    assert [p.name for p in got] == ["big"]
    assert "tiny: HR 120x16 is too small to score" in caplog.text
    assert "lonely: no LR image with this name" in caplog.text
    only_tiny = tmp_path / "only_tiny"
    _pair(only_tiny, "tiny", 4, 30)
    with pytest.raises(UsageError, match="no usable validation pairs"):
        load_val(only_tiny, 4)

    stale = _garbage_temporary(tmp_path / "run")
    tree = kit.tiny(pairs, data={"val": str(val)}, optim={"iterations": 2}, log={"save_every": 2})
    Trainer(from_dict(tree), tmp_path / "run").run()
    assert not stale.exists()  # a killed run's temporary is cleaned when the run folder is prepared
    recs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["val"]["images"] for r in recs if "val" in r] == [1]
    tree["optim"]["iterations"] = 3
    assert Trainer(from_dict(tree), tmp_path / "run", resume=True).run()["iteration"] == 3


def test_an_hr_image_without_its_lr_is_reported_like_the_reverse(tmp_path, kit, caplog):
    ds = kit.block_pairs(tmp_path / "ds", n=2)
    write_png(ds / "HR" / "hr_only.png", np.zeros((96, 96, 3), np.uint8))
    write_png(ds / "LR" / "lr_only.png", np.zeros((24, 24, 3), np.uint8))
    caplog.set_level("WARNING", logger="realsr")
    assert [i.name for i in load_items(ds, 4, 32, True, True)] == ["p0", "p1"]
    assert "hr_only: no LR image with this name" in caplog.text and "lr_only: no HR image with this name" in caplog.text
    rep = evaluate(load_model("bicubic", scale=4), find_pairs(ds), tmp_path / "ev", EvalOptions(save_sr=False, compare=False))
    assert {f["name"]: f["reason"] for f in rep["failed"]} == {"lr_only": "no HR image with this name",
                                                               "hr_only": "no LR image with this name"}
    man = extract_subimages(ds, tmp_path / "sub", 4, crop=48, step=48)
    assert man.pairs["hr_only"]["status"] == "failed" and "no LR image" in man.pairs["hr_only"]["reason"]


def test_patch_too_small_for_the_architecture_is_refused_at_start(tmp_path, pairs, kit):
    tree = kit.tiny(pairs, model={"arch": "srrescgan", "args": {"depth": 1, "features": 8}},
                    data={"patch_size": 4}, losses={"value_range": 255})
    with pytest.raises(UsageError, match="1-px LR crops; srrescgan needs at least 2 px"):
        Trainer(from_dict(tree), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ eval / upscale
def test_srrescgan_on_a_one_pixel_image_fails_that_image_only(tmp_path):
    """SRResCGAN's noise estimate reflect-pads its x4 output by 7 px: a 1-px LR side used to raise
    from torch and abort the whole batch with an internal error."""
    torch.manual_seed(0)
    net = build("srrescgan", scale=4, depth=1, features=8).eval()
    assert net.min_input_size == 2 and build("srrescgan", scale=2, depth=1, features=8).min_input_size == 4
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "line.png", _img(1, 9, 1))
    write_png(src / "ok.png", _img(6, 9, 2))
    res = upscale_files(net, [(p.stem, str(p)) for p in sorted(src.iterdir())], tmp_path / "out", InferOptions(tile=0))
    assert res["done"] == ["ok"] and [f["name"] for f in res["failed"]] == ["line"]
    assert "9x1 px is too small for srrescgan (at least 2 px per side)" in res["failed"][0]["reason"]
    ds = tmp_path / "ds"
    _pair(ds, "line", 1, 9)
    _pair(ds, "ok", 6, 7)
    rep = evaluate(net, find_pairs(ds), tmp_path / "ev", EvalOptions(save_sr=False, compare=False, crop_border=0))
    assert rep["counts"] == {"done": 1, "failed": 1} and "too small" in rep["failed"][0]["reason"]


def test_upscale_and_eval_refuse_an_output_folder_holding_their_inputs(tmp_path, capsys):
    """`upscale X -o X` took the inputs for finished outputs and with --overwrite replaced them; eval
    with OUT/SR being the LR folder overwrote the LR images. Both are refused, nothing is written."""
    x = tmp_path / "x"
    x.mkdir()
    write_png(x / "a.png", _img(12, 12, 1))
    before = _snapshot(x)
    for extra in ([], ["--overwrite"]):
        capsys.readouterr()
        assert _run("upscale", "bicubic", x, "-o", x, *extra) == 2
        err = capsys.readouterr().err
        assert "lies in the output folder, where this run writes its results" in err, err
    assert _snapshot(x) == before
    out = tmp_path / "ev"
    lr_dir, hr_dir = out / "SR", tmp_path / "hr"
    hr = synthetic_scene(24, 24, seed=4)
    write_png(hr_dir / "p.png", hr)
    write_png(lr_dir / "p.png", imresize(hr, 0.25))
    before = _snapshot(lr_dir)
    capsys.readouterr()
    assert _run("eval", "bicubic", lr_dir, hr_dir, "-o", out, "--overwrite") == 2
    assert "lies in the output's SR/ folder" in capsys.readouterr().err
    assert _snapshot(lr_dir) == before and not (out / "eval.json").exists()


def test_temporaries_of_a_killed_run_are_not_images(tmp_path, capsys):
    """A half-written `.realsr-tmp-*` file (or a macOS `._name` fork) in an input folder used to be
    read as an image and fail; old ones in the output folder are deleted at the start."""
    ds = tmp_path / "ds"
    _pair(ds, "p", 6, 6)
    _garbage_temporary(ds / "LR", age_s=0)  # young: it may belong to a running job; still never read
    (ds / "HR" / "._p.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    out = tmp_path / "out"
    old = _garbage_temporary(out / "SR")
    assert _run("eval", "bicubic", ds, "-o", out) == 0
    assert json.loads((out / "eval.json").read_text())["counts"] == {"done": 1, "failed": 0}
    assert not old.exists()
    up = tmp_path / "up"
    old = _garbage_temporary(up)
    assert _run("upscale", "bicubic", ds / "LR", "-o", up) == 0
    assert sorted(p.name for p in up.iterdir()) == ["p.png", "upscale.json"]  # the old temporary is gone
    sub = tmp_path / "sub"
    old = _garbage_temporary(sub / "HR")
    assert _run("subimages", ds, "-o", sub, "--scale", 4, "--crop", 16, "--step", 8) == 0
    assert not old.exists() and all(not p.name.startswith(".") for p in (sub / "HR").iterdir())


def test_eval_where_every_pair_fails_says_so(tmp_path, capsys):
    ds = tmp_path / "ds"
    _pair(ds, "p", 6, 6)
    assert _run("eval", "bicubic", ds, "-o", tmp_path / "o", "--scale", 2) == 1
    err = capsys.readouterr().err
    assert "no pair could be scored" in err and "bicubic x2:  |" not in err


# ---------------------------------------------------------------------------------- subimages
def test_subimages_refuses_its_own_dataset_and_names_another_stage(tmp_path, kit, capsys):
    ds = kit.block_pairs(tmp_path / "ds", n=2)
    (ds / "manifest.json").unlink()
    before = {d: _snapshot(ds / d) for d in ("HR", "LR")}
    assert _run("subimages", ds, "-o", ds, "--scale", 4, "--crop", 48, "--step", 48) == 2
    assert "lies in the output's LR/ folder" in capsys.readouterr().err
    assert {d: _snapshot(ds / d) for d in ("HR", "LR")} == before and not (ds / "manifest.json").exists()

    other = tmp_path / "degraded"  # a pair dataset another stage made
    (other / "HR").mkdir(parents=True)
    (other / "manifest.json").write_text(json.dumps({"format": "realsr-pairs", "version": 1, "scale": 4,
                                                     "stage": "degrade", "params": {}, "pairs": []}))
    assert _run("subimages", ds, "-o", other, "--scale", 4, "--crop", 48, "--step", 48) == 2
    assert "made by 'degrade', not by 'subimages'" in capsys.readouterr().err

    sub = tmp_path / "sub"
    assert _run("subimages", ds, "-o", sub, "--scale", 4, "--crop", 48, "--step", 48) == 0
    assert len(list((sub / "HR").iterdir())) == 4 + 6  # p0 96x96: 2x2 crops; p1 96x112: 2x3 (one flush right)
    capsys.readouterr()
    assert _run("subimages", ds, "-o", sub, "--scale", 4, "--crop", 96, "--step", 96) == 2
    assert "other settings (params.crop: 48 -> 96" in capsys.readouterr().err
    assert _run("subimages", ds, "-o", sub, "--scale", 4, "--crop", 96, "--step", 96, "--overwrite") == 0
    names = sorted(p.stem for p in (sub / "HR").iterdir())
    assert names == ["p0_s001", "p1_s001", "p1_s002"]  # the 48-px crops of the old settings are gone
    assert [e["name"] for e in json.loads((sub / "manifest.json").read_text())["pairs"]] == names


# ------------------------------------------------------------------------------------ messages
def test_config_numbers_must_be_finite_and_betas_in_range(pairs, kit):
    for override, msg in (("optim.generator.lr=.nan", "optim.generator.lr must be a finite number, got nan"),
                          ("losses.pixel.weight=.inf", "losses.pixel.weight must be a finite number, got inf"),
                          ("optim.generator.betas=[0.9, 2]", r"optim.generator.betas must be two numbers in \[0, 1\)")):
        with pytest.raises(UsageError, match=msg):
            from_dict(kit.tiny(pairs), [override])


def test_devices_that_are_not_here_are_usage_errors():
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        with pytest.raises(UsageError, match="MPS .* is not available here"):
            resolve_device("mps")
    if torch.cuda.device_count() < 8:
        with pytest.raises(UsageError, match="cuda:7"):
            resolve_device("cuda:7")
    with pytest.raises(UsageError, match=r"unknown device 'tpu9' \(auto, cpu, cuda, cuda:N or mps\)"):
        resolve_device("tpu9")
    assert resolve_device("cpu").type == "cpu"


def test_weights_that_do_not_fit_say_which_tensors(tmp_path, pairs, kit):
    """The message used to stop at PyTorch's header line "Error(s) in loading state_dict for ..."."""
    tree = kit.tiny(pairs, optim={"iterations": 1}, log={"save_every": 1})
    Trainer(from_dict(tree), tmp_path / "run").run()
    tree["model"]["args"]["nf"] = 16
    with pytest.raises(UsageError, match=r"does not fit this configuration \(.*size mismatch for conv_first.weight"):
        Trainer(from_dict(tree), tmp_path / "run", resume=True)
    assert load_error_detail(KeyError("discriminator")) == "missing 'discriminator'"
    many = RuntimeError("Error(s) in loading state_dict for X:\n\t" + "\n\t".join(f"line {i}" for i in range(6)))
    assert load_error_detail(many) == "line 0; line 1; line 2; 3 more"


def test_resume_with_changed_training_settings_warns(tmp_path, pairs, kit, caplog):
    tree = kit.tiny(pairs, optim={"iterations": 2}, log={"save_every": 2})
    Trainer(from_dict(tree), tmp_path / "run").run()
    caplog.set_level("WARNING", logger="realsr")
    tree["optim"]["iterations"] = 3  # what a resume is for: no warning
    Trainer(from_dict(tree), tmp_path / "run", resume=True)
    assert "changed settings" not in caplog.text
    tree["seed"], tree["data"]["batch_size"] = 9, 8
    Trainer(from_dict(tree), tmp_path / "run", resume=True)
    assert "resumed with changed settings (data.batch_size: 4 -> 8; seed: 3 -> 9)" in caplog.text


def test_an_interrupted_train_is_told_to_resume(tmp_path, pairs, kit, monkeypatch, capsys):
    assert "--resume" in _resume_hint(["-q", "train", "cfg.yaml", "-o", "run"])
    assert "re-run the same command" in _resume_hint(["--debug", "eval", "bicubic", "ds"])
    assert "re-run the same command" in _resume_hint(["train", "-o", "run", "--resume"])

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupted)
    cfg = tmp_path / "cfg.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(kit.tiny(pairs)))
    assert _run("train", cfg, "-o", tmp_path / "run") == 130
    assert "continue from the last checkpoint with: realsr train -o RUN --resume" in capsys.readouterr().err


def test_only_eval_asks_for_lr_dir_and_hr_dir(tmp_path, kit, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    write_png(flat / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert _run("eval", "bicubic", flat, "-o", tmp_path / "o") == 2
    assert "give LR_DIR and HR_DIR" in capsys.readouterr().err
    assert _run("subimages", flat, "-o", tmp_path / "s", "--scale", 4) == 2
    err = capsys.readouterr().err
    assert "not a pair dataset folder (it needs LR/ and HR/ inside)" in err and "LR_DIR" not in err


# ------------------------------------------------------------------- second review (same session)
def test_eval_resumes_only_for_the_same_files(tmp_path):
    """A re-run into the same OUT with another dataset of the same names reused the old scores."""
    a, b = tmp_path / "a", tmp_path / "b"
    _pair(a, "p", 8, 8, seed=1)
    _pair(b, "p", 8, 8, seed=2)
    model, opts = load_model("bicubic", scale=4), EvalOptions(compare=False)
    first = evaluate(model, find_pairs(a), tmp_path / "o", opts)["mean"]["psnr"]
    other = evaluate(model, find_pairs(b), tmp_path / "o", opts)["mean"]["psnr"]
    assert other == evaluate(model, find_pairs(b), tmp_path / "fresh", opts)["mean"]["psnr"] != first


def test_a_name_that_is_not_utf8_is_scored_and_written(tmp_path):
    ds = tmp_path / "ds"
    _pair(ds, "ok", 8, 8)
    odd = os.fsdecode(b"bad\xffname")
    _pair(ds, odd, 8, 8, seed=3)
    rep = evaluate(load_model("bicubic", scale=4), find_pairs(ds), tmp_path / "o", EvalOptions(compare=False))
    assert rep["counts"] == {"done": 2, "failed": 0}
    assert b"bad\xffname" in (tmp_path / "o" / "eval.csv").read_bytes() and (tmp_path / "o" / "SR" / f"{odd}.png").is_file()


def test_a_model_with_non_finite_output_fails_its_images(tmp_path):
    """NaN weights gave black images reported as done (clamp turns NaN into 0)."""
    net = build("rrdbnet", scale=4, nf=8, nb=1, gc=4).eval()
    with torch.no_grad():
        net.conv_last.bias.fill_(float("nan"))
    ds = tmp_path / "ds"
    _pair(ds, "p", 8, 8)
    res = upscale_files(net, [("p", str(ds / "LR" / "p.png"))], tmp_path / "up")
    assert res["done"] == [] and "not finite" in res["failed"][0]["reason"] and not (tmp_path / "up" / "p.png").exists()
    rep = evaluate(net, find_pairs(ds), tmp_path / "ev", EvalOptions(compare=False))
    assert rep["counts"] == {"done": 0, "failed": 1} and "not finite" in rep["failed"][0]["reason"]


def test_out_of_memory_on_one_image_fails_that_image(tmp_path, monkeypatch):
    from realsr.train import infer, upscale

    assert infer._is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert infer._is_oom(MemoryError()) and not infer._is_oom(RuntimeError("shape mismatch"))
    src = tmp_path / "in"
    for name in ("big", "small"):
        write_png(src / f"{name}.png", _img(8, 8))
    real = upscale.read_image

    def read(path, **kw):
        if Path(path).stem == "big":
            raise MemoryError
        return real(path, **kw)

    monkeypatch.setattr(upscale, "read_image", read)
    res = upscale_files(load_model("bicubic", scale=2), [(p.stem, str(p)) for p in sorted(src.iterdir())], tmp_path / "o")
    assert res["done"] == ["small"] and res["failed"][0] == {"name": "big", "reason": "out of memory", "file": str(src / "big.png")}


def test_several_files_of_one_name_are_reported_not_mixed(tmp_path, kit, caplog):
    ds = kit.block_pairs(tmp_path / "ds", n=2)
    write_png(ds / "LR" / "p0.jpg", np.zeros((24, 24, 3), np.uint8))
    pairs = {p.name: p for p in find_pairs(ds)}
    assert pairs["p0"].problem == "several LR files with this name: p0.jpg, p0.png" and pairs["p1"].problem is None
    caplog.set_level("WARNING", logger="realsr")
    assert [i.name for i in load_items(ds, 4, 32, True, True)] == ["p1"]
    rep = evaluate(load_model("bicubic", scale=4), find_pairs(ds), tmp_path / "ev", EvalOptions(compare=False))
    assert [f["name"] for f in rep["failed"]] == ["p0"] and not (tmp_path / "ev" / "SR" / "p0.png").exists()
    write_png(ds / "HR" / "p1.tif", np.zeros((96, 112, 3), np.uint8))
    assert find_pairs(ds)[1].problem == "several HR files with this name: p1.png, p1.tif"


def test_subimages_refuses_a_source_named_like_a_crop(tmp_path, kit):
    ds = kit.block_pairs(tmp_path / "ds", n=1)
    write_png(ds / "HR" / "p0_s001.png", np.zeros((96, 96, 3), np.uint8))
    with pytest.raises(UsageError, match="'p0_s001' has the name of a crop of the pair 'p0'"):
        extract_subimages(ds, tmp_path / "sub", 4, crop=48, step=48)
    assert not (tmp_path / "sub").exists()


def test_a_name_too_long_for_the_file_system_fails_that_item(tmp_path, kit):
    """Crop names add 5 characters: a 248-character stem stopped subimages with an error naming a
    temporary file; a folder where an output should be stopped upscale."""
    ds = kit.block_pairs(tmp_path / "ds", n=1)
    long = "x" * 248
    for sub, size in (("HR", 96), ("LR", 24)):
        write_png(ds / sub / f"{long}.png", np.zeros((size, size, 3), np.uint8))
    man = extract_subimages(ds, tmp_path / "sub", 4, crop=48, step=48)
    assert man.pairs[long]["status"] == "failed" and "File name too long" in man.pairs[long]["reason"]
    assert ".realsr-tmp-" not in man.pairs[long]["reason"]
    assert sum(e["status"] == "ok" for e in man.pairs.values()) == 4  # p0's 2x2 crops
    assert sorted(p.name for p in (tmp_path / "sub" / "HR").iterdir()) == [f"p0_s00{k}.png" for k in range(1, 5)]
    out = tmp_path / "up"
    (out / "p0.png").mkdir(parents=True)
    res = upscale_files(load_model("bicubic", scale=4), [(n, str(ds / "LR" / f"{n}.png")) for n in ("p0", long)], out)
    assert res["done"] == [long] and [f["name"] for f in res["failed"]] == ["p0"]
    assert res["failed"][0]["reason"] == "Is a directory" and res["failed"][0]["file"] == str(out / "p0.png")


def test_more_config_values_refused_before_any_work(tmp_path, pairs, kit):
    for override, msg in (("seed=-1", r"seed must be an integer in \[0, 2\^63\)"),
                          ("seed=99999999999999999999", "seed must be an integer"),
                          ("optim.generator.weight_decay=-1", "weight_decay must be >= 0"),
                          ("optim.schedule.gamma=-0.5", "gamma must be > 0"),
                          ("data.val_crop=19", r"data.val_crop \(19\) must be a multiple of the scale")):
        with pytest.raises(UsageError, match=msg):
            from_dict(kit.tiny(pairs), [override])
    for args in ({"nf": "abc"}, {"nf": 0}, {"nf": 2.5}, {"nb": -2}):
        with pytest.raises(UsageError, match="bad arguments for architecture 'rrdbnet'"):
            Trainer(from_dict(kit.tiny(pairs, model={"args": {"nb": 1, "gc": 4, **args}})), tmp_path / "r")
    with pytest.raises(UsageError, match="num_block may not be negative"):
        build("edsr", num_block=-1)
    with pytest.raises(UsageError, match="lies inside the data.train folder"):
        Trainer(from_dict(kit.tiny(pairs)), pairs / "HR")
    assert not (pairs / "HR" / "config.yaml").exists() and not (tmp_path / "r").exists()


def test_a_dangling_link_is_reported_not_skipped(tmp_path):
    ds = tmp_path / "ds"
    _pair(ds, "p", 8, 8)
    (ds / "LR" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    rep = evaluate(load_model("bicubic", scale=4), find_pairs(ds), tmp_path / "o", EvalOptions(compare=False))
    assert [f["name"] for f in rep["failed"]] == ["gone"]


def test_resume_without_a_readable_config_uses_the_checkpoints_copy(tmp_path, pairs, kit, capsys):
    import yaml

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(kit.tiny(pairs, optim={"iterations": 2}, log={"save_every": 2})))
    run = tmp_path / "run"
    assert _run("train", cfg, "-o", run) == 0
    for damage in ("delete", "truncate"):
        if damage == "delete":
            (run / "config.yaml").unlink()
        else:
            (run / "config.yaml").write_text("name: t\nmodel: {arch: rrdbnet, args: {nf: 8")
        n = 3 if damage == "delete" else 4
        assert _run("train", "-o", run, "--resume", f"optim.iterations={n}") == 0
        assert "using the config saved in" in capsys.readouterr().err
        assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["iterations"] == n
    (run / "config.yaml").unlink()
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    assert _run("train", "-o", run, "--resume") == 2
    assert "no readable config.yaml and no readable checkpoint" in capsys.readouterr().err


def test_non_finite_validation_output_stops_training_with_the_image_named(tmp_path, pairs, kit):
    from realsr.train.trainer import TrainingError

    t = Trainer(from_dict(kit.tiny(pairs, data={"val": str(pairs)})), tmp_path / "run")
    with torch.no_grad():
        t.inference_model().conv_last.bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="output on validation image p0 is not finite at iteration 0"):
        t.validate()


def test_small_wording_and_device_restrictions():
    from realsr.devices import resolve_device as resolve
    from realsr.train.evaluate import fit_hr

    with pytest.raises(ValueError, match="the pair is x4 but --scale is x2"):
        fit_hr(np.zeros((40, 40, 3)), (10, 10, 3), 2, "--scale")
    with pytest.raises(UsageError, match="device 'mps': use auto or one of cpu, cuda here"):
        resolve("mps", allowed=("cpu", "cuda"))
    assert resolve("auto", auto=()).type == "cpu"
