"""Small Pillow helpers for the demo's pictures: a font, text panels, fitting and stacking panels.

Images are RGB uint8 NumPy arrays (H, W, 3) in and out; files go through :mod:`realsr.images`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


@lru_cache(maxsize=None)
def font(size: int = 14) -> ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (a scalable one when Pillow has FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # older Pillow or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def table_panel(rows: list[list[str]], width: int, size: int = 14, title: str | None = None,
                footer: list[str] | None = None, right: set[int] = frozenset()) -> np.ndarray:
    """A table on a dark panel ``width`` px wide: the first row is the header (drawn bold-ish with a
    rule under it); columns are as wide as their widest cell; columns in ``right`` right-aligned;
    ``footer`` lines of plain text follow."""
    f, tf = font(size), font(size + 6)
    footer = footer or []
    ncol = max((len(r) for r in rows), default=0)
    widths = [max((f.getlength(str(r[c])) for r in rows if c < len(r)), default=0) for c in range(ncol)]
    line_h, title_h, gap = size + 6, (size + 14 if title else 0), 18
    height = 14 + title_h + line_h * (len(rows) + len(footer)) + 6
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((10, 6), title, fill=TEXT, font=tf)
    y = 6 + title_h
    for i, r in enumerate(rows):
        x = 10.0
        for c, cell in enumerate(r):
            cell = str(cell)
            dx = widths[c] - f.getlength(cell) if c in right else 0
            draw.text((x + dx, y), cell, fill=TEXT if i else (255, 214, 120), font=f)
            x += widths[c] + gap
        y += line_h
        if i == 0:
            draw.line([(10, y - 3), (width - 10, y - 3)], fill=(90, 90, 90))
    for line in footer:
        draw.text((10, y), line, fill=TEXT, font=f)
        y += line_h
    return np.asarray(img)


def fit(img: np.ndarray, width: int, max_height: int | None = None) -> np.ndarray:
    """``img`` resized (area/Lanczos) to ``width`` px wide, or smaller to stay under ``max_height``."""
    h, w = img.shape[:2]
    s = width / w
    if max_height is not None and h * s > max_height:
        s = max_height / h
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == (w, h):
        return img
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def titled(img: np.ndarray, title: str, size: int = 15) -> np.ndarray:
    """``img`` with a caption bar above it."""
    bar = Image.new("RGB", (img.shape[1], size + 12), BACKGROUND)
    ImageDraw.Draw(bar).text((6, 5), title, fill=TEXT, font=font(size))
    return np.concatenate([np.asarray(bar), img], axis=0)


def stack(panels: list[np.ndarray], axis: int = 0, gap: int = 8) -> np.ndarray:
    """Panels stacked vertically (``axis=0``, left-aligned) or side by side (``axis=1``, top-aligned),
    padded with the background colour and separated by ``gap`` px."""
    panels = [p for p in panels if p is not None]
    if not panels:
        return np.zeros((1, 1, 3), np.uint8)
    other = 1 - axis
    extent = max(p.shape[other] for p in panels)
    out = []
    bg = np.array(BACKGROUND, np.uint8)
    for i, p in enumerate(panels):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, extent - p.shape[other])
        q = np.pad(p, pad)
        mask = np.ones(p.shape[:2], bool)
        mask = np.pad(mask, pad[:2])
        q[~mask] = bg
        out.append(q)
        if i < len(panels) - 1 and gap:
            shape = [0, 0, 3]
            shape[axis], shape[other] = gap, extent
            out.append(np.broadcast_to(bg, tuple(shape)).copy())
    return np.ascontiguousarray(np.concatenate(out, axis=axis))
