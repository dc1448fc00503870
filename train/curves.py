"""``RUN/curves.png``: loss and validation-PSNR curves drawn with Pillow (no plotting library needed).

Two panels side by side: every logged loss term against the iteration (log scale when the values
span more than a factor of 20), and the validation PSNR (dB) against the iteration.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.1e}"
    return f"{v:.3g}"


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: dict[str, tuple[list[float], list[float]]], log_y: bool | None = None) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0 + 4, y0 - 14), title, fill=(0, 0, 0))
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if math.isfinite(y)]
    if not pts:
        draw.text((x0 + 10, (y0 + y1) // 2), "no data yet", fill=(120, 120, 120))
        return
    xs_all = [p[0] for p in pts]
    ys_all = [p[1] for p in pts]
    if log_y is None:
        pos = [y for y in ys_all if y > 0]
        log_y = len(pos) == len(ys_all) and max(pos) / min(pos) > 20
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    lo, hi = min(f(y) for y in ys_all), max(f(y) for y in ys_all)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    xlo, xhi = min(xs_all), max(xs_all)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x0 + 6 + (x - xlo) / (xhi - xlo) * (x1 - x0 - 12), y1 - 6 - (f(y) - lo) / (hi - lo) * (y1 - y0 - 12))

    for i, (name, (xs, ys)) in enumerate(series.items()):
        c = _COLOURS[i % len(_COLOURS)]
        line = [to_px(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not log_y)]
        if len(line) > 1:
            draw.line(line, fill=c, width=2)
        elif line:
            draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=c)
        draw.text((x1 - 150, y0 + 6 + 12 * i), name, fill=c)
    back = (lambda v: 10 ** v) if log_y else (lambda v: v)
    draw.text((x0 + 4, y0 + 4), _fmt(back(hi)) + (" (log)" if log_y else ""), fill=(80, 80, 80))
    draw.text((x0 + 4, y1 - 16), _fmt(back(lo)), fill=(80, 80, 80))
    draw.text((x0, y1 + 4), f"{int(xlo)}", fill=(80, 80, 80))
    draw.text((x1 - 60, y1 + 4), f"{int(xhi)} it", fill=(80, 80, 80))


def draw_curves(records: list[dict[str, Any]], width: int = 960, height: int = 360) -> np.ndarray:
    """An RGB uint8 (height, width, 3) picture of the loss terms and validation PSNR in ``records``
    (``log.jsonl`` entries: ``{"iteration", "losses": {...}}`` and ``{"iteration", "val": {"psnr"}}``)."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    losses: dict[str, tuple[list[float], list[float]]] = {}
    psnr: dict[str, tuple[list[float], list[float]]] = {}
    for r in records:
        it = r.get("iteration")
        for k, v in (r.get("losses") or {}).items():
            losses.setdefault(k, ([], []))
            losses[k][0].append(it)
            losses[k][1].append(float(v))
        val = r.get("val") or {}
        for k in ("psnr", "psnr_bicubic"):
            if k in val:
                psnr.setdefault("SR" if k == "psnr" else "bicubic", ([], []))
                psnr["SR" if k == "psnr" else "bicubic"][0].append(it)
                psnr["SR" if k == "psnr" else "bicubic"][1].append(float(val[k]))
    half = width // 2
    _panel(draw, (40, 24, half - 10, height - 24), "training losses", losses)
    _panel(draw, (half + 30, 24, width - 10, height - 24), "validation PSNR (dB, Y)", psnr, log_y=False)
    return np.asarray(img)
