"""Fusion of the outputs of several SR models by the luminance rule of the Samsung-SLSI-MSL NTIRE 2020
entry (Ren, Kheradmand, El-Khamy, Wang, Bai, Lee, CVPRW 2020, "Real-World Super-Resolution using
Generative Adversarial Networks"; docs/methods/samsung.md).

What the paper's abstract states: an *ensemble of GANs trained with different adversarial
objectives* (here: one with a standard discriminator, one with a relativistic one) that "uses cues
from the image luminance and adjusts to generate better HR images at low-illumination". The exact
rule was not found in any text this project could read (see samsung.md, "Sources"), so the rule
below is **[INFERENCE]**, the most plausible reading of "Y-median rule with alpha, beta, gamma", and
every constant of it is a parameter:

    m = median over the pixels of Y(reference)          # one number per image
    w = alpha  if m < gamma  else  beta                 # dark image: alpha; otherwise: beta
    fused = sum_k w_k * image_k                         # per-pixel weighted average, clipped to [0, 1]

- ``Y`` is BT.601 luma on the 0-255 scale: ``"studio"`` (default) is MATLAB ``rgb2ycbcr``'s Y, in
  [16, 235], the Y of ``realsr eval`` (METHODS.md 7.1); ``"full"`` is ``0.299 R + 0.587 G + 0.114 B``
  times 255, in [0, 255]. ``gamma`` is on that scale. [INFERENCE: the convention is not stated.]
- The median is numpy's (the mean of the two middle values for an even count).
- ``reference``: the image whose Y gives ``m``. By default the mean of the images being fused
  (``source="mean"``); ``source="first"`` takes the first image; an explicit ``reference`` array
  (e.g. the LR input: a median does not depend on the scale) overrides both. [INFERENCE]
- ``alpha`` / ``beta``: for two images a number ``a`` means the weights ``(a, 1 - a)``; for ``n``
  images a sequence of ``n`` weights summing to 1. Order the images as the recipe does: first the
  standard-discriminator GAN, then the relativistic one. Defaults [INFERENCE]: ``alpha = 1`` (a dark
  image takes the standard GAN's output alone: the relativistic GAN's stronger high-frequency
  detail amplifies the noise that low-light images carry), ``beta = 0.5`` (otherwise the plain
  average of the two), ``gamma = 64`` (a quarter of the 8-bit range).

Images are float RGB in [0, 1]: NumPy ``(H, W, 3)`` arrays, or torch tensors ``(3, H, W)`` or
``(B, 3, H, W)`` (one median and one weight set per batch item). The image functions are pure:
nothing is read, written or changed in place. :func:`fuse_folders` is the file side (``realsr fuse``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("realsr.fuse")

#: MATLAB rgb2ycbcr luma weights (Y on the 0-255 scale, plus 16): "studio" swing
STUDIO_WEIGHTS = (65.481, 128.553, 24.966)
#: full-range BT.601 luma weights times 255 (no offset)
FULL_WEIGHTS = (0.299 * 255, 0.587 * 255, 0.114 * 255)
LUMA_CHOICES = ("studio", "full")
SOURCE_CHOICES = ("mean", "first")

# [INFERENCE] defaults; see the module docstring and docs/methods/samsung.md
DEFAULT_ALPHA = 1.0
DEFAULT_BETA = 0.5
DEFAULT_GAMMA = 64.0


@dataclass(frozen=True)
class FusionRule:
    """The constants of the Y-median rule ([INFERENCE], see the module docstring).

    ``alpha``: weights when the reference's median Y is below ``gamma`` (dark image); ``beta``:
    weights otherwise; a number ``a`` means ``(a, 1 - a)`` for two images. ``gamma``: threshold on
    the median Y, 0-255 scale of the ``luma`` convention (``studio`` or ``full``). ``source``: the
    reference when none is given, ``mean`` of the images or the ``first`` one."""

    alpha: float | tuple[float, ...] = DEFAULT_ALPHA
    beta: float | tuple[float, ...] = DEFAULT_BETA
    gamma: float = DEFAULT_GAMMA
    luma: str = "studio"
    source: str = "mean"
    #: sum-to-one tolerance of a weight vector
    tolerance: float = field(default=1e-6, repr=False)

    def __post_init__(self) -> None:
        if self.luma not in LUMA_CHOICES:
            raise ValueError(f"luma must be one of {', '.join(LUMA_CHOICES)}, not {self.luma!r}")
        if self.source not in SOURCE_CHOICES:
            raise ValueError(f"source must be one of {', '.join(SOURCE_CHOICES)}, not {self.source!r}")
        if not math.isfinite(float(self.gamma)):
            raise ValueError(f"gamma must be a finite number, not {self.gamma!r}")
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            vals = [v] if np.isscalar(v) else list(v)
            if not vals or not all(isinstance(x, (int, float, np.number)) and math.isfinite(float(x)) for x in vals):
                raise ValueError(f"{name} must be a finite number or a list of finite numbers, not {v!r}")
            every = vals + [1.0 - float(vals[0])] if len(vals) == 1 else vals  # a means (a, 1 - a)
            if any(not 0.0 <= float(x) <= 1.0 for x in every):
                log.warning("%s %s puts weights outside [0, 1]: the fusion extrapolates past the inputs "
                            "(over-sharpening, halos) and is then clipped to [0, 1]", name, v)

    def weights(self, dark: bool, n: int) -> tuple[float, ...]:
        """The ``n`` weights of one regime (``alpha`` when ``dark``, else ``beta``)."""
        return expand_weights(self.alpha if dark else self.beta, n, "alpha" if dark else "beta", self.tolerance)


def expand_weights(w: float | Sequence[float], n: int, name: str = "weights", tolerance: float = 1e-6) -> tuple[float, ...]:
    """``w`` as ``n`` weights summing to 1: a number ``a`` is ``(a, 1 - a)`` for ``n == 2``; a
    sequence must have ``n`` entries summing to 1 (within ``tolerance``). ValueError otherwise."""
    if n < 2:
        raise ValueError(f"fusion needs at least 2 images, got {n}")
    if np.isscalar(w):
        if n != 2:
            raise ValueError(f"{name}: a single number gives the weights of 2 images; give {n} weights for {n} images")
        a = float(w)
        return (a, 1.0 - a)
    vals = tuple(float(x) for x in w)
    if len(vals) == 1 and n == 2:
        return (vals[0], 1.0 - vals[0])
    if len(vals) != n:
        raise ValueError(f"{name}: {len(vals)} weights for {n} images")
    if abs(sum(vals) - 1.0) > tolerance:
        raise ValueError(f"{name}: the weights sum to {sum(vals):g}, not 1")
    return vals


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def luma(img: Any, convention: str = "studio") -> Any:
    """BT.601 luma on the 0-255 scale of float RGB in [0, 1]: NumPy ``(H, W, 3)`` -> ``(H, W)``
    (float64), torch ``(..., 3, H, W)`` -> ``(..., H, W)``. ``studio``: MATLAB rgb2ycbcr's Y in
    [16, 235]; ``full``: ``255 (0.299 R + 0.587 G + 0.114 B)``."""
    if convention not in LUMA_CHOICES:
        raise ValueError(f"luma must be one of {', '.join(LUMA_CHOICES)}, not {convention!r}")
    w = STUDIO_WEIGHTS if convention == "studio" else FULL_WEIGHTS
    off = 16.0 if convention == "studio" else 0.0
    if _is_torch(img):
        if img.ndim < 3 or img.shape[-3] != 3:
            raise ValueError(f"expected a (..., 3, H, W) tensor, got shape {tuple(img.shape)}")
        x = img.double()
        return w[0] * x[..., 0, :, :] + w[1] * x[..., 1, :, :] + w[2] * x[..., 2, :, :] + off
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {a.shape}")
    a = a.astype(np.float64, copy=False)
    return a[..., 0] * w[0] + a[..., 1] * w[1] + a[..., 2] * w[2] + off


def median_y(img: Any, convention: str = "studio") -> Any:
    """Median of the luma (0-255 scale) of one image: a float for a NumPy ``(H, W, 3)`` array or a
    ``(3, H, W)`` tensor; a float64 tensor ``(B,)`` for a ``(B, 3, H, W)`` batch. numpy's median
    (mean of the two middle values for an even pixel count) in both cases."""
    y = luma(img, convention)
    if _is_torch(y):
        flat = y.reshape(*y.shape[:-2], -1)
        v = flat.sort(dim=-1).values
        n = v.shape[-1]
        m = (v[..., (n - 1) // 2] + v[..., n // 2]) / 2
        return float(m) if m.ndim == 0 else m
    return float(np.median(y))


def _check_images(images: Sequence[Any]) -> None:
    if len(images) < 2:
        raise ValueError(f"fusion needs at least 2 images, got {len(images)}")
    kinds = {_is_torch(x) for x in images}
    if len(kinds) > 1:
        raise ValueError("mix of NumPy arrays and torch tensors")
    shapes = [tuple(x.shape) for x in images]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("images differ in size: " + ", ".join("x".join(map(str, s)) for s in shapes))


def fuse_info(images: Sequence[Any], rule: FusionRule = FusionRule(), reference: Any = None) -> tuple[Any, dict[str, Any]]:
    """(fused image, decision) by the Y-median rule. ``decision``: ``median_y`` (float, or a list per
    batch item), ``dark`` (median < gamma; bool or list) and ``weights`` (tuple, or list of tuples).

    ``images``: 2 or more float RGB images in [0, 1] of one shape (NumPy ``(H, W, 3)`` or torch
    ``(3, H, W)`` / ``(B, 3, H, W)``). ``reference``: the image whose median Y decides (any size, same
    kind and layout); None: ``rule.source`` (the mean of ``images`` or the first). The result has
    the first image's float dtype (NumPy: float64 for a non-float first image)."""
    _check_images(images)
    n = len(images)
    if reference is None:
        reference = images[0] if rule.source == "first" else _mean(images)
    m = median_y(reference, rule.luma)
    if _is_torch(images[0]):
        import torch

        first = images[0]
        if first.ndim == 4:
            ms = [float(v) for v in (m if _is_torch(m) else [m] * first.shape[0])]
            if len(ms) != first.shape[0]:
                raise ValueError(f"reference has {len(ms)} images for a batch of {first.shape[0]}")
            ws = [rule.weights(v < rule.gamma, n) for v in ms]
            wt = torch.tensor(ws, dtype=torch.float64, device=first.device)  # (B, n)
            out = sum(wt[:, k].view(-1, 1, 1, 1) * images[k].double() for k in range(n))
            info = {"median_y": ms, "dark": [v < rule.gamma for v in ms], "weights": ws}
        else:
            ws1 = rule.weights(m < rule.gamma, n)
            out = sum(ws1[k] * images[k].double() for k in range(n))
            info = {"median_y": float(m), "dark": m < rule.gamma, "weights": ws1}
        return out.clamp(0, 1).to(first.dtype), info
    ws1 = rule.weights(m < rule.gamma, n)
    acc = np.zeros(np.shape(images[0]), np.float64)
    for k in range(n):
        acc += ws1[k] * np.asarray(images[k], np.float64)
    dtype = np.asarray(images[0]).dtype
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
    return np.clip(acc, 0, 1).astype(dtype), {"median_y": m, "dark": m < rule.gamma, "weights": ws1}


