"""Real-noise patches: flat regions of real photos, whose pixel variation is the camera's noise
(METHODS.md 2b.4, the "Impressionism" recipe; optional GCBD-style local consistency check).

Patches are taken on a non-overlapping grid of the source at its own resolution and kept when the
BT.601 gray patch (0-255 scale) has variance below ``max_var`` and mean above ``min_mean``. They are
stored raw (the source's dtype); :func:`zero_mean` turns one into additive noise when injected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from realsr.color import rgb_to_gray
from realsr.images import as_rgb, to_float


@dataclass(frozen=True)
class NoiseParams:
    """Patch selection; defaults are Tencent/Real-SR's ``collect_noise.py`` for real photos (DPED).

    ``patch``/``stride``: grid (source px); ``max_var``: gray variance limit and ``min_mean``: gray
    mean floor, on the 0-255 scale (Real-SR: 20 and 50; its DF2K/Track-1 setting used mean 0);
    ``include_last``: also try the last grid position when it fits exactly (the official loop
    ``range(0, W - patch, stride)`` skips it); ``local``: side of the GCBD sub-patches (0 = off, as
    Real-SR), every sub-patch must satisfy ``|mean(q) - mean(p)| <= local_mean_tol * mean(p)`` and
    ``|var(q) - var(p)| <= local_var_tol * var(p)`` (GCBD, Chen et al. CVPR 2018: 0.1 and 0.25), which
    rejects gradients and faint texture the global variance lets through; ``max_per_image``: cap
    (0 = no cap; a random subset is kept).
    """

    patch: int = 256
    stride: int = 256
    max_var: float = 20.0
    min_mean: float = 50.0
    max_mean: float = 256.0
    include_last: bool = False
    local: int = 0
    local_mean_tol: float = 0.1
    local_var_tol: float = 0.25
    max_per_image: int = 0

    def __post_init__(self) -> None:
        if self.patch < 2 or self.stride < 1:
            raise ValueError("noise patch must be >= 2 px and stride >= 1")
        if self.local and not 2 <= self.local <= self.patch:
            raise ValueError("local sub-patch size must be between 2 and the patch size")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class NoisePatch:
    """One kept patch: ``image`` raw RGB crop (source dtype), top-left ``y``, ``x`` (source px), and
    its gray variance and mean (0-255 scale)."""

    image: np.ndarray
    y: int
    x: int
    gray_var: float
    gray_mean: float


def gray_255(img: np.ndarray) -> np.ndarray:
    """BT.601 gray on the 0-255 scale, as PIL's ``convert('L')`` for 8-bit RGB (integer weights
    19595/38470/7471 with rounding); 16-bit and float [0, 1] inputs give unrounded float values."""
    img = as_rgb(img)
    if img.dtype == np.uint8:
        x = img.astype(np.uint32)
        return ((x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16).astype(np.float64)
    scale = 255.0 / 65535.0 if img.dtype == np.uint16 else 255.0
    return rgb_to_gray(img[..., :3].astype(np.float64)) * scale


def _positions(size: int, p: NoiseParams) -> list[int]:
    end = size - p.patch + (1 if p.include_last else 0)
    return list(range(0, max(end, 0), p.stride))


def _locally_consistent(g: np.ndarray, p: NoiseParams) -> bool:
    q = p.local
    n = g.shape[0] // q
    sub = g[: n * q, : n * q].reshape(n, q, n, q)
    m, v = g.mean(), g.var()
    sm, sv = sub.mean(axis=(1, 3)), sub.var(axis=(1, 3))
    return bool(np.all(np.abs(sm - m) <= p.local_mean_tol * m) and np.all(np.abs(sv - v) <= p.local_var_tol * v))


def collect_noise(img: np.ndarray, params: NoiseParams = NoiseParams(),
                  rng: np.random.Generator | None = None) -> list[NoisePatch]:
    """Low-variance patches of ``img`` ((H, W, 3) RGB uint8/uint16, or gray (H, W)).

    Returns them in raster order (a random subset of ``max_per_image`` when capped, drawn with
    ``rng``); an image smaller than one patch gives none.
    """
    img = as_rgb(img)
    gray = gray_255(img)
    p = params
    out = []
    for y in _positions(img.shape[0], p):
        for x in _positions(img.shape[1], p):
            g = gray[y:y + p.patch, x:x + p.patch]
            v, m = float(g.var()), float(g.mean())
            if v < p.max_var and p.min_mean < m < p.max_mean and (not p.local or _locally_consistent(g, p)):
                out.append(NoisePatch(np.ascontiguousarray(img[y:y + p.patch, x:x + p.patch, :3]), y, x, v, m))
    if p.max_per_image and len(out) > p.max_per_image:
        rng = rng or np.random.default_rng(0)
        keep = np.sort(rng.choice(len(out), p.max_per_image, replace=False))
        out = [out[i] for i in keep]
    return out


def zero_mean(patch: np.ndarray) -> np.ndarray:
    """Additive noise from a stored patch: float in [0, 1] units of its dtype, each channel's spatial
    mean subtracted (Real-SR's ``noiseDataset``)."""
    x = to_float(patch).astype(np.float64)  # the mean in float64: a flat patch gives exact zeros
    return (x - x.mean(axis=(0, 1), keepdims=True)).astype(np.float32)
