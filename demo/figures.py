"""What each demo step produced, measured from its output files (and against the known truth).

Every ``*_figures`` function reads one step's outputs under the demo folder ``out`` and returns
``{"items": str, "figure": str, "details": dict}``: the summary table's "items" and "key figure"
cells, and the numbers the report shows. Units: pixels of the image named, PSNR in dB, noise
standard deviations on the 0-255 scale.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from realsr.images import read_image, write_png
from realsr.manifest import counted

from .plan import DemoPlan

Figures = dict[str, Any]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), nd)


def data_figures(out: Path, plan: DemoPlan) -> Figures:
    """Counts of the built-in image sets."""
    from .data import image_sets

    sets = image_sets(plan)
    if not (out / "data").is_dir():
        raise FileNotFoundError(out / "data")
    counts = {k: len(list((out / "data" / k).glob("*.png"))) for k in sets}
    return {"items": f"{sum(counts.values())} images", "figure": "procedural, generated (nothing downloaded)",
            "details": {"counts": counts, "sizes": {k: v[1] for k, v in sets.items()}}}


def simulate_figures(out: Path, plan: DemoPlan) -> Figures:
    """Number of capture pairs and their size."""
    truth = _json(out / "captures" / "truth.json")
    w, h = plan.capture_lr_size
    return {"items": counted(len(truth), "pair"), "figure": f"zoom {plan.scale}, {w}x{h} captures, geometry known",
            "details": {"pairs": sorted(truth)}}


def align_figures(out: Path, plan: DemoPlan) -> Figures:
    """Per pair: status, residual (LR px, measured by align) and the error against the simulator's
    true geometry (LR px, mean over a 4-px grid of the written crop)."""
    from realsr.capture_align import Mapping
    from realsr.capture_align.simulate import Truth

    manifest = _json(out / "aligned" / "manifest.json")
    truth = _json(out / "captures" / "truth.json")
    rows = []
    for e in manifest["pairs"]:
        row = {k: e.get(k) for k in ("name", "status", "reason", "residual_px", "psnr_y", "inliers", "zoom",
                                     "lr_size", "hr_size", "seconds")}
        if e["status"] == "ok" and e["name"] in truth:
            err = Truth.from_json(truth[e["name"]]).residual(Mapping.from_manifest(e), e["lr_box"])
            row["truth_error_px"] = _r(err["mean"])
            row["truth_error_p95_px"] = _r(err["p95"])
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    errs = [r["truth_error_px"] for r in ok if r.get("truth_error_px") is not None]
    figure = (f"error vs truth {np.mean(errs):.3f} px (mean), PSNR-Y {np.mean([r['psnr_y'] for r in ok]):.1f} dB"
              if errs else "no pair aligned")
    return {"items": f"{len(ok)}/{len(rows)} pairs aligned", "figure": figure,
            "details": {"pairs": rows, "mean_truth_error_px": _r(float(np.mean(errs))) if errs else None}}


def true_kernels(out: Path, plan: DemoPlan) -> tuple[np.ndarray, np.ndarray]:
    """The phone camera's true x2 kernel (from the phone step's manifest) and the x4 kernel it
    implies (the x2 kernel applied twice, KernelGAN's analytic rule)."""
    from realsr.degrade.kernel_family import make_kernel
    from realsr.degrade.kernels import analytic_x4

    manifest = _json(out / "phone" / "manifest.json")
    spec = next(e["kernel"][0] for e in manifest["pairs"] if e["status"] == "ok")
    k2 = make_kernel(spec)
    return k2, analytic_x4(k2)


def _patch_noise_std(patch: np.ndarray) -> float:
    """Std (0-255) of a noise patch made zero-mean per channel, averaged over the channels."""
    x = patch.astype(np.float64) * (255.0 / (65535.0 if patch.dtype == np.uint16 else 255.0))
    return float(np.mean([x[..., c].std() for c in range(x.shape[2])]))


def pool_figures(out: Path, plan: DemoPlan) -> Figures:
    """Estimated vs true x4 kernels (shape and distance; bicubic's distance as the yardstick) and the
    noise level of the collected patches vs the true camera noise. Writes ``report/kernels.png``."""
    from realsr.degrade.kernels import bicubic_kernel, kernel_distance, kernel_shape

    pool = _json(out / "pool" / "pool.json")
    _, true4 = true_kernels(out, plan)
    bic4 = bicubic_kernel(plan.scale)
    d_bic = kernel_distance(bic4, true4, plan.scale)
    true_shape = kernel_shape(true4)
    rows, shown = [], []
    for src in pool["sources"]:
        row: dict[str, Any] = {"name": src["name"], "status": src["status"], "kernel_reason": src.get("kernel_reason"),
                               "noise_patches": len(src.get("noise") or [])}
        if src.get("kernel"):
            k = np.load(out / "pool" / src["kernel"]["file"])
            sh = kernel_shape(k)
            row.update(sigma_major=_r(sh.sigma_major, 3), sigma_minor=_r(sh.sigma_minor, 3),
                       distance=_r(kernel_distance(k, true4, plan.scale)), distance_bicubic=_r(d_bic))
            shown.append((src["name"], k, row))
        rows.append(row)
    stds = [_patch_noise_std(read_image(out / "pool" / n["file"])) for n in pool["noise"]]
    if shown:
        write_png(out / "report" / "kernels.png", kernel_figure(true4, bic4, shown, plan))
    n_k = len(shown)
    closer = sum(1 for _, _, r in shown if r["distance"] < d_bic)
    noise_txt = f"noise {np.mean(stds):.2f} (true {plan.phone_noise_sigma:g})" if stds else "no noise patch"
    figure = (f"kernel sigma {np.mean([r['sigma_major'] for _, _, r in shown]):.2f} (true {true_shape.sigma_major:.2f}), "
              f"{closer}/{n_k} closer than bicubic; {noise_txt}") if shown else f"no kernel; {noise_txt}"
    return {"items": f"{counted(n_k, 'kernel')}, {counted(len(stds), 'noise patch', 'noise patches')}", "figure": figure,
            "details": {"sources": rows, "true_sigma": _r(true_shape.sigma_major, 3), "bicubic_distance": _r(d_bic),
                        "closer_than_bicubic": closer, "kernels": n_k, "noise_patches": len(stds),
                        "noise_std": _r(float(np.mean(stds)), 3) if stds else None,
                        "true_noise_std": plan.phone_noise_sigma,
                        "kernelgan_iterations": plan.kernelgan_iterations}}


def _heat(k: np.ndarray, size: int, zoom: int) -> np.ndarray:
    """A kernel as an RGB heat map (``size`` x ``size`` canvas, each pixel ``zoom`` x ``zoom``)."""
    import cv2

    from realsr.degrade.kernels import on_canvas

    c = on_canvas(k, size, 4)
    u8 = np.clip(c / max(float(c.max()), 1e-12) * 255 + 0.5, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[:, :, ::-1]
    return np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)


def kernel_figure(true4: np.ndarray, bic4: np.ndarray, shown: list[tuple[str, np.ndarray, dict]],
                  plan: DemoPlan, size: int = 33, zoom: int = 5) -> np.ndarray:
    """Picture: the true x4 kernel, bicubic's, then every estimated kernel, each labelled with its
    width (sigma, HR px) and its distance to the truth. RGB uint8."""
    from PIL import Image, ImageDraw

    from realsr.degrade.kernels import kernel_distance, kernel_shape

    from .pictures import font

    tiles = [("true (camera)", true4, f"sigma {kernel_shape(true4).sigma_major:.2f}", "")]
    tiles.append(("bicubic", bic4, f"sigma {kernel_shape(bic4).sigma_major:.2f}",
                  f"dist {kernel_distance(bic4, true4, plan.scale):.3f}"))
    for name, k, row in shown:
        tiles.append((f"est. {name}", k, f"sigma {row['sigma_major']:.2f}/{row['sigma_minor']:.2f}",
                      f"dist {row['distance']:.3f}"))
    side = size * zoom
    cols = min(len(tiles), 4)
    rows = math.ceil(len(tiles) / cols)
    cell_w, cell_h = side + 16, side + 62
    canvas = Image.new("RGB", (cols * cell_w + 8, rows * cell_h + 30), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), f"x{plan.scale} blur kernels (centred, {size}x{size} HR px, each scaled to its peak)",
              fill=(235, 235, 235), font=font(14))
    for i, (title, k, l1, l2) in enumerate(tiles):
        x, y = 8 + (i % cols) * cell_w, 30 + (i // cols) * cell_h
        canvas.paste(Image.fromarray(_heat(k, size, zoom)), (x, y))
        draw.text((x, y + side + 4), title, fill=(235, 235, 235), font=font(13))
        draw.text((x, y + side + 22), l1, fill=(200, 200, 200), font=font(12))
        draw.text((x, y + side + 38), l2, fill=(200, 200, 200), font=font(12))
    return np.asarray(canvas)


def phone_figures(out: Path, plan: DemoPlan) -> Figures:
    """Number of phone photos and the camera they simulate."""
    manifest = _json(out / "phone" / "manifest.json")
    ok = [e for e in manifest["pairs"] if e["status"] == "ok"]
    size = ok[0]["lr_size"] if ok else None
    return {"items": counted(len(ok), "photo"),
            "figure": f"x2 Gaussian sigma {plan.phone_blur_sigma:g}, noise sigma {plan.phone_noise_sigma:g}",
            "details": {"photos": [e["name"] for e in ok], "size": size}}


def degrade_figures(out: Path, plan: DemoPlan, folder: str) -> Figures:
    """Pairs made; for the training set also the realism comparison with the phone photos."""
    manifest = _json(out / folder / "manifest.json")
    counts: dict[str, int] = {}
    for e in manifest["pairs"]:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    ok = counts.get("ok", 0)
    details: dict[str, Any] = {"counts": counts}
    figure = f"x{plan.scale}, pool kernels + pool noise, --seed {manifest.get('params', {}).get('seed', '?')}"
    realism = out / folder / "realism.json"
    if realism.is_file():
        rep = _json(realism)
        syn, real = rep["synthetic"], rep["real"]
        sn = [v for v in syn["noise_sigma"] if v is not None]
        rn = [v for v in real["noise_sigma"] if v is not None]
        details["realism"] = {"summary": rep.get("summary", []), "synthetic": syn, "real": real,
                              "spectrum_distance_db": rep.get("spectrum_distance_db")}
        figure = f"noise {np.mean(sn):.2f} vs real {np.mean(rn):.2f}" if sn and rn else "noise not measured"
        if syn.get("blur_width") is not None and real.get("blur_width") is not None:
            figure += f"; blur {syn['blur_width']:.2f} vs {real['blur_width']:.2f} px"
    return {"items": counted(ok, "pair"), "figure": figure, "details": details}


def train_figures(out: Path, plan: DemoPlan) -> Figures:
    """Iterations run, speed, last validation PSNR and its bicubic baseline."""
    records = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()]
    vals = [r for r in records if r.get("val")]
    speed = [r["it_s"] for r in records if r.get("it_s")]
    it = max((r.get("iteration", 0) for r in records), default=0)
    details: dict[str, Any] = {"iterations": it, "it_s": _r(float(np.median(speed)), 2) if speed else None,
                               "val": [{"iteration": r["iteration"], **r["val"]} for r in vals]}
    figure = "no validation"
    if vals:
        v = vals[-1]["val"]
        figure = f"val PSNR {v['psnr']:.2f} dB (bicubic {v['psnr_bicubic']:.2f})"
    it_s = f", {details['it_s']:.1f} it/s" if details["it_s"] else ""
    return {"items": f"{it} iterations{it_s}", "figure": figure, "details": details}