def fuse(images: Sequence[Any], rule: FusionRule = FusionRule(), reference: Any = None) -> Any:
    """The fused image of :func:`fuse_info` (float RGB in [0, 1], the first image's layout)."""
    return fuse_info(images, rule, reference)[0]


def _mean(images: Sequence[Any]) -> Any:
    if _is_torch(images[0]):
        return sum(x.double() for x in images) / len(images)
    return sum(np.asarray(x, np.float64) for x in images) / len(images)


# ----------------------------------------------------------------------------------- folders

FUSE_JSON = "fuse.json"
#: hidden record of the names a fusion in progress writes (removed when fuse.json is written)
FUSE_RUNNING = ".fuse-running.json"
#: an HR reference may be up to this many pixels larger than the SR images per side (a mod-crop)
_HR_SLACK = 16


def _image_size(path: Any) -> tuple[int, int]:
    """(width, height) of an image file from its header (PIL), decoding it only when PIL cannot."""
    from PIL import Image

    from realsr.errors import ImageReadError
    from realsr.images import read_image

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except Exception:  # not a PIL format (RAW ...) or a damaged header: the full reader decides
        a = read_image(path)
        return a.shape[1], a.shape[0]


def _stems(folder: Any, role: str) -> dict[str, Any]:
    from pathlib import Path

    from realsr.errors import UsageError

    from .evaluate import image_files

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{role}: not a folder", folder)
    files = image_files(folder)
    if not files:
        raise UsageError(f"{role}: no images found", folder)
    out: dict[str, Any] = {}
    for p in files:
        if p.stem in out:
            raise UsageError(f"{role}: two images named {p.stem!r} ({out[p.stem].name}, {p.name})", folder)
        out[p.stem] = p
    return out


