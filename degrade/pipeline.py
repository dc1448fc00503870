"""Running a degradation recipe on a NumPy image: the offline path of ``realsr degrade``.

A recipe is a list of *steps*, JSON-able dicts with every random draw already made (kernel
parameters, sizes, qualities, and one integer seed per noise field), so the steps recorded in
``manifest.json`` regenerate a pair exactly (:func:`apply_steps`). Steps, on float32 RGB in [0, 1]:

- ``{"op": "blur", "kernel": spec}``: correlate with the kernel of ``spec``
  (:func:`realsr.degrade.kernel_family.make_kernel`), origin at ``K // 2``, reflect borders;
- ``{"op": "subsample", "scale": s}``: keep every ``s``-th row and column from 0;
- ``{"op": "resize", "method": m, "size": [h, w], "antialias": a}``: MATLAB ``imresize`` with
  kernel ``m`` (:data:`realsr.resize.METHODS`) to ``h`` x ``w``; with ``"round_passes": 255`` (or
  65535) rounded to that many levels after each 1-D pass, as MATLAB on uint8 (uint16) images;
- ``{"op": "gaussian_noise", "sigma": s, "gray": g, "seed": n}``: add N(0, s) (s on the 0-255 scale),
  the same field on all channels when ``gray``;
- ``{"op": "poisson_noise", "peak": p, "scale": c, "gray": g, "seed": n}``: add
  ``c * (Poisson(p x) / p - x)`` (x clipped to [0, 1] and rounded to 8-bit levels; on the BT.601
  gray image when ``gray``);
- ``{"op": "pool_noise", "tiles": [...]}``: add the listed zero-mean crops of pool noise patches;
- ``{"op": "jpeg", "quality": q}``: JPEG round trip through the real codec (8-bit);
- ``{"op": "clip"}``: clamp to [0, 1];
- ``{"op": "learned", "model": m, "weights": file, "weights_sha256": h, "scale": s, "seed": n}``: the
  learned degradation ``m`` (HR -> LR at 1/s; :mod:`realsr.degrade.learned`), run by the loaded
  degrader passed as ``learned`` (refused when its model, weights or scale differ).

The result is rounded and clipped once, at the end, by the caller (:func:`realsr.images.from_float`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realsr.color import rgb_to_gray
from realsr.errors import UsageError
from realsr.images import from_float, to_float
from realsr.resize import imresize

from .jpeg import jpeg_numpy
from .kernel_family import make_kernel
from .learned import run_learned
from .noise import zero_mean
from .operators import blur

OPS = ("blur", "subsample", "resize", "gaussian_noise", "poisson_noise", "pool_noise", "jpeg", "clip", "learned")


def gaussian_field(shape: tuple[int, int], channels: int, seed: int) -> np.ndarray:
    """Standard normal float32 field (H, W, channels) of a noise step's ``seed``."""
    return np.random.default_rng(seed).standard_normal((*shape, channels), dtype=np.float32)


def poisson_noise(x: np.ndarray, peak: float, seed: int, gray: bool) -> np.ndarray:
    """Poisson noise ``Poisson(peak x) / peak - x`` (float32, [0, 1] units) for the image ``x``
    (H, W, 3) clipped and rounded to 8-bit levels (as Real-ESRGAN; it also keeps the draw stable
    under float rounding); on its BT.601 gray image, repeated on the channels, when ``gray``."""
    base = np.floor(np.clip(x, 0.0, 1.0) * 255 + 0.5) / 255
    if gray:
        base = rgb_to_gray(base)[..., None]
    rng = np.random.default_rng(seed)
    draw = rng.poisson(base.astype(np.float64) * peak).astype(np.float32) / np.float32(peak)
    return np.broadcast_to(draw - base, x.shape).astype(np.float32)


def tile_noise(tiles: list[dict[str, Any]], shape: tuple[int, int], pool: Any) -> np.ndarray:
    """The noise field (H, W, 3), float32 [0, 1] units, that the recorded pool-noise ``tiles`` make:
    each tile is the crop ``[x0, y0, x1, y1]`` of pool patch ``file``, zero-mean per channel, at ``at``."""
    out = np.zeros((*shape, 3), np.float32)
    for t in tiles:
        x0, y0, x1, y1 = t["crop"]
        x, y = t["at"]
        out[y:y + y1 - y0, x:x + x1 - x0] = zero_mean(pool.noise_file(t["file"])[y0:y1, x0:x1])
    return out


def apply_step(x: np.ndarray, step: dict[str, Any], pool: Any = None, learned: Any = None) -> np.ndarray:
    """One step on ``x`` (H, W, 3) float32 in [0, 1]; returns float32 (see the module docstring).
    ``learned``: the loaded degrader a ``learned`` step needs."""
    op = step.get("op")
    if op == "blur":
        return blur(x, make_kernel(step["kernel"], pool))
    if op == "subsample":
        s = int(step["scale"])
        return np.ascontiguousarray(x[::s, ::s])
    if op == "resize":
        h, w = step["size"]
        if (h, w) == x.shape[:2]:
            return x
        levels = step.get("round_passes")
        if levels:  # MATLAB on an integer image: every 1-D pass rounded to the integer class
            dtype = np.uint8 if levels == 255 else np.uint16
            xi = from_float(x, dtype)
            out = imresize(xi, output_shape=(h, w), method=step["method"], antialias=bool(step.get("antialias", True)))
            return to_float(out)
        return imresize(x, output_shape=(h, w), method=step["method"], antialias=bool(step.get("antialias", True)))
    if op == "gaussian_noise":
        n = gaussian_field(x.shape[:2], 1 if step["gray"] else x.shape[2], int(step["seed"]))
        return x + n * np.float32(step["sigma"] / 255.0)
    if op == "poisson_noise":
        n = poisson_noise(x, float(step["peak"]), int(step["seed"]), bool(step["gray"]))
        return x + n * np.float32(step.get("scale", 1.0))
    if op == "pool_noise":
        if pool is None:
            raise UsageError("this pair's noise comes from a pool; give the pool")
        return x + tile_noise(step["tiles"], x.shape[:2], pool)
    if op == "jpeg":
        return jpeg_numpy(np.clip(x, 0.0, 1.0).astype(np.float32), int(step["quality"]))
    if op == "clip":
        return np.clip(x, 0.0, 1.0)
    if op == "learned":
        return run_learned(x, step, learned)
    raise UsageError(f"unknown degradation step {op!r}; one of {', '.join(OPS)}")


def apply_steps(img: np.ndarray, steps: list[dict[str, Any]], pool: Any = None, learned: Any = None) -> np.ndarray:
    """Run ``steps`` on ``img`` (H, W, 3) float in [0, 1]; float32 result, not rounded. ``learned``:
    the loaded degrader of a ``learned`` step (:mod:`realsr.degrade.learned`)."""
    x = np.ascontiguousarray(img, dtype=np.float32)
    for step in steps:
        try:
            x = apply_step(x, step, pool, learned)
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError(f"malformed degradation step {step!r} ({e})") from None
    return x
