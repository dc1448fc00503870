"""Built-in procedural test photos: deterministic and richly textured (SIFT finds plenty to match).

Used as the default data of demos and tests, so nothing has to be downloaded. The picture is drawn
at twice the size and area-downscaled (anti-aliased edges), then given a multi-scale colour texture.
"""

from __future__ import annotations

import string

import cv2
import numpy as np


def synthetic_scene(height: int = 768, width: int = 1024, seed: int = 0) -> np.ndarray:
    """A procedural RGB uint8 photo of ``height x width`` pixels, identical for the same seed.

    Smooth background light, multi-scale coloured texture, a few hundred random shapes (discs,
    boxes, polygons, lines) and text of several sizes.
    """
    if height < 16 or width < 16:
        raise ValueError("synthetic scene needs at least 16x16 pixels")
    rng = np.random.default_rng(seed)
    h2, w2 = 2 * height, 2 * width
    yy, xx = np.mgrid[0:h2, 0:w2].astype(np.float32)
    base = rng.uniform(60, 190, 3).astype(np.float32)
    grad = rng.uniform(-60, 60, (3, 2)).astype(np.float32)
    img = base[None, None, :] + (xx[..., None] / w2 - 0.5) * grad[:, 0] + (yy[..., None] / h2 - 0.5) * grad[:, 1]
    del xx, yy
    for sigma, amp in ((64, 40.0), (16, 22.0), (4, 12.0)):
        small = rng.standard_normal((max(2, h2 // sigma), max(2, w2 // sigma), 3)).astype(np.float32)
        img += amp * cv2.resize(small, (w2, h2), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    n = int(120 + 180 * (height * width) / (768 * 1024))
    letters = string.ascii_letters + string.digits
    for _ in range(n):
        kind = rng.integers(0, 6)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w2)), int(rng.integers(0, h2))
        size = int(rng.integers(6, max(8, min(h2, w2) // 8)))
        if kind == 0:
            cv2.circle(img, (x, y), size, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1)
        elif kind == 2:
            pts = (np.array([x, y]) + rng.integers(-size, size, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
        elif kind == 3:
            cv2.line(img, (x, y), (x + int(rng.integers(-size, size)) * 3, y + int(rng.integers(-size, size)) * 3),
                     colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        elif kind == 4:
            text = "".join(rng.choice(list(letters), int(rng.integers(2, 9))))
            cv2.putText(img, text, (x, y), int(rng.integers(0, 8)), float(rng.uniform(0.6, 4.0)), colour,
                        int(rng.integers(1, 5)), cv2.LINE_AA)
        else:
            cv2.ellipse(img, (x, y), (size, max(2, size // 2)), float(rng.uniform(0, 180)), 0, 360, colour,
                        int(rng.integers(1, 5)), cv2.LINE_AA)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    grain = cv2.GaussianBlur(rng.standard_normal((height, width, 1)).astype(np.float32), (0, 0), 0.7)
    out = img.astype(np.float32) + 6.0 * grain.reshape(height, width, 1)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)[:, :, ::-1].copy()