def _few(names: Sequence[str], k: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def fuse_folders(inputs: Sequence[Any], out: Any, rule: FusionRule = FusionRule(), reference: Any = None,
                 hr: Any = None, crop_border: int = 4, overwrite: bool = False,
                 progress: Any = None) -> dict[str, Any]:
    """Fuse the images of the ``inputs`` folders (outputs of 2+ models, paired by file stem) into
    ``out/<name>.png`` by ``rule``; returns and writes ``out/fuse.json`` (per image: the median Y,
    the regime, the weights; with ``hr``: PSNR/SSIM (Y, ``crop_border``) of every input and of the
    fused image, and their means).

    ``reference``: a folder of images (any size, e.g. the LR inputs) whose median Y decides, by stem.
    Names, sizes (from the file headers) and weights are checked before anything is written, each
    failure as one :class:`~realsr.errors.UsageError` naming the file: missing or extra names,
    images of different sizes, an HR that is not the SR size (up to 15 px larger is mod-cropped),
    ``out`` being an input, the reference or the HR folder, an ``out`` that already holds a fusion
    (unless ``overwrite``). A file damaged past its header stops the run at that image
    (:class:`~realsr.errors.ImageReadError`; no fuse.json is written, so a re-run needs no
    ``overwrite``: the names being written are recorded in :data:`FUSE_RUNNING`). Images in ``out``
    that the fusion would replace and that no run of ours wrote are refused unless ``overwrite``.
    Outputs have the bit depth of the
    first input's image."""
    from pathlib import Path

    from realsr.atomic import write_json_atomic
    from realsr.errors import UsageError
    from realsr.images import from_float, read_image, to_float, write_png
    from realsr.manifest import read_json_mapping

    from . import metrics

    if len(inputs) < 2:
        raise UsageError(f"fusion needs at least 2 input folders, got {len(inputs)}")
    out = Path(out)
    dirs = [Path(d) for d in inputs]
    roles = [f"input {k + 1}" for k in range(len(dirs))]
    extra = ((reference, "the reference folder"), (hr, "the HR folder"))
    given = list(zip(dirs, roles)) + [(Path(f), r) for f, r in extra if f is not None]
    for d, role in given:  # writing there would overwrite the images being fused or scored against
        if d.exists() and out.exists() and d.resolve() == out.resolve():
            raise UsageError(f"the output folder is {role}; write the fusion elsewhere", out)
    for k, d in enumerate(dirs):
        if any(d.resolve() == e.resolve() for e in dirs[:k] if d.exists() and e.exists()):
            raise UsageError(f"{roles[k]} is given twice", d)
    try:
        n = len(dirs)
        rule.weights(True, n), rule.weights(False, n)
    except ValueError as e:
        raise UsageError(str(e)) from None
    stems = [_stems(d, r) for d, r in zip(dirs, roles)]
    names = sorted(stems[0])
    for k in range(1, len(dirs)):
        missing = set(names) - set(stems[k])
        extra = set(stems[k]) - set(names)
        if missing:
            raise UsageError(f"{roles[k]} lacks {len(missing)} of the {len(names)} images of input 1: {_few(missing)}", dirs[k])
        if extra:
            raise UsageError(f"{roles[k]} has {len(extra)} images that input 1 lacks: {_few(extra)}", dirs[k])
    extras: dict[str, dict[str, Any]] = {}
    for role, folder in (("reference", reference), ("HR", hr)):
        if folder is None:
            continue
        st = _stems(folder, role)
        missing = set(names) - set(st)
        if missing:
            raise UsageError(f"{role} folder lacks {len(missing)} of the {len(names)} images: {_few(missing)}", folder)
        extras[role] = st
    # sizes, from the headers: every input the same size per name, the HR that size (or a mod-crop)
    sizes: dict[str, tuple[int, int]] = {}
    for name in names:
        w0, h0 = _image_size(stems[0][name])
        sizes[name] = (w0, h0)
        for k in range(1, len(dirs)):
            w, h = _image_size(stems[k][name])
            if (w, h) != (w0, h0):
                raise UsageError(f"{w}x{h} but {stems[0][name].name} of input 1 is {w0}x{h0}: the images "
                                 "to fuse must be the same size", stems[k][name])
        if "HR" in extras:
            W, H = _image_size(extras["HR"][name])
            if not (w0 <= W < w0 + _HR_SLACK and h0 <= H < h0 + _HR_SLACK):
                raise UsageError(f"HR {W}x{H} does not fit the SR size {w0}x{h0}", extras["HR"][name])
            if 2 * crop_border >= min(w0, h0):
                raise UsageError(f"image {name} ({w0}x{h0}) is too small for crop border {crop_border}", stems[0][name])
    if (out / FUSE_JSON).exists() and not overwrite:
        raise UsageError(f"the output folder already holds a fusion ({FUSE_JSON}); use --overwrite", out)
    # images this fusion would replace that no run of ours wrote (an interrupted run lists its names
    # in the marker, removed when fuse.json is written) are someone else's
    marker = out / FUSE_RUNNING
    listed = (read_json_mapping(marker) or {}).get("names")
    ours = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    if not overwrite and not (out / FUSE_JSON).exists():
        clash = [n for n in names if (out / f"{n}.png").exists() and n not in ours]
        if clash:
            raise UsageError(f"the output folder already holds {len(clash)} image(s) this fusion would replace "
                             f"({_few(clash)}) and no {FUSE_JSON}; use another -o (or --overwrite to replace them)", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"names": sorted(ours | set(names))})  # an earlier interrupted run's names stay ours

    def scores(img: np.ndarray, ref: np.ndarray) -> dict[str, float]:
        d = {"psnr": metrics.psnr(img, ref, crop_border), "ssim": metrics.ssim(img, ref, crop_border)}
        return {k: (v if math.isfinite(v) else None) for k, v in d.items()}  # identical images: inf

    records = []
    for name in names:
        if progress:
            progress(name)
        raw = [read_image(stems[k][name]) for k in range(len(dirs))]
        ref = to_float(read_image(extras["reference"][name])) if "reference" in extras else None
        fused_f, info = fuse_info([to_float(a) for a in raw], rule, ref)
        fused = from_float(fused_f, raw[0].dtype)
        write_png(out / f"{name}.png", fused)
        rec: dict[str, Any] = {"name": name, **info, "weights": list(info["weights"])}
        if "HR" in extras:
            h_img = read_image(extras["HR"][name])[: raw[0].shape[0], : raw[0].shape[1]]
            rec["scores"] = {"fused": scores(from_float(fused_f, h_img.dtype), h_img),
                             **{f"input{k + 1}": scores(raw[k], h_img) for k in range(len(dirs))}}
        records.append(rec)
    report: dict[str, Any] = {
        "rule": {"alpha": rule.alpha if np.isscalar(rule.alpha) else list(rule.alpha),
                 "beta": rule.beta if np.isscalar(rule.beta) else list(rule.beta),
                 "gamma": rule.gamma, "luma": rule.luma,
                 "median_of": "reference" if reference is not None else rule.source,
                 "inference": "Y-median rule: weights alpha if median(Y) < gamma else beta ([INFERENCE], "
                              "docs/methods/samsung.md)"},
        "inputs": [str(d) for d in dirs], "reference": None if reference is None else str(reference),
        "hr": None if hr is None else str(hr), "crop_border": crop_border if hr is not None else None,
        "images": records,
        "counts": {"fused": len(records), "dark": sum(bool(r["dark"]) for r in records)},
    }
    if hr is not None:
        keys = ["fused", *(f"input{k + 1}" for k in range(len(dirs)))]
        report["mean"] = {k: {m: _finite_mean([r["scores"][k][m] for r in records]) for m in ("psnr", "ssim")}
                          for k in keys}
    write_json_atomic(out / FUSE_JSON, report)
    marker.unlink(missing_ok=True)
    return report


def _finite_mean(vals: list[float | None]) -> float | None:
    return float(np.mean(vals)) if all(v is not None and math.isfinite(v) for v in vals) else None