def eval_figures(out: Path, plan: DemoPlan) -> Figures:
    """Mean and per-image PSNR/SSIM of the model and of bicubic on the held-out pairs."""
    rep = _json(out / "eval" / "eval.json")
    m, b = rep["mean"], rep["baseline"]["mean"]
    base = {r["name"]: r for r in rep["baseline"]["images"]}
    rows = [{"name": r["name"], "psnr": r.get("psnr"), "ssim": r.get("ssim"),
             "psnr_bicubic": base.get(r["name"], {}).get("psnr"), "ssim_bicubic": base.get(r["name"], {}).get("ssim")}
            for r in rep["images"]]
    gain = m["psnr"] - b["psnr"]
    return {"items": f"{counted(len(rows), 'held-out pair')}",
            "figure": f"PSNR {m['psnr']:.2f} vs bicubic {b['psnr']:.2f} dB ({gain:+.2f})",
            "details": {"mean": m, "bicubic": b, "gain_db": _r(gain), "images": rows,
                        "beats_bicubic": bool(gain > 0)}}


def report_figures(out: Path, plan: DemoPlan) -> Figures:
    """The report files."""
    return {"items": "2 files", "figure": "report.html, report.png", "details": {}}


FIGURES = {
    "data": data_figures,
    "simulate": simulate_figures,
    "align": align_figures,
    "phone": phone_figures,
    "build-pool": pool_figures,
    "degrade-train": lambda out, plan: degrade_figures(out, plan, "train_pairs"),
    "degrade-val": lambda out, plan: degrade_figures(out, plan, "val_pairs"),
    "degrade-test": lambda out, plan: degrade_figures(out, plan, "test_pairs"),
    "train": train_figures,
    "eval": eval_figures,
    "report": report_figures,
}
