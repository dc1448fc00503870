"""Preview pictures that show at a glance whether a pair is aligned.

Three panels on the LR grid, with the figures printed above them:

1. **checkerboard**: alternating squares of the LR and of the HR downscaled to the LR grid; a
   misaligned pair shows broken edges at the square borders;
2. **overlay**: LR in magenta, downscaled HR in green; aligned content is grey, misalignment shows
   as green/magenta fringes;
3. **residual**: the absolute difference (x4) with the measured tile shifts drawn as arrows
   magnified 20 times (an arrow as long as a tile side is 0.05 x tile LR px).
"""

from __future__ import annotations

import cv2
import numpy as np

from realsr.color import rgb_to_gray
from realsr.images import label_text

PANEL_WIDTH = 480
ARROW_GAIN = 20.0


def _fit(img: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    f = width / w
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST
    return cv2.resize(img, (width, max(1, int(round(h * f)))), interpolation=interp), f


def make_preview(
    lr: np.ndarray,
    hr_small: np.ndarray,
    lines: list[str],
    shifts: np.ndarray | None = None,
    ok: bool = True,
) -> np.ndarray:
    """Render the preview as an RGB uint8 image.

    ``lr``, ``hr_small``: float RGB [0, 1] on the same (LR) grid; ``lines``: text printed in the
    header; ``shifts``: (N, 4) tile centres and shifts in LR px (from :func:`quality.residual_shifts`);
    ``ok`` colours the header green (accepted) or red (rejected).
    """
    h, w = lr.shape[:2]
    cell = max(8, min(h, w) // 8)
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(bool)[:, :, None]
    checker = np.where(board, lr, hr_small)
    gl, gh = rgb_to_gray(lr), rgb_to_gray(hr_small)
    overlay = np.stack([gl, gh, gl], axis=2)
    diff = np.clip(np.abs(lr - hr_small).mean(axis=2) * 4.0, 0, 1)
    diff = np.repeat(diff[:, :, None], 3, axis=2)

    panels = []
    scale = 1.0
    for p in (checker, overlay, diff):
        u8 = np.round(np.clip(p, 0, 1) * 255).astype(np.uint8)
        small, scale = _fit(u8, PANEL_WIDTH)
        panels.append(np.ascontiguousarray(small))
    if shifts is not None and len(shifts):
        for cx, cy, dx, dy in shifts:
            a = (int(round(cx * scale)), int(round(cy * scale)))
            b = (int(round((cx + ARROW_GAIN * dx) * scale)), int(round((cy + ARROW_GAIN * dy) * scale)))
            cv2.arrowedLine(panels[2], a, b, (255, 80, 0), 1, cv2.LINE_AA, tipLength=0.3)
            cv2.circle(panels[2], a, 1, (0, 200, 255), -1)
    ph = panels[0].shape[0]
    gap = np.full((ph, 6, 3), 40, np.uint8)
    body = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    labels = ["checkerboard LR/HR", "overlay LR magenta, HR green", f"|LR-HR| x4, shifts x{ARROW_GAIN:g}"]
    label_bar = np.full((22, body.shape[1], 3), 30, np.uint8)
    for i, text in enumerate(labels):
        cv2.putText(label_bar, label_text(text), (i * (PANEL_WIDTH + 6) + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (220, 220, 220), 1, cv2.LINE_AA)
    header = np.full((24 * len(lines) + 10, body.shape[1], 3), 0, np.uint8)
    header[:] = (20, 90, 30) if ok else (120, 25, 25)
    for i, text in enumerate(lines):
        cv2.putText(header, label_text(text), (8, 24 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([header, label_bar, body], axis=0)
