"""Kernel estimation end to end: KernelGAN runs in batches, post-processing, the x4 kernel,
degeneracy checks, restarts. The Python API behind ``realsr build-pool``.

>>> est = estimate_kernel(lr_photo, scale=4, device="cuda")     # doctest: +SKIP
>>> est.kernel        # 29 x 29 float32, sums to 1, x4 centre convention (None if rejected)
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from realsr.errors import UsageError
from realsr.images import as_rgb
from realsr.parallel import default_workers, parallel_map

from .kernelgan_params import KernelGANParams, prepare_image
from .kernels import KernelChecks, analytic_x4, check_kernel, kernel_distance, kernel_shape, post_process

if TYPE_CHECKING:  # torch is imported only when a kernel is actually estimated
    import torch

    from .kernelgan import RawEstimate

SCALES = (2, 4)

log = logging.getLogger("realsr.degrade")


@dataclass
class KernelEstimate:
    """The estimate for one image.

    ``kernel``: float32 kernel at the requested scale (pool convention, see :mod:`.kernels`), None
    when rejected; ``kernel_x2``: the post-processed x2 kernel; ``raw``: the network's 13x13 kernel of
    the chosen run; ``reason``: why it was rejected (None = usable); ``figures``: its width
    (``sigma_major``/``sigma_minor`` in HR px of the x2 kernel), angle, peak, the run's
    ``loss_bicubic``/``similar_at``/``constraints_at``, ``attempts``, ``runs``, ``runs_passed`` (runs
    whose kernel passed the checks) and ``spread`` (mean kernel distance of the passing runs to the
    chosen one; None when fewer than two passed: there was nothing to compare).
    """

    kernel: np.ndarray | None
    kernel_x2: np.ndarray | None
    raw: np.ndarray | None
    reason: str | None
    figures: dict[str, Any] = field(default_factory=dict)


def image_key(name: str) -> int:
    """A stable integer for an image name (its seed stream does not depend on list order)."""
    return zlib.crc32(name.encode("utf-8", "surrogateescape"))


def _finish(raw: "RawEstimate", scale: int, params: KernelGANParams, checks: KernelChecks
            ) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    if raw.featureless:
        return None, None, "featureless: the image has no gradients to learn a kernel from"
    with np.errstate(all="ignore"):
        k2 = post_process(raw.kernel, params.n_filtering, 2) if np.all(np.isfinite(raw.kernel)) else raw.kernel
    reason = check_kernel(raw.kernel, k2, checks)
    if reason:
        return None, None, reason
    k = analytic_x4(k2) if scale == 4 else k2
    return k.astype(np.float32), k2.astype(np.float32), None


def unusable_reason(img: np.ndarray, params: KernelGANParams) -> str | None:
    """Why ``img`` cannot go through KernelGAN at all (too small, constant), or None."""
    h, w = img.shape[:2]
    if min(h, w) < params.min_image_size:
        return (f"too small: {w}x{h} px, KernelGAN needs at least {params.min_image_size} px per side "
                f"({params.g_crop}-px crops + {params.edge_shave}-px edge shave)")
    if float(np.ptp(img)) == 0.0:
        return "featureless: the image is constant"
    return None


def estimate_kernels(
    images: Sequence[np.ndarray],
    scale: int = 2,
    params: KernelGANParams = KernelGANParams(),
    device: "str | torch.device | None" = "cpu",
    seed: int = 0,
    keys: Sequence[int] | None = None,
    runs: int = 1,
    retries: int = 1,
    batch: int = 8,
    checks: KernelChecks = KernelChecks(),
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[KernelEstimate]:
    """Estimate the blur kernel of every image (real LR photos: RGB uint8/uint16 or float [0, 1]).

    Up to ``batch`` KernelGAN networks train together (``runs`` independent runs per image; the run
    closest to the others is kept). A rejected estimate is re-run with fresh seeds up to ``retries``
    times. Image ``i``'s result depends only on ``seed`` and ``keys[i]`` (default: ``i``), not on the
    batch it ran in. ``progress(iterations, networks)`` reports work done (in this process only).

    ``workers`` > 1 splits the images over that many processes, each with ``cores / workers`` torch
    threads: on a CPU, 2 processes x 1 thread estimate about 15 % more images per second than one
    process on 2 threads (docs/benchmarks.md). The results are the same. On a GPU one process is used.
    """
    if scale not in SCALES:
        raise ValueError(f"KernelGAN estimates x2 kernels and derives x4 ones: scale must be one of {SCALES}")
    if runs < 1 or retries < 0 or batch < 1 or workers < 1:
        raise ValueError("runs >= 1, retries >= 0, batch >= 1 and workers >= 1 are required")
    train_kernelgan = _trainer()
    keys = list(range(len(images))) if keys is None else list(keys)
    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys for {len(images)} images")
    images = [_checked(i, img) for i, img in enumerate(images)]
    workers = min(workers, len(images))
    if workers > 1 and _device_type(device) != "cpu":
        log.info("kernel estimation on %s: one process instead of %d workers", device, workers)
        workers = 1
    if workers > 1:
        return _estimate_in_processes(images, keys, workers, dict(
            scale=scale, params=params, device=device, seed=seed, runs=runs, retries=retries, batch=batch,
            checks=checks))
    results: list[KernelEstimate | None] = [None] * len(images)
    prepared: dict[int, np.ndarray] = {}
    for i, img in enumerate(images):
        why = unusable_reason(img, params)
        if why:
            results[i] = KernelEstimate(None, None, None, why, {"attempts": 0})
        else:
            prepared[i] = prepare_image(img, params)
    queue = [(i, 0) for i in prepared]  # (image, attempt)
    last: dict[int, KernelEstimate] = {}
    while queue:
        per = max(1, batch // runs)
        todo, queue = queue[:per], queue[per:]
        jobs = [(i, a, r) for i, a in todo for r in range(runs)]
        raws = train_kernelgan(
            [prepared[i] for i, _, _ in jobs], [[seed, keys[i], a, r] for i, a, r in jobs], params, device,
            progress=(lambda n, m=len(jobs): progress(n, m)) if progress else None,
        )
        for i, a in todo:
            mine = [raw for (j, _, _), raw in zip(jobs, raws) if j == i]
            est = _choose(mine, scale, params, checks)
            est.figures["attempts"] = a + 1
            if est.reason and a < retries:
                queue.append((i, a + 1))
                last[i] = est
            else:
                results[i] = est
    return [r if r is not None else last[i] for i, r in enumerate(results)]


def _checked(i: int, img: np.ndarray) -> np.ndarray:
    try:
        return as_rgb(img)
    except ValueError as e:
        raise ValueError(f"images[{i}]: {e}") from None


def _estimate_group(job: tuple[list[np.ndarray], list[int], int, dict[str, Any]]) -> list[KernelEstimate]:
    """One worker process's share of :func:`estimate_kernels` (module level: it is pickled)."""
    images, keys, threads, options = job
    import torch

    torch.set_num_threads(threads)
    return estimate_kernels(images, keys=keys, **options)


