"""Inference for any :class:`~realsr.train.models.SRNet`: tiles with blended overlaps, x8 self-ensemble,
device and precision choice, automatic back-off when the GPU runs out of memory.

The LR image stays on the CPU; tiles go to the device in batches and their outputs come back, so the
full image never needs to sit on the GPU. Tiles are evenly spaced, all of one size (the smallest
that covers the image with the fewest tiles of at most ``tile`` px), and overlap by at least
``overlap`` LR pixels. Each output pixel is a normalised weighted mean of the tiles covering it; a
tile's weight is 0 within ``overlap / 3`` LR pixels of its inner edges (edges on the image border do
not count) and ramps linearly to 1 over the next ``overlap / 3``. So every output pixel comes from
tile content at least ``overlap / 3`` LR pixels from a cut, and for a network whose receptive
radius is below that, tiled output equals untiled output up to float rounding. The overlap used is
raised to ``3 * model.receptive_radius`` where a network declares its radius.

Image-global parts of a network (SRResCGAN's noise estimate and projection) run once on the
assembled image through ``SRNet.finish``; self-ensemble runs the whole tiled pass on each of the 8
flips/rotations and averages the back-transformed outputs (the official "+" protocol).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from realsr import devices
from realsr.errors import RealsrError, UsageError
from realsr.images import as_rgb, from_float, to_float

from .models import SRNet

log = logging.getLogger("realsr.infer")

#: smallest tile (LR px) the out-of-memory back-off goes down to
MIN_TILE = 16


@dataclass(frozen=True)
class InferOptions:
    """``tile``: tile side in LR pixels (0: whole image in one piece); ``overlap``: LR pixels shared
    by neighbouring tiles; ``batch``: tiles per forward pass; ``ensemble``: x8 self-ensemble;
    ``device``: torch device string or "auto"; ``precision``: fp32, bf16, fp16 or "half" (bf16 where
    the GPU supports it, else fp16; fp32 on CPU)."""

    tile: int = 512
    overlap: int = 16
    batch: int = 1
    ensemble: bool = False
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.tile < 0 or self.overlap < 0 or self.batch < 1:
            raise UsageError("tile and overlap must be >= 0 and batch >= 1")
        if self.tile and self.overlap * 2 >= self.tile:
            raise UsageError(f"overlap ({self.overlap}) must be under half the tile size ({self.tile}): give a "
                             f"larger --tile or a smaller --overlap")
        if self.precision not in ("fp32", "bf16", "fp16", "half"):
            raise UsageError(f"unknown precision {self.precision!r} (fp32, bf16, fp16, half)")


class NonFiniteOutput(RealsrError):
    """The network produced NaN or inf (damaged weights, a diverged run, half-precision overflow)."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps if available, else cpu; other strings as torch reads
    them, checked to exist (:func:`realsr.devices.resolve_device`)."""
    return devices.resolve_device(spec, auto=("cuda", "mps"))


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device`` (half precision only on GPUs)."""
    if precision == "fp32" or device.type == "cpu" and precision == "half":
        return torch.float32
    if precision == "half":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def tile_grid(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """(size, starts) of the tiles along one axis of ``length`` pixels: the fewest tiles of at most
    ``tile`` pixels that cover it with neighbours sharing at least ``overlap`` pixels, all of one
    size (as small as that allows, so little is computed twice), evenly spaced."""
    if tile <= 0 or length <= tile:
        return length, [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (n - 1) * overlap) / n)
    return size, [(i * (length - size)) // (n - 1) for i in range(n)]


def tile_weights(start: int, size: int, length: int, overlap: int, scale: int) -> np.ndarray:
    """Blend weights (float32) of one tile's ``size * scale`` output pixels along one axis: 0 within
    ``overlap / 3`` LR px of a cut edge, rising linearly to 1 over the next ``overlap / 3``."""
    pos = start + (np.arange(size * scale) + 0.5) / scale  # output pixel centres in LR units
    inf = np.full_like(pos, np.inf)
    d = np.minimum(pos - start if start > 0 else inf, start + size - pos if start + size < length else inf)
    if overlap == 0:
        return np.ones_like(pos, dtype=np.float32)
    return np.clip((d - overlap / 3) / (overlap / 3), 0.0, 1.0).astype(np.float32)


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
    text = str(e).lower()
    # CUDA: OutOfMemoryError; CPU: MemoryError, or RuntimeError "DefaultCPUAllocator: can't allocate memory"
    return isinstance(e, (oom, MemoryError)) or "out of memory" in text or "can't allocate memory" in text


def _tiles(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    th, ys = tile_grid(h, tile, overlap)
    tw, xs = tile_grid(w, tile, overlap)
    for y in ys:
        for x in xs:
            yield y, x, th, tw


def run_tiled(model: SRNet, lr: torch.Tensor, tile: int, overlap: int, batch: int,
              device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One pass of ``model`` over ``lr`` (1, C, h, w) on the CPU, in the model's value range, tile by
    tile on ``device``; returns the finished output (1, C, s*h, s*w) float32 on the CPU."""
    s = model.scale
    _, _, h, w = lr.shape
    boxes = list(_tiles(h, w, tile, overlap))
    acc: torch.Tensor | None = None
    wsum = torch.zeros(1, 1, h * s, w * s)
    for i in range(0, len(boxes), batch):
        group = boxes[i:i + batch]
        x = torch.cat([lr[:, :, y:y + th, xx:xx + tw] for y, xx, th, tw in group]).to(device=device, dtype=dtype)
        with torch.no_grad():
            out = model.local_forward(x).float().cpu()
        if acc is None:
            acc = torch.zeros(1, out.shape[1], h * s, w * s)
        for j, (y, xx, th, tw) in enumerate(group):
            wy = torch.from_numpy(tile_weights(y, th, h, overlap, s))
            wx = torch.from_numpy(tile_weights(xx, tw, w, overlap, s))
            wt = (wy[:, None] * wx[None, :])[None, None]
            acc[:, :, y * s:(y + th) * s, xx * s:(xx + tw) * s] += out[j:j + 1] * wt
            wsum[:, :, y * s:(y + th) * s, xx * s:(xx + tw) * s] += wt
    assert acc is not None
    acc /= wsum
    with torch.no_grad():
        return model.finish(acc.to(dtype=torch.float32)).float()


def _dihedral(x: torch.Tensor, mode: int, inverse: bool = False) -> torch.Tensor:
    """Mode 0-7: rotate by 90 * (mode % 4) degrees, flipped left-right first when mode >= 4."""
    k = mode % 4
    if not inverse:
        x = x.flip(3) if mode >= 4 else x
        return torch.rot90(x, k, (2, 3))
    x = torch.rot90(x, -k, (2, 3))
    return x.flip(3) if mode >= 4 else x


@contextlib.contextmanager
def _model_on(model: SRNet, device: torch.device, dtype: torch.dtype) -> Iterator[SRNet]:
    """The model in eval mode on ``device`` in ``dtype``; its mode, device and dtype are restored after."""
    was_training = model.training
    first = next(iter(model.parameters()), None)
    home = None if first is None else (first.device, first.dtype)
    model.eval()
    try:
        yield model.to(device=device, dtype=dtype)
    finally:
        model.train(was_training)
        if home is not None:
            model.to(device=home[0], dtype=home[1])


def upscale_tensor(model: SRNet, lr: torch.Tensor, options: InferOptions = InferOptions(),
                   on_backoff: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Super-resolve ``lr`` (1, C, h, w) float32 RGB in [0, 1] on the CPU; returns (1, C, s*h, s*w)
    float32 in [0, 1] (clamped) on the CPU; an image under ``model.min_input_size`` px per side is a
    :class:`~realsr.errors.RealsrError`. Out-of-memory on the device halves the tile batch, then
    the tile size (down to :data:`MIN_TILE`), and retries; ``on_backoff(tile, batch)`` is told."""
    if min(lr.shape[-2:]) < model.min_input_size:
        raise RealsrError(f"image {lr.shape[-1]}x{lr.shape[-2]} px is too small for {model.arch} (at least "
                          f"{model.min_input_size} px per side)")
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.precision, device)
    x = lr.float() * model.pixel_range
    tile, batch = options.tile, options.batch
    overlap = max(options.overlap, 3 * (model.receptive_radius or 0))
    if tile and 2 * overlap >= tile:
        overlap = options.overlap
    _, _, h, w = x.shape
    # fp32 means fp32: without this, cuDNN runs fp32 convolutions in TF32 on an A100/H100
    exact = devices.full_fp32() if dtype == torch.float32 else contextlib.nullcontext()
    with _model_on(model, device, dtype), exact:
        while True:
            try:
                modes = range(8) if options.ensemble else range(1)
                acc = None
                for m in modes:
                    y = _dihedral(run_tiled(model, _dihedral(x, m), tile, overlap, batch, device, dtype), m, True)
                    acc = y if acc is None else acc + y
                assert acc is not None
                if not bool(torch.isfinite(acc).all()):  # clamp would turn NaN into black silently
                    hint = "; try --precision fp32" if dtype != torch.float32 else " (damaged or diverged weights?)"
                    raise NonFiniteOutput(f"the model's output is not finite (NaN or inf){hint}")
                return (acc / len(modes) / model.pixel_range).clamp(0.0, 1.0)
            except Exception as e:  # noqa: BLE001 -- only out-of-memory is handled, the rest re-raised
                if not _is_oom(e) or (batch == 1 and 0 < tile <= MIN_TILE):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if batch > 1:
                    batch //= 2
                else:
                    tile = max(MIN_TILE, (tile or max(h, w)) // 2)
                if overlap * 2 >= tile:
                    raise UsageError(f"out of memory even with {tile}-px tiles and overlap {overlap}; "
                                     "use a smaller --overlap or another device") from None
                log.warning("out of memory on %s: retrying with tile %d, batch %d", device, tile, batch)
                if on_backoff:
                    on_backoff(tile, batch)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float32 [0, 1] from an RGB, gray or RGBA uint8/uint16 (or float [0, 1]) array
    (:func:`realsr.images.as_rgb` refuses other arrays with a :class:`ValueError`)."""
    return torch.from_numpy(np.ascontiguousarray(to_float(as_rgb(img)).transpose(2, 0, 1)))[None]


def from_tensor(y: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """(H, W, C) array of ``dtype`` (uint8 or uint16) from a (1, C, H, W) tensor in [0, 1]."""
    return from_float(y[0].permute(1, 2, 0).numpy(), dtype)


def upscale_image(model: SRNet, img: np.ndarray, options: InferOptions = InferOptions()) -> np.ndarray:
    """Super-resolve an RGB (H, W, 3) uint8/uint16 (or gray, or float [0, 1]) image; returns float32
    [0, 1] (sH, sW, 3)."""
    y = upscale_tensor(model, to_tensor(img), options)
    return y[0].permute(1, 2, 0).numpy()
