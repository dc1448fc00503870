"""The demo's report: ``OUT/report.html`` (one self-contained page; the pictures are the image files
inside OUT, referenced by relative paths) and ``OUT/report.png`` (one summary picture).

Both are made from ``OUT/demo.json`` (the runner's record: plan, steps, timings, figures) and the
files the steps wrote. Run alone: ``python -m realsr.demo.report OUT [--quick] [--seed N]``; without
``demo.json`` (the steps were run by hand, e.g. from ``OUT/commands.sh``) the figures are measured
from the files and the plan is the one ``--quick``/``--seed`` name (no timings then).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from realsr.atomic import write_bytes_atomic
from realsr.errors import UsageError
from realsr.images import as_rgb, from_float, read_image, to_float, write_png

from .pictures import fit, stack, table_panel, titled

STATE_NAME = "demo.json"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;
color:#1d1d1f;background:#fafafa;line-height:1.45}
h1{font-size:1.7em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:left}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #ccc;background:#222;margin:4px 0;image-rendering:auto}
figure{margin:.6em 0}figcaption{font-size:.88em;color:#555}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.86em}
pre{background:#f0f0f0;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.good{color:#0a7d28;font-weight:600}.bad{color:#b00020;font-weight:600}.gallery{display:flex;flex-wrap:wrap;gap:10px}
.gallery figure{flex:1 1 360px;max-width:620px}
"""


def load_state(out: str | os.PathLike) -> dict[str, Any]:
    """``OUT/demo.json`` as a dict; :class:`UsageError` when it is missing or unreadable."""
    p = Path(out) / STATE_NAME
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError("not a demo folder (no demo.json)", p) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the demo record: {e}", p) from None


def state_from_files(out: Path, plan: Any) -> dict[str, Any]:
    """A demo record rebuilt from the files of a demo folder made step by step (no timings):
    every step whose figures can be measured counts as done."""
    from .figures import FIGURES
    from .runner import FORMAT, VERSION, machine_description
    from .steps import build_steps

    steps: dict[str, Any] = {}
    for step in build_steps(out, plan):
        if step.key == "report":
            continue
        try:
            f = FIGURES[step.key](out, plan)
        except (OSError, ValueError, KeyError, IndexError, TypeError, UsageError):
            continue
        steps[step.key] = {"stage": step.stage, "command": step.command, "done": True, "seconds": None,
                           "items": f["items"], "figure": f["figure"], "details": f["details"]}
    return {"format": FORMAT, "version": VERSION, "plan": plan.to_json(), "status": "done", "steps": steps,
            "machine": {"description": machine_description()}, "total_seconds": None}


def _rel(out: Path, path: Path) -> str:
    return quote(path.relative_to(out).as_posix())