def _estimate_in_processes(images: Sequence[np.ndarray], keys: list[int], workers: int,
                           options: dict[str, Any]) -> list[KernelEstimate]:
    """Every ``workers``-th image to each of ``workers`` processes; results back in input order."""
    threads = max(1, default_workers() // workers)
    groups = [list(range(g, len(images), workers)) for g in range(workers)]
    jobs = [([images[i] for i in g], [keys[i] for i in g], threads, options) for g in groups]
    found: dict[int, KernelEstimate] = {}
    for gi, ests in parallel_map(_estimate_group, jobs, workers=workers, progress=False):
        found.update(zip(groups[gi], ests))
    return [found[i] for i in range(len(images))]


def _device_type(device: "str | torch.device | None") -> str:
    from .kernelgan import resolve_device  # importable: _trainer() ran first

    return resolve_device(device).type


def _trainer() -> Callable[..., list["RawEstimate"]]:
    try:
        from .kernelgan import train_kernelgan
    except ImportError as e:  # torch missing
        raise UsageError(f"kernel estimation needs PyTorch ({e}); install it first: pip install torch==2.13.0") from None
    return train_kernelgan


def _choose(raws: list["RawEstimate"], scale: int, params: KernelGANParams, checks: KernelChecks) -> KernelEstimate:
    done = [(raw, *_finish(raw, scale, params, checks)) for raw in raws]
    good = [d for d in done if d[3] is None]
    spread = None
    if not good:
        raw, _, _, reason = done[0]
        return KernelEstimate(None, None, raw.kernel, reason, _run_figures(raw, None, len(raws), 0, spread))
    if len(good) > 1:
        dist = np.array([[kernel_distance(a[2], b[2]) for b in good] for a in good])
        best = int(np.argmin(dist.sum(axis=1)))
        spread = float(dist[best].sum() / (len(good) - 1))
    else:
        best = 0
    raw, k, k2, _ = good[best]
    return KernelEstimate(k, k2, raw.kernel, None, _run_figures(raw, k2, len(raws), len(good), spread))


def _run_figures(raw: "RawEstimate", k2: np.ndarray | None, runs: int, passed: int,
                 spread: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loss_bicubic": round(raw.loss_bicubic, 5) if math.isfinite(raw.loss_bicubic) else None,
        "similar_at": raw.similar_at, "constraints_at": raw.constraints_at, "runs": runs,
        "runs_passed": passed, "spread": None if spread is None else round(spread, 5),
    }
    if k2 is not None:
        s = kernel_shape(k2)
        out.update(sigma_major=round(s.sigma_major, 4), sigma_minor=round(s.sigma_minor, 4), angle=round(s.angle, 2),
                   peak=round(s.peak, 5))
    return out


def estimate_kernel(image: np.ndarray, scale: int = 2, params: KernelGANParams = KernelGANParams(),
                    device: "str | torch.device | None" = "cpu", seed: int = 0, **kwargs: Any) -> KernelEstimate:
    """Estimate the kernel of one real LR photo (see :func:`estimate_kernels` for the options)."""
    return estimate_kernels([image], scale, params, device, seed, **kwargs)[0]
