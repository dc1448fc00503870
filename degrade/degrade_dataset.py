"""Degrading a folder of clean HR images: files in, the pair dataset of ARCHITECTURE.md out.

``OUT/HR/<name>.png`` (mod-cropped), ``OUT/LR/<name>.png``, ``OUT/manifest.json`` (per pair: mode,
seed, kernel, noise, JPEG quality, for learned modes the weights file name and SHA-256, and the full
``steps`` that regenerate it), and with a reference
folder ``OUT/realism.json`` + ``OUT/realism.png``. Each pair's seed comes from the run seed and the
pair's name (:func:`realsr.degrade.degrade_pair.pair_seed`), so results do not depend on order,
workers or shards. Files are written atomically and the manifest after every pair: an interrupted
run resumes where it stopped; ``failed`` pairs are retried, ``overwrite`` redoes all.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from realsr.atomic import remove_stale_temporaries
from realsr.errors import RealsrError, UsageError
from realsr.images import read_image, write_png
from realsr.manifest import (MANIFEST_NAME, Manifest, check_dataset_folder, merge_shards, resume_manifest,
                             shard_manifest_name)
from realsr.parallel import default_workers, parallel_map, select_shard
from realsr.raw import RawOptions

from .build_pool import Source, usable_sources
from .degrade_pair import CLEANUPS, clean_up, degrade_pair, pair_seed
from .learned import LEARNED_MODES, WEIGHTS_HELP, LearnedDegrader, LearnedSpec, NetworkDegrader, load_degrader
from .pool import Pool
from .recipes import MODES, ModeParams

log = logging.getLogger(__name__)
CLEAN_SUFFIX = "_clean"


@dataclass(frozen=True)
class DegradeSettings:
    """Everything that defines a degraded dataset (recorded in the manifest; a resumed run must match).

    ``cleanup``: ``off``; ``replace`` (HR = MATLAB bicubic x1/2 of the source, Real-SR's clean-up);
    ``add`` (both: ``<name>`` from the source and ``<name>_clean`` from the cleaned source).
    ``weights``: the network's weights file of a learned mode (:mod:`realsr.degrade.learned`);
    recorded by file name and SHA-256 (``weights_digest``, filled in by :func:`degrade_dataset`).
    ``source``: the folder of real LR photos of ``--mode network``, recorded by path and the SHA-256
    over its files (``source_digest``).
    """

    mode: str = "pool"
    scale: int = 4
    seed: int = 0
    params: ModeParams = field(default_factory=ModeParams)
    cleanup: str = "off"
    pool: str | None = None
    pool_digest: str | None = None
    weights: str | None = None
    weights_digest: str | None = None
    source: str | None = None
    source_digest: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.cleanup not in CLEANUPS:
            raise ValueError(f"cleanup must be one of {', '.join(CLEANUPS)}")
        if self.scale < 1:
            raise ValueError("scale must be >= 1")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.mode == "pool" and not self.pool:
            raise ValueError("--mode pool needs --pool POOL (made by realsr build-pool)")
        if self.mode in LEARNED_MODES and not self.weights:
            raise ValueError(f"--mode {self.mode} needs --weights FILE ({WEIGHTS_HELP.get(self.mode, 'its network')})")
        if self.mode == "network" and not self.source:
            raise ValueError("--mode network needs --source DIR, a folder of real LR photos (the network's second input)")
        if self.source and self.mode != "network":
            raise ValueError(f"--source is only used by --mode network, not --mode {self.mode}")
        if self.pool and self.mode != "pool":
            raise ValueError(f"--pool is only used by --mode pool, not --mode {self.mode}")
        if self.weights and self.mode not in LEARNED_MODES:
            raise ValueError(f"--weights is only used by --mode {' / '.join(LEARNED_MODES)}, not --mode {self.mode}")

    def to_json(self) -> dict[str, Any]:
        mode_params: Any = None
        if self.mode == "classic":
            mode_params = self.params.classic.to_json()
        elif self.mode == "highorder":
            mode_params = self.params.highorder.to_json()
        elif self.mode == "pool":
            mode_params = {"pool": self.pool, "pool_json_sha256": self.pool_digest, "noise": self.params.pool_noise}
        elif self.mode in LEARNED_MODES:
            mode_params = {"weights": Path(self.weights).name if self.weights else None,
                           "weights_sha256": self.weights_digest}
            if self.source:
                mode_params.update(source=self.source, source_sha256=self.source_digest)
        return {"mode": self.mode, "seed": self.seed, "cleanup": self.cleanup, "mode_params": mode_params}


@dataclass(frozen=True)
class _Job:
    source: Source
    out: str
    settings: DegradeSettings
    raw: RawOptions
    learned: LearnedSpec | None = None


_POOLS: dict[str, Pool] = {}


def _pool(path: str | None) -> Pool | None:
    """The pool of a run, loaded once per process."""
    if path is None:
        return None
    if path not in _POOLS:
        _POOLS[path] = Pool.load(path)
    return _POOLS[path]


def _learned(spec: LearnedSpec | None) -> LearnedDegrader | None:
    """The learned degrader of a run, loaded once per process."""
    return None if spec is None else load_degrader(spec)


def _paths(out: Path, name: str) -> dict[str, Path]:
    return {"hr": out / "HR" / f"{name}.png", "lr": out / "LR" / f"{name}.png"}


def _remove_pair(out: Path, name: str) -> None:
    for p in _paths(out, name).values():
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def pair_names(source: Source, cleanup: str) -> list[str]:
    """The pair names a source gives: its stem, and ``<stem>_clean`` with ``cleanup="add"``."""
    return [source.name, source.name + CLEAN_SUFFIX] if cleanup == "add" else [source.name]


def degrade_one(job: _Job) -> list[dict[str, Any]]:
    """Degrade one source into its pair(s) and write their files; returns manifest entries (never
    raises for bad input)."""
    t0 = time.perf_counter()
    src, out, s = job.source, Path(job.out), job.settings
    names = pair_names(src, s.cleanup)

    def failed(reason: str, only: str | None = None) -> list[dict[str, Any]]:
        out_names = names if only is None else [only]
        for n in out_names:
            _remove_pair(out, n)
        return [{"name": n, "status": "failed", "reason": reason, "hr_file": src.path,
                 "seconds": round(time.perf_counter() - t0, 3)} for n in out_names]

    try:
        img = read_image(src.path, job.raw)
    except RealsrError as e:
        return failed(str(e))
    except MemoryError:
        return failed("out of memory")
    variants = {"off": [(src.name, img, False)], "replace": [(src.name, None, True)],
                "add": [(src.name, img, False), (src.name + CLEAN_SUFFIX, None, True)]}[s.cleanup]
    entries = []
    for name, hr, cleaned in variants:
        t1 = time.perf_counter()
        try:
            if cleaned:
                hr = clean_up(img)
            seed = pair_seed(s.seed, name)
            hr_c, lr, record = degrade_pair(hr, s.mode, s.scale, seed, s.params, _pool(s.pool), _learned(job.learned))
        except UsageError:
            raise  # a bad pool or mode: the whole run cannot go on
        except RealsrError as err:
            entries += failed(str(err), name)
            continue
        except MemoryError:
            entries += failed("out of memory", name)
            continue
        except Exception as err:  # a bug on odd input: record it, keep going
            log.debug("pair %s: %s", name, traceback.format_exc())
            entries += failed(f"internal error: {type(err).__name__}: {err}", name)
            continue
        paths = _paths(out, name)
        write_png(paths["hr"], hr_c)
        write_png(paths["lr"], lr)
        entries.append({"name": name, "status": "ok", "reason": None, "hr_file": src.path, "cleanup": cleaned,
                        **record, "hr_size": [int(hr_c.shape[1]), int(hr_c.shape[0])],
                        "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
                        "bit_depth": 16 if lr.dtype == np.uint16 else 8,
                        "seconds": round(time.perf_counter() - t1, 3)})
    return entries


def _is_finished(entry: dict[str, Any] | None, out: Path, source: Source) -> bool:
    if entry is None or entry["status"] != "ok" or entry.get("hr_file") != source.path:
        return False
    p = _paths(out, entry["name"])
    return p["hr"].is_file() and p["lr"].is_file()


def degrade_dataset(
    sources: list[Source],
    out: str | Path,
    settings: DegradeSettings,
    raw: RawOptions = RawOptions(),
    workers: int = 1,
    shard: tuple[int, int] = (1, 1),
    overwrite: bool = False,
    progress: bool = True,
    device: str = "auto",
    tile: int = 512,
) -> Manifest:
    """Degrade ``sources`` into the pair dataset ``out``; returns the (merged) manifest.

    Checks the pool first (every kernel and noise file readable, the right scale, not empty) and
    loads a learned mode's weights (exact fit, device available) so a broken pool or weights file
    stops the run at once with the file named (:class:`UsageError`). ``device`` (auto, cpu, cuda,
    cuda:N) and ``tile`` (LR px, 0: whole image) only concern learned modes; on a GPU they run in
    one process (``workers`` is then 1), on the CPU each worker gets ``cores / workers`` threads.
    """
    pool = _pool(str(Path(settings.pool).resolve())) if settings.pool else None
    if pool is not None:
        digest = hashlib.sha256(pool.record.read_bytes()).hexdigest()  # the file loaded (may be a shard's)
        settings = replace(settings, pool=str(Path(settings.pool).resolve()), pool_digest=digest)
        if settings.mode == "pool":
            if pool.scale != settings.scale:
                raise UsageError(f"the pool was built for x{pool.scale}, not x{settings.scale}", pool.record)
            if not pool.kernels:
                raise UsageError("the pool has no kernels", pool.record)
            if settings.params.pool_noise and not pool.noise:
                raise UsageError("the pool has no noise patches (use --no-pool-noise for kernels only)",
                                 pool.record)
            pool.check_files(noise=settings.params.pool_noise)
    spec = None
    if settings.mode in LEARNED_MODES:
        weights = str(Path(str(settings.weights)).resolve())
        source = str(Path(settings.source).resolve()) if settings.source else None
        spec = LearnedSpec(settings.mode, weights, settings.scale, device, tile, source=source)
        degrader = load_degrader(spec)  # checks file, fit and device before anything is written
        digest = degrader.describe()["weights_sha256"]
        settings = replace(settings, weights=weights, weights_digest=digest, source=source,
                           source_digest=degrader.describe().get("source_sha256"))
        on_gpu = getattr(getattr(degrader, "device", None), "type", "cpu") != "cpu"
        if on_gpu and workers > 1:
            log.info("%s runs on %s: one process instead of %d workers", settings.mode, degrader.device, workers)
            workers = 1
        threads = max(1, default_workers() // workers) if workers > 1 else None
        spec = replace(spec, threads=threads, sha256=digest, checked=True)
        if isinstance(degrader, NetworkDegrader):  # the workers reuse the source list and its digest
            spec = replace(spec, source_files=tuple(str(f) for f in degrader.sources),
                           source_sha256=degrader.sources_sha256)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if remove_stale_temporaries(out):
        log.info("removed temporary files left by an interrupted run")
    k, n = shard
    mpath = out / (MANIFEST_NAME if n == 1 else shard_manifest_name(k, n))
    run_params = settings.to_json()
    manifest = Manifest("degrade", settings.scale, run_params)
    sources = usable_sources(sources, [out / "realism.png", out / "realism.json"],
                             names=lambda s: pair_names(s, settings.cleanup))
    check_dataset_folder(out, [s.path for s in sources], overwrite)
    resume_manifest(manifest, mpath, overwrite, lambda name: _remove_pair(out, name))
    mine = select_shard(sources, k, n)
    todo = [s for s in mine
            if overwrite or not all(_is_finished(manifest.pairs.get(nm), out, s) for nm in pair_names(s, settings.cleanup))]
    if len(todo) < len(mine):
        log.info("%d of %d images already done; skipping them", len(mine) - len(todo), len(mine))
    jobs = [_Job(s, str(out), settings, raw, spec) for s in todo]
    manifest.save(mpath)
    for _, entries in parallel_map(degrade_one, jobs, workers=workers, desc="degrade", progress=progress):
        for e in entries:
            manifest.pairs[e["name"]] = e
            log.info("%s: %s%s", e["name"], e["status"], f" ({e['reason']})" if e["reason"] else "")
        manifest.save(mpath)
    if n > 1:
        names = [nm for s in sources for nm in pair_names(s, settings.cleanup)]
        merged = merge_shards(out, require_names=names)
        if merged is not None:
            return merged
    return manifest