def _seconds(state: dict[str, Any]) -> str:
    t = state.get("total_seconds")
    return "(not timed)" if t is None else f"{t:.0f} s"


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _num(v: Any, nd: int = 2) -> str:
    return "" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td class='n'>{_esc(c)}</td>" if i in numeric else f"<td>{_esc(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _img(out: Path, path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    return (f"<figure><img src='{_rel(out, path)}' alt='{_esc(caption)}' loading='lazy'>"
            f"<figcaption>{_esc(caption)} (<code>{_esc(path.relative_to(out).as_posix())}</code>)</figcaption></figure>")


def summary_rows(state: dict[str, Any]) -> list[list[str]]:
    """[stage, items, seconds, key figure] per step that ran."""
    rows = []
    for s in state.get("steps", {}).values():
        if s.get("done"):
            sec = s.get("seconds")
            rows.append([s["stage"], s.get("items", ""), "" if sec is None else f"{sec:.1f}", s.get("figure", "")])
    return rows


def _details(state: dict[str, Any], key: str) -> dict[str, Any]:
    return (state.get("steps", {}).get(key) or {}).get("details") or {}


def _last_samples(out: Path, limit: int = 2) -> list[Path]:
    """The validation crops of the last validated iteration."""
    files = sorted((out / "run" / "samples").glob("*.png"))
    if not files:
        return []

    def it(p: Path) -> int:
        head = p.stem.split("_", 1)[0]
        return int(head) if head.isdigit() else -1

    last = max(it(p) for p in files)
    return [p for p in files if it(p) == last][:limit]


def build_html(out: Path, state: dict[str, Any]) -> str:
    """The report page (relative image paths inside ``out``)."""
    plan = state["plan"]
    steps = state.get("steps", {})
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>realsr demo ({_esc(plan['preset'])})"
             f"</title><meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>realsr demo: the whole pipeline on built-in data</h1><p>Preset <b>{_esc(plan['preset'])}</b>, "
                 f"x{plan['scale']}, seed {plan['seed']}. Total {_seconds(state)} on "
                 f"{_esc(state.get('machine', {}).get('description', 'this machine'))}. Every step is a real "
                 f"<code>realsr</code> command; the command lines are at the end and in <code>commands.sh</code>.</p>")
    ev = _details(state, "eval")
    if ev:
        good = ev.get("beats_bicubic")
        parts.append(f"<p class='{'good' if good else 'bad'}'>Held-out pairs: model PSNR {ev['mean']['psnr']:.2f} dB vs "
                     f"bicubic {ev['bicubic']['psnr']:.2f} dB ({ev['gain_db']:+.2f} dB): the trained model "
                     f"{'beats' if good else 'does NOT beat'} bicubic.</p>")
    parts.append("<h2>Summary</h2>" + _table(["stage", "items", "seconds", "key figure"], summary_rows(state), {2}))

    # alignment
    al = _details(state, "align")
    parts.append("<h2>1. Postcard captures aligned (<code>realsr simulate</code>, <code>realsr align</code>)</h2>"
                 "<p>The simulator renders a wide LR capture (lens distortion, blur, exposure and colour change, noise) "
                 f"and an HR capture {plan['scale']}x closer with a small rotation, tilt and offset; align recovers "
                 "pixel-aligned pairs. <i>error vs truth</i>: distance between where the written HR pixel truly lies "
                 "in the LR and where alignment put it (LR px).</p>")
    rows = [[p["name"], p["status"], p.get("reason") or "", _num(p.get("inliers")), _num(p.get("residual_px"), 3),
             _num(p.get("truth_error_px"), 3), _num(p.get("psnr_y"), 2),
             "x".join(map(str, p.get("lr_size") or [])), "x".join(map(str, p.get("hr_size") or []))]
            for p in al.get("pairs", [])]
    parts.append(_table(["pair", "status", "reason", "inliers", "residual (px)", "error vs truth (px)", "PSNR-Y (dB)",
                         "LR size", "HR size"], rows, {3, 4, 5, 6}))
    parts.append("<div class='gallery'>" + "".join(
        _img(out, out / "aligned" / "previews" / f"{p['name']}.png", f"alignment preview {p['name']}")
        for p in al.get("pairs", [])) + "</div>")

    # pool
    po = _details(state, "build-pool")
    parts.append("<h2>2. Kernel and noise pool from simulated phone photos (<code>realsr build-pool</code>)</h2>"
                 f"<p>The phone photos were made from built-in scenes with a known camera: a Gaussian x2 blur of sigma "
                 f"{plan['phone_blur_sigma']:g} px and Gaussian noise of sigma {plan['phone_noise_sigma']:g} (0-255). "
                 f"KernelGAN ran <b>{plan['kernelgan_iterations']} iterations per photo</b> (the official setting is "
                 "3000) to keep the demo short. The x4 kernel is derived from the x2 estimate; its true counterpart is "
                 f"the x2 Gaussian applied twice (sigma {po.get('true_sigma', 0) or 0:.2f} HR px). Distance: L2 between "
                 "the centred kernels (0 = same shape); bicubic's distance to the truth is the yardstick.</p>")
    rows = [[s["name"], s["status"], _num(s.get("sigma_major"), 2), _num(s.get("sigma_minor"), 2),
             _num(s.get("distance"), 3), _num(s.get("distance_bicubic"), 3), s.get("noise_patches"),
             s.get("kernel_reason") or ""] for s in po.get("sources", [])]
    parts.append(_table(["photo", "status", "sigma major", "sigma minor", "distance to truth",
                         "bicubic's distance", "noise patches", "kernel note"], rows, {2, 3, 4, 5, 6}))
    if po.get("noise_std") is not None:
        parts.append(f"<p>Noise patches: {po['noise_patches']}, std {po['noise_std']:.2f} per channel after making "
                     f"them zero-mean (the camera's true sigma: {po['true_noise_std']:g}; 8-bit rounding adds about "
                     "0.3 in quadrature).</p>")
    parts.append(_img(out, out / "report" / "kernels.png", "true vs estimated x4 kernels"))
    parts.append(_img(out, out / "pool" / "preview.png", "the pool: kernels and noise patches (raw and amplified)"))

    # realism
    dg = _details(state, "degrade-train")
    parts.append("<h2>3. Clean HR images degraded with the pool (<code>realsr degrade --mode pool</code>)</h2>"
                 "<p>Each clean HR image is blurred with a pool kernel, subsampled by the scale and given a real noise "
                 "patch. <code>--reference</code> compares the synthetic LR with the phone photos:</p>")
    rz = dg.get("realism") or {}
    if rz:
        parts.append("<ul>" + "".join(f"<li>{_esc(line)}</li>" for line in rz.get("summary", [])) + "</ul>")
    parts.append(_img(out, out / "train_pairs" / "realism.png", "realism: synthetic LR vs the phone photos"))
    cnt = {k: (_details(state, f"degrade-{k}").get("counts") or {}).get("ok", 0) for k in ("train", "val", "test")}
    parts.append(f"<p>Pairs: {cnt['train']} for training, {cnt['val']} for validation, {cnt['test']} held out for the "
                 "evaluation (different images, the same degradation).</p>")

    # training
    tr = _details(state, "train")
    parts.append("<h2>4. Training (<code>realsr train</code>)</h2>"
                 f"<p>A small RRDBNet (examples/tiny_cpu.yaml: 2 blocks of 32 features, L1 loss) for "
                 f"{plan['iterations']} iterations of {plan['batch_size']} crops of {plan['patch_size']} HR px, Adam "
                 f"{plan['learning_rate']:g} with a cosine schedule"
                 + (f", gradient norm clipped at {plan['grad_clip']:g}" if plan.get("grad_clip") else "")
                 + (f"; {tr['it_s']:.1f} iterations/s" if tr.get("it_s") else "") + ".</p>")
    if tr.get("val"):
        parts.append(_table(["iteration", "val PSNR (dB)", "bicubic PSNR (dB)", "val SSIM"],
                            [[v["iteration"], _num(v.get("psnr")), _num(v.get("psnr_bicubic")), _num(v.get("ssim"), 4)]
                             for v in tr["val"]], {0, 1, 2, 3}))
    parts.append(_img(out, out / "run" / "curves.png", "training curves (loss, validation PSNR)"))
    parts.append("<div class='gallery'>" + "".join(_img(out, p, "validation crop: bicubic | SR | HR")
                                                   for p in _last_samples(out)) + "</div>")

    # eval
    parts.append("<h2>5. Evaluation on held-out pairs (<code>realsr eval</code>)</h2>"
                 "<p>PSNR/SSIM on the Y channel (MATLAB <code>rgb2ycbcr</code>), border = scale cropped, 8-bit output; "
                 "bicubic = MATLAB <code>imresize</code> of the same LR.</p>")
    if ev:
        rows = [[r["name"], _num(r.get("psnr")), _num(r.get("psnr_bicubic")),
                 _num((r["psnr"] - r["psnr_bicubic"]) if r.get("psnr") is not None and r.get("psnr_bicubic") is not None
                      else None), _num(r.get("ssim"), 4), _num(r.get("ssim_bicubic"), 4)] for r in ev.get("images", [])]
        rows.append(["mean", _num(ev["mean"]["psnr"]), _num(ev["bicubic"]["psnr"]), _num(ev["gain_db"]),
                     _num(ev["mean"].get("ssim"), 4), _num(ev["bicubic"].get("ssim"), 4)])
        parts.append(_table(["image", "model PSNR (dB)", "bicubic PSNR (dB)", "gain (dB)", "model SSIM", "bicubic SSIM"],
                            rows, {1, 2, 3, 4, 5}))
        parts.append("<div class='gallery'>" + "".join(
            _img(out, out / "eval" / "compare" / f"{r['name']}.png", f"{r['name']}: LR | bicubic | SR | HR")
            for r in ev.get("images", [])) + "</div>")

    # commands and files
    parts.append("<h2>Re-run any step</h2><p>From the directory the demo ran in:</p><pre>"
                 + "\n".join(_esc(s["command"]) for s in steps.values()) + "</pre>")
    parts.append("<h2>Where everything is</h2>" + _table(["path", "content"], [[p, c] for p, c in FOLDERS]))
    parts.append("</body></html>\n")
    return "".join(parts)


#: the demo folder's layout (path relative to OUT, content)
FOLDERS = [
    ("data/", "built-in images: phone_scenes, clean_train, clean_val, clean_test"),
    ("captures/", "simulated postcard captures: LR/, HR/, truth.json (true geometry)"),
    ("aligned/", "aligned x4 pairs: HR/, LR/, previews/, manifest.json"),
    ("phone/LR/", "simulated phone photos (known blur and noise); phone/manifest.json records both"),
    ("pool/", "pool.json, kernels/*.npy, noise/*.png, preview.png"),
    ("train_pairs/, val_pairs/, test_pairs/", "degraded pairs: HR/, LR/, manifest.json; train_pairs/realism.{json,png}"),
    ("train_config.yaml", "training config (examples/tiny_cpu.yaml); sizes as overrides on the command line"),
    ("run/", "model.safetensors, model_best.safetensors, log.jsonl, curves.png, samples/, checkpoints/"),
    ("eval/", "eval.json, eval.csv, SR/, compare/"),
    ("report/kernels.png", "true vs estimated kernels"),
    ("commands.sh", "every step's command line"),
    ("demo.json", "the demo's record: plan, steps, seconds, figures"),
]


def build_png(out: Path, state: dict[str, Any], width: int = 1600) -> np.ndarray:
    """One summary picture (RGB uint8): summary table, alignment, kernels, noise, realism, curves,
    evaluation crop."""
    plan = state["plan"]
    rows = [["stage", "items", "seconds", "key figure"]] + summary_rows(state)
    footer = [f"total {_seconds(state)}; preset {plan['preset']}, x{plan['scale']}; "
              f"{state.get('machine', {}).get('description', '')}"]
    ev = _details(state, "eval")
    if ev:
        footer.append(f"held-out PSNR: model {ev['mean']['psnr']:.2f} dB vs bicubic {ev['bicubic']['psnr']:.2f} dB "
                      f"({ev['gain_db']:+.2f} dB)")
    head = table_panel(rows, width, size=15, title="realsr demo: the whole pipeline on built-in data", footer=footer,
                       right={2})
    half = (width - 8) // 2

    def panel(path: Path, title: str, w: int, max_h: int = 520) -> np.ndarray | None:
        if not path.is_file():
            return None
        img = as_rgb(read_image(path))
        if img.dtype != np.uint8:
            img = from_float(to_float(img), np.uint8)
        return titled(fit(img, w, max_h), title)

    al = _details(state, "align").get("pairs") or [{}]
    first = al[0].get("name")
    ev_first = (ev.get("images") or [{}])[0].get("name") if ev else None
    row1 = stack([panel(out / "aligned" / "previews" / f"{first}.png", f"align: {first}", half),
                  panel(out / "report" / "kernels.png", "kernels: true, bicubic, estimated", half)], axis=1)
    row2 = stack([panel(out / "pool" / "preview.png", "pool preview: kernels + noise patches", half),
                  panel(out / "train_pairs" / "realism.png", "realism: synthetic LR vs phone photos", half)], axis=1)
    row3 = stack([panel(out / "run" / "curves.png", "training curves", half),
                  panel(out / "eval" / "compare" / f"{ev_first}.png", f"eval {ev_first}: LR | bicubic | SR | HR", half)],
                 axis=1)
    return stack([head, row1, row2, row3], axis=0)


def write_report(out: str | os.PathLike, state: dict[str, Any] | None = None) -> list[Path]:
    """Write ``OUT/report.html`` and ``OUT/report.png`` (atomically); return their paths."""
    out = Path(out)
    state = state if state is not None else load_state(out)
    page = out / "report.html"
    write_bytes_atomic(page, build_html(out, state).encode("utf-8"))
    pic = out / "report.png"
    write_png(pic, build_png(out, state))
    return [page, pic]


def main(argv: list[str] | None = None) -> int:
    """``python -m realsr.demo.report OUT [--quick] [--seed N]``: (re)write the report of a demo folder."""
    from .plan import plan_for

    ap = argparse.ArgumentParser(prog="python -m realsr.demo.report", description="Write OUT/report.html and report.png.")
    ap.add_argument("out", help="the demo folder")
    ap.add_argument("--quick", action="store_true", help="the folder was made with the quick sizes (used without demo.json)")
    ap.add_argument("--seed", type=int, default=0, help="its seed (used without demo.json)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    try:
        state = load_state(out) if (out / STATE_NAME).is_file() else state_from_files(out, plan_for(args.quick, args.seed))
        if not state["steps"]:
            raise UsageError("no demo step's output found", out)
        for p in write_report(out, state):
            print(p)
    except UsageError as e:
        print(f"realsr: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
