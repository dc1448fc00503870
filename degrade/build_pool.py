"""Building a pool from a folder of real LR photos: files in, ``POOL/`` of ARCHITECTURE.md out.

``POOL/kernels/<name>_x<S>.npy`` (and ``<name>_x2.npy`` at x4), ``POOL/noise/<name>_<i>.png``,
``POOL/pool.json``, ``POOL/preview.png``. Sources are processed in batches (one KernelGAN batch each)
by ``workers`` processes; files are written atomically and ``pool.json`` after every batch, so an
interrupted run resumes where it stopped: ``ok`` and ``rejected`` sources are skipped, ``failed``
ones retried, ``overwrite`` redoes everything.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from realsr.atomic import atomic_path, remove_stale_temporaries
from realsr.errors import RealsrError, UsageError
from realsr.images import folder_images, is_image_file, read_image, write_png
from realsr.manifest import check_unrecorded, previous_entries, shard_manifests
from realsr.parallel import default_workers, parallel_map, select_shard
from realsr.raw import RawOptions

from .estimate import SCALES, estimate_kernels, image_key
from .kernelgan_params import KernelGANParams
from .kernels import KernelChecks, kernel_shape
from .noise import NoiseParams, collect_noise
from .pool import POOL_NAME, POOL_STEM, Pool, merge_pool_shards, pool_settings, pool_shard_name
from .preview import make_pool_preview

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One source photo: ``name`` (file stem, unique in the pool), ``path``, and ``problem`` when it
    cannot be used at all (duplicate name)."""

    name: str
    path: str
    problem: str | None = None


