"""Comparison crops for reports: LR | bicubic | SR | HR side by side, at the place where the model
differs most from bicubic."""

from __future__ import annotations

import cv2
import numpy as np

from realsr.color import rgb_to_y
from realsr.images import label_text, to_float

LABELS = ("LR", "bicubic", "SR", "HR")


def most_different_box(sr: np.ndarray, bicubic: np.ndarray, size: int, scale: int) -> tuple[int, int, int]:
    """(top, left, side) in HR pixels of the ``size``-px square (clipped to the image, all three
    multiples of ``scale``) where the mean |Y(sr) - Y(bicubic)| is largest. Float [0, 1] RGB inputs."""
    h, w = sr.shape[:2]
    side = max(scale, min(size, h, w) // scale * scale)
    diff = np.abs(rgb_to_y(sr) - rgb_to_y(bicubic)).astype(np.float64)
    integral = cv2.integral(diff)  # (h+1, w+1)
    ys = np.arange(0, h - side + 1, scale)
    xs = np.arange(0, w - side + 1, scale)
    sums = (integral[ys[:, None] + side, xs[None, :] + side] - integral[ys[:, None], xs[None, :] + side]
            - integral[ys[:, None] + side, xs[None, :]] + integral[ys[:, None], xs[None, :]])
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[i]), int(xs[j]), int(side)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((18, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, label_text(text), (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def comparison_panel(lr: np.ndarray, bicubic: np.ndarray, sr: np.ndarray, hr: np.ndarray | None,
                     scale: int, size: int = 160, gap: int = 4) -> np.ndarray:
    """An 8-bit RGB picture of the four crops (LR enlarged by pixel repetition), labelled, separated
    by white ``gap``-px bars. Inputs: RGB uint8/uint16 or float [0, 1]; LR at LR size, the rest at
    HR size; ``hr`` may be None (then three panels)."""
    f = [to_float(a) for a in (lr, bicubic, sr)] + ([to_float(hr)] if hr is not None else [])
    top, left, side = most_different_box(f[2], f[1], size, scale)
    lt, ll, ls = top // scale, left // scale, side // scale
    crops = [np.repeat(np.repeat(f[0][lt:lt + ls, ll:ll + ls], scale, 0), scale, 1)]
    crops += [a[top:top + side, left:left + side] for a in f[1:]]
    pics = [_label(np.floor(np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8), t) for c, t in zip(crops, LABELS)]
    bar = np.full((pics[0].shape[0], gap, 3), 255, np.uint8)
    out = [pics[0]]
    for p in pics[1:]:
        out += [bar, p]
    return np.concatenate(out, axis=1)
