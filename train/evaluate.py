"""``realsr eval``: super-resolve LR images with a model and score them against HR with the SR
benchmark protocol (:mod:`realsr.train.metrics`), next to the bicubic baseline on the same images.

Outputs (ARCHITECTURE.md "Evaluation"): ``OUT/eval.json`` ({"conventions", "mean", "images",
"baseline": {"mean", "images"}, "failed", ...}), ``OUT/eval.csv``, ``OUT/SR/<name>.png`` (bit depth
of the LR input) and ``OUT/compare/<name>.png`` (LR | bicubic | SR | HR). ``eval.json`` is rewritten
after every image, so an interrupted run resumes where it stopped (same model and settings only).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realsr.atomic import remove_stale_temporaries, write_bytes_atomic, write_json_atomic
from realsr.errors import RealsrError, UsageError, item_failure
from realsr.images import folder_images, from_float, read_image, to_float, write_png
from realsr.manifest import (check_inputs_outside, check_unrecorded, file_sha256, read_json_mapping,
                             settings_differences)
from realsr.resize import imresize

from . import metrics
from .compare import comparison_panel, most_different_box
from .infer import InferOptions, upscale_image
from .models import SRNet

log = logging.getLogger("realsr.eval")

EVAL_JSON, EVAL_CSV = "eval.json", "eval.csv"


@dataclass(frozen=True)
class Pair:
    """One LR image and its HR reference. ``problem`` says why the pair cannot be used (no HR or no
    LR of this name, several files of one name); every reader reports such a pair as failed or
    skipped, never drops it silently."""

    name: str
    lr: Path | None
    hr: Path | None
    problem: str | None = None


#: the image files directly in a folder, sorted, hidden files left out (realsr.images.folder_images)
image_files = folder_images


def _loose(stem: str) -> str:
    """Stem with LR/HR markers and a trailing scale tag removed (``0801x4`` -> ``0801``,
    ``img_001_SRF_4_LR`` -> ``img_001_srf_4``), for pairing folders named by different conventions."""
    s = stem.lower()
    s = re.sub(r"[_\-.]?(lr|hr|lq|gt)$", "", s)
    return re.sub(r"[_\-.]?x\d+$", "", s)


def find_pairs(lr_dir: str | os.PathLike, hr_dir: str | os.PathLike | None = None) -> list[Pair]:
    """Pairs by stem between ``lr_dir`` and ``hr_dir``, sorted by name; with ``hr_dir`` None,
    ``lr_dir`` is a pair dataset (``LR/`` and ``HR/`` inside). Stems that do not match exactly are
    matched after dropping LR/HR markers and scale tags. An LR image without HR gives ``hr=None``, an
    HR image no LR image matched gives ``lr=None`` (named by its own stem), and several files of one
    name on a side (``a.png``, ``a.jpg``) give one pair; each of these has its ``problem`` set."""
    lr_dir = Path(lr_dir)
    if hr_dir is None:
        if not (lr_dir / "LR").is_dir() or not (lr_dir / "HR").is_dir():
            raise UsageError("not a pair dataset folder (it needs LR/ and HR/ inside)", lr_dir)
        lr_dir, hr_dir = lr_dir / "LR", lr_dir / "HR"
    hr_dir = Path(hr_dir)
    for d in (lr_dir, hr_dir):
        if not d.is_dir():
            raise UsageError("not a folder", d)
    lrs = image_files(lr_dir)
    if not lrs:
        raise UsageError("no images found", lr_dir)
    hrs = image_files(hr_dir)
    by_stem: dict[str, list[Path]] = {}
    for p in hrs:
        by_stem.setdefault(p.stem, []).append(p)
    loose: dict[str, str | None] = {}
    for stem in by_stem:
        k = _loose(stem)
        loose[k] = None if k in loose else stem  # ambiguous loose names match nothing
    lr_by_stem: dict[str, list[Path]] = {}
    for p in lrs:
        lr_by_stem.setdefault(p.stem, []).append(p)

    def several(files: list[Path], side: str) -> str:
        return f"several {side} files with this name: " + ", ".join(f.name for f in files)

    pairs, used = [], set()
    for stem, lr_files in lr_by_stem.items():
        hr_stem = stem if stem in by_stem else loose.get(_loose(stem))
        hr_files = by_stem.get(hr_stem, []) if hr_stem is not None else []
        used.add(hr_stem)
        problem = (several(lr_files, "LR") if len(lr_files) > 1 else "no HR image with this name" if not hr_files
                   else several(hr_files, "HR") if len(hr_files) > 1 else None)
        pairs.append(Pair(stem, lr_files[0], hr_files[0] if hr_files else None, problem))
    for stem, hr_files in by_stem.items():
        if stem not in used:
            name = stem if stem not in lr_by_stem else f"{stem} (HR)"
            pairs.append(Pair(name, None, hr_files[0], "no LR image with this name" if len(hr_files) == 1
                              else several(hr_files, "HR")))
    return sorted(pairs, key=lambda p: p.name)


def fit_hr(hr: np.ndarray, lr_shape: tuple[int, ...], scale: int, expected_by: str = "the model") -> np.ndarray:
    """``hr`` cropped (top-left anchored, like ``modcrop``) to exactly ``scale`` x the LR size, when it
    is at most ``scale - 1`` pixels larger; :class:`ValueError` saying what is off otherwise."""
    h, w = lr_shape[:2]
    H, W = hr.shape[:2]
    if (H, W) == (h * scale, w * scale):
        return hr
    if h * scale <= H < (h + 1) * scale and w * scale <= W < (w + 1) * scale:
        return hr[: h * scale, : w * scale]
    hint = ""
    if H % h == 0 and W % w == 0 and H // h == W // w:
        hint = f": the pair is x{H // h} but {expected_by} is x{scale}"
    raise ValueError(f"HR {W}x{H} is not x{scale} of LR {w}x{h} (expected {w * scale}x{h * scale}){hint}")


@dataclass(frozen=True)
class EvalOptions:
    """How to score: ``crop_border`` (None: the scale), ``y_channel``, ``round_y`` (MATLAB's uint8 Y),
    what to write (SR images, comparison crops of ``compare_size`` HR px)."""

    infer: InferOptions = field(default_factory=InferOptions)
    crop_border: int | None = None
    y_channel: bool = True
    round_y: bool = False
    save_sr: bool = True
    compare: bool = True
    compare_size: int = 160
    #: multi-branch models (D2C-SR): score every branch and write ``branches/<name>.png``
    branches: bool = False


#: sha256 of a model file (realsr.manifest.file_sha256)
file_digest = file_sha256


def _scores(sr: np.ndarray, hr: np.ndarray, border: int, opts: EvalOptions, lpips: Any) -> dict[str, float]:
    out = {"psnr": metrics.psnr(sr, hr, border, opts.y_channel, opts.round_y),
           "ssim": metrics.ssim(sr, hr, border, opts.y_channel, opts.round_y)}
    if lpips is not None:
        import torch

        t = [torch.from_numpy(np.ascontiguousarray(to_float(a).transpose(2, 0, 1)))[None] for a in (sr, hr)]
        dev = next(lpips.parameters()).device
        with torch.no_grad():
            out["lpips"] = float(lpips(t[0].to(dev), t[1].to(dev), normalize=True)[0])
    return out


def evaluate_pair(model: SRNet, pair: Pair, out_dir: Path, opts: EvalOptions, lpips: Any = None) -> tuple[dict, dict]:
    """Score one pair: (model record, bicubic record), each ``{"name", "psnr", "ssim"[, "lpips"]}``.
    Writes the SR image and the comparison crop. Raises RealsrError / ValueError for a bad pair."""
    if pair.problem:
        raise ValueError(pair.problem)
    s = model.scale
    lr = read_image(pair.lr)
    hr = fit_hr(read_image(pair.hr), lr.shape, s)
    border = s if opts.crop_border is None else opts.crop_border
    if 2 * border >= min(hr.shape[:2]):
        raise ValueError(f"image too small for crop border {border}")
    sr_f = upscale_image(model, lr, opts.infer)
    # MATLAB imresize on the integer image (rounded after each pass), as the published baselines
    bic_f = to_float(imresize(lr, s, method="bicubic"))
    sr, bic = from_float(sr_f, hr.dtype), from_float(bic_f, hr.dtype)
    rec = {"name": pair.name, **_scores(sr, hr, border, opts, lpips)}
    base = {"name": pair.name, **_scores(bic, hr, border, opts, lpips)}
    if opts.save_sr:
        write_png(out_dir / "SR" / f"{pair.name}.png", from_float(sr_f, lr.dtype))
    if opts.compare:
        write_png(out_dir / "compare" / f"{pair.name}.png",
                  comparison_panel(lr, bic_f, sr_f, hr, s, opts.compare_size))
    if opts.branches and getattr(model, "branch_names", None):
        rec["branches"] = _branch_scores(model, lr, hr, sr_f, border, opts, out_dir / "branches" / f"{pair.name}.png")
    return rec, base


def _branch_scores(model: SRNet, lr: np.ndarray, hr: np.ndarray, sr_f: np.ndarray, border: int,
                   opts: EvalOptions, picture: Path) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of every branch of a multi-branch model (``model.branch_names``,
    ``model.outputting``), and a picture: top row the branch outputs, bottom row their per-pixel
    fusion weights (black 0, white 1), on the ``compare_size`` crop where the fused output differs
    most from the HR."""
    from .compare import _label

    outs, scores = [], {}
    for b in model.branch_names:
        with model.outputting(b):
            o = upscale_image(model, lr, opts.infer)
        outs.append(o)
        q = from_float(o, hr.dtype)
        scores[b] = {"psnr": metrics.psnr(q, hr, border, opts.y_channel, opts.round_y),
                     "ssim": metrics.ssim(q, hr, border, opts.y_channel, opts.round_y)}
    with model.outputting("weights"):
        w = upscale_image(model, lr, opts.infer)  # (H, W, 4): the fusion weights
    top, left, side = most_different_box(sr_f, to_float(hr), opts.compare_size, model.scale)

    def crop(a: np.ndarray) -> np.ndarray:
        return np.floor(np.clip(a[top:top + side, left:left + side], 0, 1) * 255 + 0.5).astype(np.uint8)

    row1 = [_label(crop(o), f"branch {b} {scores[b]['psnr']:.2f} dB") for b, o in zip(model.branch_names, outs)]
    row2 = [_label(np.repeat(crop(w[..., k:k + 1]), 3, 2), f"weight {b} (mean {w[..., k].mean():.2f})")
            for k, b in enumerate(model.branch_names)]
    gap = np.full((row1[0].shape[0], 4, 3), 255, np.uint8)
    rows = [np.concatenate([x for p in r for x in (p, gap)][:-1], axis=1) for r in (row1, row2)]
    write_png(picture, np.concatenate([rows[0], np.full((4, rows[0].shape[1], 3), 255, np.uint8), rows[1]], axis=0))
    return scores


def _mean(records: list[dict]) -> dict[str, Any]:
    keys = [k for k in ("psnr", "ssim", "lpips") if records and all(k in r for r in records)]
    out: dict[str, Any] = {}
    if records and all("branches" in r for r in records):
        out["branches"] = {b: _mean([r["branches"][b] for r in records]) for b in records[0]["branches"]}
    for k in keys:
        vals = [r[k] for r in records]
        # an identical image gives inf PSNR; the mean is then inf too, which JSON cannot hold
        out[k] = float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else None
    return out


def _json_safe(records: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in records]


def _fingerprint(pair: Pair) -> list[Any]:
    """What identifies a pair's files for resuming: their resolved paths, sizes and modification
    times (ns); a re-made or other dataset under the same names is scored afresh."""
    out: list[Any] = []
    for f in (pair.lr, pair.hr):
        try:
            st = f.stat() if f is not None else None
        except OSError:
            st = None
        out += [str(f.resolve()) if f is not None else None, st.st_size if st else None, st.st_mtime_ns if st else None]
    return out


def write_reports(out_dir: Path, report: dict[str, Any]) -> None:
    """eval.json and eval.csv (one row per image, then the mean)."""
    write_json_atomic(out_dir / EVAL_JSON, report)
    buf = io.StringIO()
    cols = [k for k in ("psnr", "ssim", "lpips") if k in report["mean"]]
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["name", *cols, *(f"bicubic_{k}" for k in cols)])
    base = {r["name"]: r for r in report["baseline"]["images"]}

    def fmt(v: Any) -> str:
        return "" if v is None else f"{v:.6f}"

    for r in report["images"]:
        b = base.get(r["name"], {})
        wr.writerow([r["name"], *(fmt(r.get(k)) for k in cols), *(fmt(b.get(k)) for k in cols)])
    wr.writerow(["mean", *(fmt(report["mean"].get(k)) for k in cols),
                 *(fmt(report["baseline"]["mean"].get(k)) for k in cols)])
    # names that are not valid UTF-8 (Python's surrogate escapes) are written back as their own bytes
    write_bytes_atomic(out_dir / EVAL_CSV, buf.getvalue().encode("utf-8", "surrogateescape"))


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Report settings as compared for a resume: the model's path as typed does not count (its
    sha256 identifies it; ``m.pth`` and ``./m.pth`` are one model)."""
    model = settings.get("model")
    return {**settings, "model": {k: v for k, v in model.items() if k != "file"}} if isinstance(model, dict) else settings


def _previous_report(path: Path) -> dict[str, Any] | None:
    """The evaluation report at ``path`` when it is one of ours (a mapping with settings and images),
    else None (absent, unreadable, or someone else's file)."""
    prev = read_json_mapping(path)
    ok = prev is not None and isinstance(prev.get("settings"), dict) and isinstance(prev.get("images"), list)
    return prev if ok else None


def evaluate(model: SRNet, pairs: list[Pair], out_dir: str | os.PathLike, opts: EvalOptions = EvalOptions(),
             lpips: Any = None, model_info: dict[str, Any] | None = None, overwrite: bool = False,
             progress: Callable[[Pair], None] | None = None) -> dict[str, Any]:
    """Evaluate every pair (a failing pair is recorded under "failed" and the rest go on); returns and
    writes the report. ``model_info`` (file, digest ...) goes into the report and decides, with the
    settings, whether a previous report in ``out_dir`` can be resumed; one made with other settings
    is refused unless ``overwrite`` (:class:`UsageError`), and so are files in ``out_dir`` that no
    report of ours made (an ``eval.json`` of another kind, images in ``SR/`` ...). An input image
    lying in a folder the run writes (``SR/``, ``compare/``, ``branches/``) is refused."""
    out_dir = Path(out_dir)
    check_inputs_outside(out_dir, [f for p in pairs for f in (p.lr, p.hr)], ["SR", "compare", "branches"])
    out_dir.mkdir(parents=True, exist_ok=True)
    if remove_stale_temporaries(out_dir):
        log.info("removed temporary files left by an interrupted run")
    border = model.scale if opts.crop_border is None else opts.crop_border
    settings = {"model": model_info or {"arch": model.arch, "arch_args": model.arch_args},
                "scale": model.scale, "ensemble": opts.infer.ensemble, "precision": opts.infer.precision,
                "tile": opts.infer.tile, "overlap": opts.infer.overlap, "lpips": lpips is not None,
                **{k: v for k, v in asdict(opts).items() if k not in ("infer",)}}
    inputs = {p.name: _fingerprint(p) for p in pairs}
    done: dict[str, tuple[dict, dict]] = {}
    prev = _previous_report(out_dir / EVAL_JSON)
    # files that no report of ours accounts for (someone's eval.json or SR/ images) are not replaced
    check_unrecorded(out_dir, overwrite, prev is not None, ("SR", "compare", "branches"), (EVAL_JSON, EVAL_CSV),
                     what=f"realsr evaluation report ({EVAL_JSON})")
    if prev is not None and not overwrite:
        if _comparable(prev["settings"]) != _comparable(settings):
            raise UsageError("the output folder holds an evaluation made with other settings ("
                             f"{settings_differences(_comparable(prev['settings']), _comparable(settings))}); "
                             "use --overwrite or another -o", out_dir)
        try:
            pb = {r["name"]: r for r in prev["baseline"]["images"]}
            seen = prev.get("inputs") or {}  # a pair is reused only for the same files, unchanged
            done = {r["name"]: (r, pb[r["name"]]) for r in prev["images"]
                    if r["name"] in pb and seen.get(r["name"]) == inputs.get(r["name"])}
        except (KeyError, TypeError):
            done = {}
    images, baseline, failed = [], [], []

    def report() -> dict[str, Any]:
        return {"conventions": metrics.conventions(border, opts.y_channel, opts.round_y) | {"lpips": "alex v0.1, RGB [-1, 1], no crop" if lpips is not None else None},
                "settings": settings,
                "mean": _mean(images), "images": _json_safe(images),
                "baseline": {"name": "bicubic (MATLAB imresize)", "mean": _mean(baseline), "images": _json_safe(baseline)},
                "failed": failed, "counts": {"done": len(images), "failed": len(failed)},
                "inputs": {r["name"]: inputs.get(r["name"]) for r in images}}

    if prev is None or overwrite:  # the record exists before any SR/ or compare/ file: a run killed
        write_reports(out_dir, report())  # in its first pair resumes without --overwrite
    for pair in pairs:
        if progress:
            progress(pair)
        if pair.name in done and (not opts.save_sr or (out_dir / "SR" / f"{pair.name}.png").is_file()):
            rec, base = done[pair.name]
        else:
            try:
                rec, base = evaluate_pair(model, pair, out_dir, opts, lpips)
            except (RealsrError, ValueError, MemoryError, OSError) as e:
                failure = item_failure(e)
                if failure is None:
                    raise  # disk full, no permission: the run cannot go on
                reason, where = failure
                log.warning("%s: %s", pair.name, reason)
                failed.append({"name": pair.name, "reason": reason, "file": str(where or pair.hr or pair.lr)})
                continue
        images.append(rec)
        baseline.append(base)
        write_reports(out_dir, report())
    final = report()
    write_reports(out_dir, final)
    return final