def discover_sources(paths: list[str | Path]) -> list[Source]:
    """Source photos from folders (their image files, not recursive), image files, and ``.txt``
    lists (one path per line, relative to the list). Raises :class:`UsageError` when nothing is found."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += folder_images(p)
        elif p.suffix.lower() == ".txt":
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"cannot read source list: {e}", p) from None
            files += [(p.parent / s.strip()) for s in lines if s.strip() and not s.startswith("#")]
        elif p.exists() or is_image_file(p):
            files.append(p)
        else:
            raise UsageError("source not found", p)
    if not files:
        raise UsageError("no image files found in " + ", ".join(map(str, paths)))
    out, seen = [], set()
    for f in files:
        name = f.stem
        out.append(Source(name, str(f), f"duplicate name: another source is also called '{name}'" if name in seen else None))
        seen.add(name)
    return out


def usable_sources(sources: list[Source], own_files: Sequence[Path] = (),
                   names: Callable[[Source], list[str]] = lambda s: [s.name]) -> list[Source]:
    """The sources a run can use without clobbering anything: a source whose output names
    (``names(source)``, by default its stem) are already taken by an earlier one is skipped with a
    warning (it could only replace that source's entry and files), and the run's own outputs found
    among the sources (``own_files``, e.g. ``OUT/preview.png`` when a source folder is OUT) are
    left out."""
    own = {Path(f).resolve() for f in own_files}
    owner: dict[str, str] = {}
    keep = []
    for s in sources:
        if Path(s.path).resolve() in own:
            log.info("leaving out %s: it is this run's own output", s.path)
            continue
        taken = [nm for nm in names(s) if nm in owner]
        if taken:
            log.warning("skipping %s: the name '%s' is already used by %s; rename one of them",
                        s.path, taken[0], owner[taken[0]])
            continue
        owner.update((nm, s.path) for nm in names(s))
        keep.append(s)
    return keep


@dataclass(frozen=True)
class PoolSettings:
    """Everything that defines a pool (recorded in ``pool.json``; a resumed run must match it)."""

    scale: int = 4
    kernelgan: KernelGANParams = KernelGANParams()
    noise: NoiseParams = NoiseParams()
    checks: KernelChecks = KernelChecks()
    kernels: bool = True
    collect: bool = True
    runs: int = 1
    retries: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES} (KernelGAN x2 kernels, x4 derived analytically)")
        if not (self.kernels or self.collect):
            raise ValueError("nothing to do: both kernel estimation and noise collection are off")

    def to_json(self) -> dict[str, Any]:
        return {"kernelgan": self.kernelgan.to_json() if self.kernels else None,
                "noise": self.noise.to_json() if self.collect else None,
                "checks": vars(self.checks) if self.kernels else None,
                "runs": self.runs, "retries": self.retries, "seed": self.seed}


@dataclass(frozen=True)
class _Batch:
    sources: tuple[Source, ...]
    out: str
    settings: PoolSettings
    raw: RawOptions
    device: str
    threads: int
    progress: bool


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _entry_files(entry: dict[str, Any] | None) -> list[str]:
    if not entry:
        return []
    files = [n["file"] for n in entry.get("noise") or []]
    k = entry.get("kernel") or {}
    files += [f for f in (k.get("file"), k.get("file_x2")) if f]
    return files


def process_batch(job: _Batch) -> list[dict[str, Any]]:
    """Read, collect noise and estimate kernels for one batch; write their files; return the source
    entries (never raises for bad input)."""
    s, out = job.settings, Path(job.out)
    if job.threads and s.kernels:  # a worker process: its share of the cores
        import torch

        torch.set_num_threads(job.threads)
    t0 = time.perf_counter()
    entries: dict[str, dict[str, Any]] = {}
    images: dict[str, np.ndarray] = {}
    for src in job.sources:
        e = entries[src.name] = {"name": src.name, "file": src.path, "status": "failed", "reason": None,
                                 "kernel": None, "kernel_reason": None, "noise": [], "noise_reason": None}
        try:
            img = read_image(src.path, job.raw)
        except RealsrError as err:
            e["reason"] = str(err)
            continue
        except MemoryError:
            e["reason"] = "out of memory"
            continue
        e["size"] = [int(img.shape[1]), int(img.shape[0])]
        e["bit_depth"] = 16 if img.dtype == np.uint16 else 8
        images[src.name] = img
        if s.collect:
            try:
                rng = np.random.default_rng([s.seed, image_key(src.name)])
                patches = collect_noise(img, s.noise, rng)
                for i, p in enumerate(patches):
                    rel = f"noise/{src.name}_{i}.png"
                    write_png(out / rel, p.image)
                    e["noise"].append({"file": rel, "y": p.y, "x": p.x, "gray_var": round(p.gray_var, 4),
                                       "gray_mean": round(p.gray_mean, 3)})
                if not patches:
                    e["noise_reason"] = (f"no {s.noise.patch}-px patch with gray variance < {s.noise.max_var:g} and "
                                         f"mean > {s.noise.min_mean:g}" + (" passing the local check" if s.noise.local else ""))
            except Exception as err:  # record and keep going
                log.debug("noise %s: %s", src.name, traceback.format_exc())
                e["noise_reason"] = f"internal error: {type(err).__name__}: {err}"
    names = list(images)
    if s.kernels and names:
        bar = tqdm(total=s.kernelgan.iterations, desc=f"KernelGAN {names[0]}" + (f" +{len(names) - 1}" if len(names) > 1 else ""),
                   unit="it", leave=False, disable=not job.progress, position=1)

        def tick(iterations: int, networks: int) -> None:
            if bar.n + iterations > bar.total:  # a retry round starts
                bar.reset()
                bar.set_postfix_str(f"retry, {networks} networks")
            bar.update(iterations)

        try:
            ests = estimate_kernels(
                [images[n] for n in names], s.scale, s.kernelgan, job.device, s.seed,
                keys=[image_key(n) for n in names], runs=s.runs, retries=s.retries,
                batch=max(1, len(names)) * s.runs, checks=s.checks,
                progress=tick,
            )
        except Exception as err:
            log.debug("kernels: %s", traceback.format_exc())
            ests = None
            for n in names:
                entries[n]["kernel_reason"] = f"internal error: {type(err).__name__}: {err}"
        finally:
            bar.close()
        for n, est in zip(names, ests or []):
            e = entries[n]
            if est.kernel is None:
                e["kernel_reason"] = est.reason
                e["kernel_figures"] = est.figures
                continue
            rel = f"kernels/{n}_x{s.scale}.npy"
            _save_npy(out / rel, est.kernel)
            shape = kernel_shape(est.kernel)
            k = {"name": n, "file": rel, "size": int(est.kernel.shape[0]),
                 "sigma_major": round(shape.sigma_major, 4), "sigma_minor": round(shape.sigma_minor, 4),
                 "angle": round(shape.angle, 2)}
            if s.scale != 2:
                k["file_x2"] = f"kernels/{n}_x2.npy"
                _save_npy(out / k["file_x2"], est.kernel_x2)
            k["x2"] = est.figures
            e["kernel"] = k
    for n in names:
        e = entries[n]
        usable = bool(e["kernel"]) or bool(e["noise"])
        e["status"] = "ok" if usable else "rejected"
        if not usable:
            why = [r for r in (e["kernel_reason"] and f"kernel: {e['kernel_reason']}",
                               e["noise_reason"] and f"noise: {e['noise_reason']}") if r]
            e["reason"] = "; ".join(why) or "nothing usable"
    dt = round((time.perf_counter() - t0) / max(1, len(job.sources)), 3)
    for e in entries.values():
        e["seconds"] = dt
    return list(entries.values())


def _remove_entry_files(out: Path, entry: dict[str, Any] | None) -> None:
    """Delete the kernel and noise files an entry lists (only those inside ``out``)."""
    root = out.resolve()
    for f in _entry_files(entry):
        path = (out / f).resolve()
        if path.is_relative_to(root):
            with contextlib.suppress(OSError):
                path.unlink()


def _finished(entry: dict[str, Any] | None, out: Path) -> bool:
    if entry is None:
        return False
    if entry["status"] == "ok":
        return all((out / f).is_file() for f in _entry_files(entry))
    return entry["status"] == "rejected"


def _batches(items: list[Source], size: int, workers: int) -> list[tuple[Source, ...]]:
    n = len(items)
    if not n:
        return []
    count = max(math.ceil(n / size), min(workers, n))
    return [tuple(items[i::count]) for i in range(count)]


def build_pool(
    sources: list[Source],
    out: str | Path,
    settings: PoolSettings,
    raw: RawOptions = RawOptions(),
    device: str = "auto",
    batch: int = 8,
    workers: int | None = None,
    shard: tuple[int, int] = (1, 1),
    overwrite: bool = False,
    preview: bool = True,
    progress: bool = True,
) -> Pool:
    """Build (or resume) the pool in ``out``; returns it (merged when all shards are done; its
    ``record`` is the JSON file written last).

    ``batch``: images per KernelGAN batch; ``workers``: processes (default: 1 on CUDA, else all
    cores, each with ``cores / workers`` torch threads); ``device``: ``auto``, ``cpu``, ``cuda``...
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if remove_stale_temporaries(out):
        log.info("removed temporary files left by an interrupted run")
    if settings.kernels:
        try:
            from .kernelgan import resolve_device
        except ImportError as e:
            raise UsageError(f"kernel estimation needs PyTorch ({e}); install it (pip install torch==2.13.0) "
                             "or run with --no-kernels") from None
        dev = str(resolve_device(device))
    else:
        dev = "cpu"
    if workers is None:
        workers = 1 if dev.startswith("cuda") else default_workers()
    sources = usable_sources(sources, [out / "preview.png"])
    # kernels, noise patches or a preview that no pool record of ours lists are someone else's
    recorded = (out / POOL_NAME).exists() or bool(shard_manifests(out, POOL_STEM))
    check_unrecorded(out, overwrite, recorded, ("kernels", "noise"), ("preview.png",),
                     what=f"realsr pool ({POOL_NAME})", kind="files")
    k, n = shard
    path = out / (POOL_NAME if n == 1 else pool_shard_name(k, n))
    params = settings.to_json()
    pool = Pool(settings.scale, params, {}, out, path)
    kept, stale = previous_entries(path, out / POOL_NAME, Pool.load, pool_settings, pool_settings(pool),
                                   lambda old: old.sources, overwrite, "pool")
    pool.sources.update(kept)
    for e in stale:  # --overwrite over a pool with other settings: its files go
        _remove_entry_files(out, e)
    mine = select_shard(sources, k, n)
    todo = [s for s in mine if overwrite or not _finished(pool.sources.get(s.name), out)]
    if len(todo) < len(mine):
        log.info("%d of %d sources already done; skipping them", len(mine) - len(todo), len(mine))
    for s in todo:  # files of a source being redone
        _remove_entry_files(out, pool.sources.get(s.name))
    batches = _batches(todo, batch, workers)
    procs = min(workers, len(batches)) if batches else 1
    threads = max(1, default_workers() // procs) if procs > 1 else 0
    jobs = [_Batch(b, str(out), settings, raw, dev, threads, progress and procs == 1) for b in batches]
    pool.save(path)
    bar = tqdm(total=len(todo), desc="build-pool", unit="image", disable=not progress or not todo)
    try:
        for _, entries in parallel_map(process_batch, jobs, workers=procs, progress=False):
            for e in entries:
                pool.sources[e["name"]] = e
                log.info("%s: %s%s", e["name"], e["status"], f" ({e['reason']})" if e["reason"] else "")
            pool.save(path)
            bar.update(len(entries))
    finally:
        bar.close()
    if n > 1:
        merged = merge_pool_shards(out, require_names=[s.name for s in sources])
        if merged is None:
            return pool
        pool = merged
        path = pool.path = out / POOL_NAME
    if preview and path.name == POOL_NAME:
        write_png(out / "preview.png", make_pool_preview(Pool.load(path)))
    return pool
