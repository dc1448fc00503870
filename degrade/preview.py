"""``POOL/preview.png``: the pool's kernels and noise patches as one picture a person can judge.

Kernel tiles show each kernel magnified (nearest neighbour, scaled to its own peak) with its source
and width (sigma of the major/minor axis, HR px); noise tiles show the raw patch (left) and its
zero-mean noise amplified 8 times around mid-grey (right) with the gray standard deviation (0-255).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from realsr.images import label_text

from .noise import zero_mean
from .pool import Pool

TILE = 112
LABEL = 30
NOISE_GAIN = 8.0
MAX_TILES = 48


def _text(img: np.ndarray, lines: list[str], y0: int) -> None:
    for i, t in enumerate(lines):
        cv2.putText(img, label_text(t[:22]), (4, y0 + 12 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (230, 230, 230), 1,
                    cv2.LINE_AA)


def _kernel_tile(k: np.ndarray, lines: list[str]) -> np.ndarray:
    tile = np.full((TILE + LABEL, TILE, 3), 25, np.uint8)
    k = np.clip(k, 0, None)
    v = (k / k.max() * 255).astype(np.uint8) if k.max() > 0 else np.zeros(k.shape, np.uint8)
    big = cv2.resize(v, (TILE - 8, TILE - 8), interpolation=cv2.INTER_NEAREST)
    big = cv2.applyColorMap(big, cv2.COLORMAP_INFERNO)[:, :, ::-1]
    tile[4:TILE - 4, 4:TILE - 4] = big
    _text(tile, lines, TILE - 4)
    return tile


def _noise_tile(patch: np.ndarray, lines: list[str]) -> np.ndarray:
    tile = np.full((TILE + LABEL, TILE, 3), 25, np.uint8)
    half = (TILE - 12) // 2
    raw = patch[:TILE - 8, :half]
    raw8 = (raw >> 8).astype(np.uint8) if raw.dtype == np.uint16 else raw.astype(np.uint8)
    n = zero_mean(raw)
    amp = np.clip(0.5 + NOISE_GAIN * n, 0, 1)
    tile[4:4 + raw8.shape[0], 4:4 + raw8.shape[1]] = raw8
    tile[4:4 + amp.shape[0], 8 + half:8 + half + amp.shape[1]] = np.round(amp * 255).astype(np.uint8)
    _text(tile, lines, TILE - 4)
    return tile


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    rows = math.ceil(len(tiles) / cols)
    h, w = tiles[0].shape[:2]
    out = np.full((rows * (h + 4), cols * (w + 4), 3), 10, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + 4):r * (h + 4) + h, c * (w + 4):c * (w + 4) + w] = t
    return out


def _header(width: int, text: str) -> np.ndarray:
    bar = np.full((26, width, 3), (20, 60, 90), np.uint8)
    cv2.putText(bar, label_text(text), (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return bar


def make_pool_preview(pool: Pool, cols: int = 8) -> np.ndarray:
    """Render the preview as an RGB uint8 image (at most :data:`MAX_TILES` kernels and noise tiles)."""
    width = cols * (TILE + 4)
    parts = []
    ks, ns = pool.kernels, pool.noise
    parts.append(_header(width, f"{len(ks)} kernels (x{pool.scale}; colour = weight / peak)"))
    if ks:
        tiles = []
        for i, e in enumerate(ks[:MAX_TILES]):
            k = pool.kernel(i)
            tiles.append(_kernel_tile(k, [str(e.get("name", e["file"]))[:22],
                                          f"s {e.get('sigma_major', float('nan')):.2f}/{e.get('sigma_minor', float('nan')):.2f}"
                                          f"  {k.shape[0]}px"]))
        parts.append(_grid(tiles, cols))
    parts.append(_header(width, f"{len(ns)} noise patches (left raw, right noise x{NOISE_GAIN:g} around grey)"))
    if ns:
        tiles = []
        for i, e in enumerate(ns[:MAX_TILES]):
            tiles.append(_noise_tile(pool.noise_patch(i), [str(e["file"]).split("/")[-1][:22],
                                                           f"std {math.sqrt(max(e['gray_var'], 0)):.2f} mean {e['gray_mean']:.0f}"]))
        parts.append(_grid(tiles, cols))
    w = max(p.shape[1] for p in parts)
    parts = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0))) for p in parts]
    return np.concatenate(parts, axis=0)
