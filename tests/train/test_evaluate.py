"""Evaluation: pairing, scale checks, the report, bad pairs, resume, and the published bicubic numbers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realsr.errors import UsageError  # noqa: E402
from realsr.images import read_image, write_png  # noqa: E402
from realsr.resize import imresize  # noqa: E402
from realsr.synthetic import synthetic_scene  # noqa: E402
from realsr.train import evaluate as ev  # noqa: E402
from realsr.train.evaluate import EvalOptions, evaluate, find_pairs, fit_hr  # noqa: E402
from realsr.train.infer import InferOptions  # noqa: E402
from realsr.train.model_files import load_model  # noqa: E402


def _pairs(root, n=3, scale=2, bits=8):
    (root / "LR").mkdir(parents=True)
    (root / "HR").mkdir()
    for i in range(n):
        hr = synthetic_scene(60 + 4 * i, 72, seed=i)
        if bits == 16:
            hr = hr.astype(np.uint16) * 257
        write_png(root / "HR" / f"im{i}.png", hr)
        write_png(root / "LR" / f"im{i}.png", imresize(hr, 1 / scale))
    return root


def test_pairing_by_stem_loose_names_and_dataset_folders(tmp_path):
    lr, hr = tmp_path / "lr", tmp_path / "hr"
    lr.mkdir(), hr.mkdir()
    img = np.zeros((4, 4, 3), np.uint8)
    for name in ("0801x4.png", "b.png", "c_LR.png", "orphan.png"):
        write_png(lr / name, img)
    for name in ("0801.png", "b.png", "c_HR.png", "unused.png"):
        write_png(hr / name, img)
    write_png(hr / ".realsr-tmp-x.png", img)  # a killed run's temporary, and a macOS resource fork:
    write_png(lr / "._b.png", img)  # hidden files are never images
    got = {p.name: (p.lr and p.lr.name, p.hr and p.hr.name) for p in find_pairs(lr, hr)}
    assert got == {"0801x4": ("0801x4.png", "0801.png"), "b": ("b.png", "b.png"), "c_LR": ("c_LR.png", "c_HR.png"),
                   "orphan": ("orphan.png", None), "unused": (None, "unused.png")}  # unpaired on either side: kept
    ds = _pairs(tmp_path / "ds", n=2)
    assert [p.name for p in find_pairs(ds)] == ["im0", "im1"]
    with pytest.raises(Exception, match="pair dataset"):
        find_pairs(lr)


def test_fit_hr_crops_a_little_and_explains_a_lot():
    lr = (10, 12, 3)
    assert fit_hr(np.zeros((40, 48, 3)), lr, 4).shape == (40, 48, 3)
    assert fit_hr(np.zeros((43, 50, 3)), lr, 4).shape == (40, 48, 3)  # modcrop leftovers
    with pytest.raises(ValueError, match="pair is x2 but the model is x4"):
        fit_hr(np.zeros((20, 24, 3)), lr, 4)
    with pytest.raises(ValueError, match="expected 48x40"):
        fit_hr(np.zeros((44, 48, 3)), lr, 4)


def test_report_images_csv_compare_and_bad_pairs(tmp_path):
    ds = _pairs(tmp_path / "ds", n=3)
    (ds / "HR" / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")          # corrupt HR
    write_png(ds / "HR" / "im2.png", synthetic_scene(30, 30, seed=9))        # wrong size
    write_png(ds / "LR" / "lonely.png", synthetic_scene(20, 20, seed=1))     # no HR
    out = tmp_path / "out"
    model = load_model("bicubic", scale=2)
    rep = evaluate(model, find_pairs(ds), out, EvalOptions(infer=InferOptions(tile=24, overlap=8)))
    assert [r["name"] for r in rep["images"]] == ["im0"]
    reasons = {f["name"]: f["reason"] for f in rep["failed"]}
    assert set(reasons) == {"im1", "im2", "lonely"}
    assert "corrupt PNG" in reasons["im1"] or "truncated" in reasons["im1"]
    assert "is not x2 of LR" in reasons["im2"] and "no HR" in reasons["lonely"]
    saved = json.loads((out / "eval.json").read_text())
    assert saved["conventions"]["crop_border"] == 2 and saved["conventions"]["channel"].lower().startswith("y")
    assert set(saved["mean"]) == {"psnr", "ssim"} and saved["baseline"]["images"][0]["name"] == "im0"
    # the bicubic "model" is the baseline, up to float32 rounding
    assert abs(saved["mean"]["psnr"] - saved["baseline"]["mean"]["psnr"]) < 0.01
    rows = (out / "eval.csv").read_text().splitlines()
    assert rows[0] == "name,psnr,ssim,bicubic_psnr,bicubic_ssim" and rows[-1].startswith("mean,")
    assert read_image(out / "SR" / "im0.png").shape == read_image(ds / "HR" / "im0.png").shape
    panel = read_image(out / "compare" / "im0.png")
    assert panel.dtype == np.uint8 and panel.shape[1] > 3 * panel.shape[0] - 40


def test_16_bit_sr_images_and_lpips(tmp_path, shared):
    from realsr.train.lpips import LPIPS

    ds = _pairs(tmp_path / "ds", n=1, bits=16)
    torch.manual_seed(0)
    lp = LPIPS(shared("weights", "lpips", "v0.1", "alex.pth"), random_backbone=True)
    rep = evaluate(load_model("bicubic", scale=2), find_pairs(ds), tmp_path / "o", EvalOptions(compare=False), lpips=lp)
    assert read_image(tmp_path / "o" / "SR" / "im0.png").dtype == np.uint16
    assert 0 <= rep["images"][0]["lpips"] < 1 and "lpips" in rep["baseline"]["mean"]


def test_an_interrupted_run_resumes_and_changed_settings_need_overwrite(tmp_path, monkeypatch):
    """A re-run resumes; one with other settings used to replace the finished report silently: it
    is refused naming the difference, and --overwrite starts over."""
    ds = _pairs(tmp_path / "ds", n=3)
    out = tmp_path / "out"
    model = load_model("bicubic", scale=2)
    calls = []
    resumed = False
    real = ev.evaluate_pair

    class Killed(Exception):
        """Stands in for an interruption (pytest reserves KeyboardInterrupt for itself)."""

    def counting(model, pair, *a, **k):
        calls.append(pair.name)
        if pair.name == "im2" and not resumed:
            raise Killed
        return real(model, pair, *a, **k)

    monkeypatch.setattr(ev, "evaluate_pair", counting)
    with pytest.raises(Killed):
        evaluate(model, find_pairs(ds), out)
    assert json.loads((out / "eval.json").read_text())["counts"]["done"] == 2
    calls.clear()
    resumed = True
    rep = evaluate(model, find_pairs(ds), out)
    assert calls == ["im2"] and rep["counts"] == {"done": 3, "failed": 0}
    calls.clear()
    before = (out / "eval.json").read_bytes()
    with pytest.raises(UsageError, match=r"evaluation made with other settings \(round_y: false -> true\); use --overwrite"):
        evaluate(model, find_pairs(ds), out, EvalOptions(round_y=True))
    assert not calls and (out / "eval.json").read_bytes() == before
    evaluate(model, find_pairs(ds), out, EvalOptions(round_y=True), overwrite=True)
    assert calls == ["im0", "im1", "im2"]


def test_a_run_killed_in_its_first_pair_resumes_and_the_model_path_as_typed_does_not_count(tmp_path, monkeypatch):
    """The report is written before the first SR/ image (a run killed in its first pair was then
    refused as someone else's files); a model given by another path to the same file resumes."""
    ds = _pairs(tmp_path / "ds", n=2)
    out = tmp_path / "out"
    model = load_model("bicubic", scale=2)
    real = ev.comparison_panel

    class Killed(Exception):
        pass

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(ev, "comparison_panel", killed)  # after SR/im0.png is written
    with pytest.raises(Killed):
        evaluate(model, find_pairs(ds), out, model_info={"file": "m.safetensors", "sha256": "ab"})
    assert (out / "SR" / "im0.png").exists()
    monkeypatch.setattr(ev, "comparison_panel", real)
    assert evaluate(model, find_pairs(ds), out, model_info={"file": "m.safetensors", "sha256": "ab"})["counts"]["done"] == 2
    calls = []
    monkeypatch.setattr(ev, "evaluate_pair", lambda *a, **k: calls.append(1))
    rep = evaluate(model, find_pairs(ds), out, model_info={"file": "./m.safetensors", "sha256": "ab"})
    assert not calls and rep["counts"]["done"] == 2
    with pytest.raises(UsageError, match="model.sha256"):
        evaluate(model, find_pairs(ds), out, model_info={"file": "m.safetensors", "sha256": "cd"})


def test_files_no_report_of_ours_made_are_not_replaced(tmp_path):
    """An eval.json that is not a realsr report, or images in SR/ or compare/ with no report beside
    them, were overwritten without --overwrite."""
    ds = _pairs(tmp_path / "ds", n=2)
    model = load_model("bicubic", scale=2)
    for name, make in (("notes", lambda o: (o / "eval.json").write_text('{"my": "notes"}')),
                       ("csv", lambda o: (o / "eval.csv").write_text("a,b\n")),
                       ("sr", lambda o: (o / "SR").mkdir() or shutil.copy(ds / "HR" / "im0.png", o / "SR" / "im0.png"))):
        out = tmp_path / name
        out.mkdir()
        make(out)
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        with pytest.raises(UsageError, match="no realsr evaluation report .eval.json."):
            evaluate(model, find_pairs(ds), out)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before, name
        assert evaluate(model, find_pairs(ds), out, overwrite=True)["counts"]["done"] == 2


@pytest.mark.realdata
@pytest.mark.parametrize("scale,want", [(2, (33.66, 0.9299)), (3, (30.39, 0.8682)), (4, (28.42, 0.8104))])
def test_set5_bicubic_baseline_matches_the_published_numbers(tmp_path, shared, scale, want):
    d = shared("sr_benchmarks", "Set5", f"x{scale}")
    rep = evaluate(load_model("bicubic", scale=scale), find_pairs(d / "LR", d / "HR"), tmp_path,
                   EvalOptions(save_sr=False, compare=False))
    for mean in (rep["mean"], rep["baseline"]["mean"]):
        assert abs(mean["psnr"] - want[0]) <= 0.02 and abs(mean["ssim"] - want[1]) <= 0.001
