"""Training data: pair datasets or HR folders, random aligned crops, flips/rotations, a resumable
sample order that is the same on any number of processes, and on-the-fly degradation on the device.

Sample order. The trainer consumes *global sample numbers* ``g = 0, 1, 2, ...``: iteration ``it``,
micro-batch ``a`` (of ``accumulate``) and process ``r`` (of ``world``) take the numbers
``it*B + a*B/accumulate + r*b + [0, b)`` with ``B`` the effective batch and ``b = B/(accumulate*world)``.
Sample ``g`` is image ``perm_e[g mod N]`` of epoch ``e = g div N`` (a seeded permutation per epoch)
with its crop and flips drawn from a generator seeded by ``(seed, g)``. So a run's data depend only on
the seed and the iteration: 2 processes see exactly the samples 1 process sees with the doubled batch,
and a resumed run continues with the very samples the interrupted one would have drawn.

Values: crops are float32 RGB in [0, 1] (8-bit data / 255, 16-bit / 65535), shaped (3, H, W).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from realsr.errors import ImageReadError, UsageError
from realsr.images import read_image, to_float

from .evaluate import find_pairs, fit_hr, image_files

log = logging.getLogger("realsr.train")


@dataclass
class Item:
    """One training image: HR (and LR) as paths, or decoded arrays when held in memory."""

    name: str
    hr: Any
    lr: Any = None


def _data_folder(folder: str | os.PathLike, scale: int, what: str) -> Path:
    """``folder`` as a Path; :class:`UsageError` when it is missing or its ``manifest.json`` states
    another scale."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{what} folder not found", folder)
    try:
        ms = int(json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["scale"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder
    if ms != scale:
        raise UsageError(f"scale mismatch: the {what} is x{ms} (manifest.json) but the config's scale is {scale}", folder)
    return folder


def load_items(folder: str | os.PathLike, scale: int, patch_size: int, paired: bool, in_memory: bool) -> list[Item]:
    """The usable training images of ``folder``.

    ``paired``: a pair dataset (``HR/`` + ``LR/``), each pair checked to be exactly ``scale`` x (HR
    at most ``scale - 1`` px larger is modcropped). Otherwise HR images only: ``folder/HR`` when it
    exists, else the images in ``folder``. Unreadable images and images smaller than the crop are
    skipped with a warning; no usable image at all is a :class:`UsageError`, as is a dataset whose
    ``manifest.json`` states another scale.
    """
    folder = _data_folder(folder, scale, "training data")
    items: list[Item] = []
    skipped: list[str] = []
    if paired:
        if not (folder / "HR").is_dir() or not (folder / "LR").is_dir():
            raise UsageError("a pair dataset needs HR/ and LR/ folders (or set data.degradation to degrade HR images on the fly)", folder)
        pairs = find_pairs(folder)
        for p in pairs:
            if p.problem:
                skipped.append(f"{p.name}: {p.problem}")
                continue
            try:
                lr, hr = read_image(p.lr), read_image(p.hr)
                hr = fit_hr(hr, lr.shape, scale, "the config's scale")
            except ImageReadError as e:
                skipped.append(f"{p.name}: {e}")
                continue
            except ValueError as e:
                raise UsageError(f"scale mismatch in pair {p.name}: {e}", folder) from None
            if min(hr.shape[:2]) < patch_size:
                skipped.append(f"{p.name}: smaller than the {patch_size}px crop")
                continue
            items.append(Item(p.name, hr, lr) if in_memory else Item(p.name, p.hr, p.lr))
    else:
        src = folder / "HR" if (folder / "HR").is_dir() else folder
        for path in image_files(src):
            try:
                hr = read_image(path)
            except ImageReadError as e:
                skipped.append(f"{path.name}: {e}")
                continue
            if min(hr.shape[:2]) < patch_size:
                skipped.append(f"{path.name}: smaller than the {patch_size}px crop")
                continue
            items.append(Item(path.stem, hr) if in_memory else Item(path.stem, path))
    for s in skipped:
        log.warning("training image skipped: %s", s)
    if not items:
        raise UsageError(f"no usable training images ({len(skipped)} skipped)", folder)
    return items


def augment(arrays: list[np.ndarray], hflip: bool, vflip: bool, transpose: bool) -> list[np.ndarray]:
    """BasicSR's ``augment``: the same flips and transpose on every (H, W, C) array."""
    out = []
    for a in arrays:
        if hflip:
            a = a[:, ::-1]
        if vflip:
            a = a[::-1]
        if transpose:
            a = a.transpose(1, 0, 2)
        out.append(a)
    return out


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(to_float(a).transpose(2, 0, 1)))


class CropDataset(torch.utils.data.Dataset):
    """Sample ``g`` -> ``{"hr": (3, P, P)[, "lr": (3, P/s, P/s)], "index": g}`` (see module doc)."""

    def __init__(self, items: list[Item], scale: int, patch_size: int, seed: int, flip: bool = True, rotate: bool = True):
        self.items, self.scale, self.patch, self.seed = items, scale, patch_size, seed
        self.flip, self.rotate = flip, rotate
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # samples are unbounded; the sampler decides which ones
        return 2**62

    def image_index(self, g: int) -> int:
        n = len(self.items)
        epoch = g // n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 7, epoch]).permutation(n))
        return int(self._perm[1][g % n])

    def __getitem__(self, g: int) -> dict[str, Any]:
        item = self.items[self.image_index(g)]
        rng = np.random.default_rng([self.seed, 11, g])
        hr = item.hr if isinstance(item.hr, np.ndarray) else read_image(item.hr)
        lr = item.lr if (item.lr is None or isinstance(item.lr, np.ndarray)) else read_image(item.lr)
        s, p = self.scale, self.patch
        if lr is not None:
            hr = fit_hr(hr, lr.shape, s)
            lp = p // s
            y = int(rng.integers(lr.shape[0] - lp + 1))
            x = int(rng.integers(lr.shape[1] - lp + 1))
            crops = [hr[y * s:(y + lp) * s, x * s:(x + lp) * s], lr[y:y + lp, x:x + lp]]
        else:
            y = int(rng.integers((hr.shape[0] - p) // s + 1)) * s
            x = int(rng.integers((hr.shape[1] - p) // s + 1)) * s
            crops = [hr[y:y + p, x:x + p]]
        flips = rng.random(3) < 0.5
        crops = augment(crops, self.flip and flips[0], self.rotate and flips[1], self.rotate and flips[2])
        out = {"hr": _chw(crops[0]), "index": g}
        if lr is not None:
            out["lr"] = _chw(crops[1])
        return out


class SampleOrder(torch.utils.data.Sampler):
    """Batches of global sample numbers for one process, from ``start_iteration`` on, forever."""

    def __init__(self, batch_size: int, accumulate: int, rank: int, world: int, start_iteration: int = 0):
        if batch_size % (accumulate * world):
            raise UsageError(f"data.batch_size ({batch_size}) must be a multiple of optim.accumulate x processes "
                             f"({accumulate} x {world})")
        self.B, self.accumulate, self.rank, self.world = batch_size, accumulate, rank, world
        self.b = batch_size // (accumulate * world)
        self.start = start_iteration

    def __iter__(self) -> Iterator[list[int]]:
        it = self.start
        while True:
            for a in range(self.accumulate):
                base = it * self.B + a * (self.B // self.accumulate) + self.rank * self.b
                yield list(range(base, base + self.b))
            it += 1

    def __len__(self) -> int:
        return 2**62


def make_loader(dataset: CropDataset, order: SampleOrder, workers: int, prefetch: int, pin: bool) -> torch.utils.data.DataLoader:
    """A DataLoader over ``order`` with worker processes, pinned memory and prefetching."""
    kw: dict[str, Any] = {}
    if workers > 0:
        kw = {"prefetch_factor": prefetch, "persistent_workers": True}
    return torch.utils.data.DataLoader(dataset, batch_sampler=order, num_workers=workers, pin_memory=pin, **kw)


# ------------------------------------------------------------------------------------ validation
@dataclass
class ValPair:
    name: str
    lr: np.ndarray
    hr: np.ndarray


def load_val(folder: str | os.PathLike, scale: int, max_images: int = 0, crop: int = 0) -> list[ValPair]:
    """Validation pairs of a pair dataset (``HR/`` + ``LR/``), optionally centre-cropped to ``crop``
    HR pixels per side (a multiple of ``scale``) and limited to ``max_images``. Unreadable pairs,
    images without a partner and pairs too small to score (HR under ``2 * scale + 11`` px per side)
    are skipped with a warning; none left is a :class:`UsageError`. A scale mismatch is one too."""
    folder = _data_folder(folder, scale, "validation data")
    out = []
    for p in find_pairs(folder):
        if p.problem:
            log.warning("validation image skipped: %s: %s", p.name, p.problem)
            continue
        try:
            lr, hr = read_image(p.lr), read_image(p.hr)
            hr = fit_hr(hr, lr.shape, scale, "the config's scale")
        except ImageReadError as e:
            log.warning("validation image skipped: %s", e)
            continue
        except ValueError as e:
            raise UsageError(f"scale mismatch in validation pair {p.name}: {e}", folder) from None
        if crop:
            lc = max(1, crop // scale)
            h, w = lr.shape[:2]
            y, x = max(0, (h - lc) // 2), max(0, (w - lc) // 2)
            lr = lr[y:y + lc, x:x + lc]
            hr = hr[y * scale:(y + lr.shape[0]) * scale, x * scale:(x + lr.shape[1]) * scale]
        if min(hr.shape[:2]) - 2 * scale < 11:  # the eval protocol: border = scale, 11x11 SSIM window
            log.warning("validation image skipped: %s: HR %dx%d is too small to score (at least %d px per side: "
                        "the %d-px border and the 11-px SSIM window)", p.name, hr.shape[1], hr.shape[0],
                        2 * scale + 11, scale)
            continue
        out.append(ValPair(p.name, lr, hr))
        if max_images and len(out) >= max_images:
            break
    if not out:
        raise UsageError("no usable validation pairs", folder)
    return out


# ------------------------------------------------------------------------- on-the-fly degradation
class OnlineDegradation:
    """Degrades a batch of HR crops (float [0,1] on the training device) into LR crops, with the
    batched operators of :mod:`realsr.degrade.ops`; random draws depend only on (seed, iteration,
    micro-batch, rank), so a resumed run draws what the uninterrupted one would (with the same number of
processes and accumulation steps; another layout gives the same crops but other degradations)."""

    def __init__(self, mode: str, scale: int, seed: int, device: torch.device, pool: str | None = None,
                 pool_noise: bool = True, params: dict | None = None, quantize: bool = True):
        from realsr.degrade import ops
        from realsr.degrade.recipes import ClassicParams, HighOrderParams

        self.ops, self.mode, self.scale, self.seed, self.device, self.quantize = ops, mode, scale, seed, device, quantize
        params = dict(params or {})
        self.pool = self.bank = None
        try:
            if mode == "classic":
                self.params = ClassicParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
            elif mode == "highorder":
                self.params = HighOrderParams.from_overrides(params)
            elif params:
                raise ValueError(f"mode {mode} takes no params")
        except (TypeError, ValueError) as e:
            raise UsageError(f"config data.degradation.params: {e}") from None
        if mode == "pool":
            from realsr.degrade.pool import Pool

            self.pool = Pool.load(pool)
            if self.pool.scale != scale:
                raise UsageError(f"scale mismatch: the pool is x{self.pool.scale} but the config's scale is {scale}", pool)
            if not self.pool.kernels:
                raise UsageError("the pool has no kernels", pool)
            if pool_noise:
                self.bank = ops.NoiseBank(self.pool, device)

    def __call__(self, hr: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, 13, *key])
        # pool noise crops are drawn by NoiseBank with CPU generators; classic/highorder noise on the device
        gen = torch.Generator(device="cpu" if self.mode == "pool" else hr.device)
        gen.manual_seed(int(rng.integers(2**62)))
        s = self.scale
        h, w = hr.shape[-2:]
        with torch.autocast(hr.device.type, enabled=False):
            x = hr.float()
            if self.mode == "bicubic":
                lr = self.ops.resize(x, (h // s, w // s), "bicubic", True)
            elif self.mode == "pool":
                lr = self.ops.random_pool(x, s, self.pool, self.bank, rng, gen)
            elif self.mode == "classic":
                lr = self.ops.random_classic(x, s, self.params, rng, gen)
            else:
                lr = self.ops.random_highorder(x, s, self.params, rng, gen)
            lr = lr.clamp(0, 1)
            if self.quantize:
                lr = self.ops.quantize(lr)
        return lr


class NoiseInjection:
    """Impressionism's noise injection: ``clamp(lr + n, 0, 1)`` with ``n`` a random LR-sized crop of
    a pool noise patch made zero-mean per channel; draws keyed like :class:`OnlineDegradation`."""

    def __init__(self, pool: str, seed: int, device: torch.device):
        from realsr.degrade import ops
        from realsr.degrade.pool import Pool

        self.bank = ops.NoiseBank(Pool.load(pool), device)
        self.seed = seed

    def __call__(self, lr: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        gen = torch.Generator(device="cpu")  # NoiseBank draws its crop positions on the CPU
        gen.manual_seed(int(np.random.default_rng([self.seed, 17, *key]).integers(2**62)))
        return self.bank.inject(lr, gen)
