"""Aligning a whole dataset: files in, the pair dataset of ARCHITECTURE.md out.

``OUT/HR/<name>.png``, ``OUT/LR/<name>.png`` (ok pairs only), ``OUT/previews/<name>.png`` (ok and
rejected), ``OUT/manifest.json``. Every file is written atomically; the manifest is rewritten after
each pair, so an interrupted run resumes where it stopped. Pairs already ``ok`` (with both files
present) or ``rejected`` are skipped on a re-run, ``failed`` ones are retried; ``overwrite`` redoes all.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realsr.atomic import remove_stale_temporaries
from realsr.errors import RealsrError
from realsr.images import read_image, to_float, write_png
from realsr.manifest import (MANIFEST_NAME, Manifest, check_dataset_folder, merge_shards, resume_manifest,
                             shard_manifest_name)
from realsr.parallel import parallel_map, select_shard
from realsr.raw import RawOptions

from .align import align_pair
from .params import AlignParams
from .pairing import PairSource
from .preview import make_preview

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    pair: PairSource
    out: str
    params: AlignParams
    raw: RawOptions
    preview: bool


def _paths(out: Path, name: str) -> dict[str, Path]:
    return {"hr": out / "HR" / f"{name}.png", "lr": out / "LR" / f"{name}.png", "preview": out / "previews" / f"{name}.png"}


def _remove_outputs(out: Path, name: str, keep_preview: bool = False) -> None:
    for key, p in _paths(out, name).items():
        if key == "preview" and keep_preview:
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def align_one(job: _Job) -> dict[str, Any]:
    """Align one pair and write its files; returns its manifest entry (never raises for bad input)."""
    t0 = time.perf_counter()
    pair, out = job.pair, Path(job.out)
    entry: dict[str, Any] = {"name": pair.name, "lr_file": pair.lr, "hr_file": pair.hr}

    def done(status: str, reason: str | None, **fields: Any) -> dict[str, Any]:
        if status != "ok":
            _remove_outputs(out, pair.name, keep_preview=status == "rejected")
        entry.update(status=status, reason=reason, **fields, seconds=round(time.perf_counter() - t0, 3))
        return entry

    if pair.problem:
        return done("failed", pair.problem)
    try:
        lr = read_image(pair.lr, job.raw)
        hr = read_image(pair.hr, job.raw)
        res = align_pair(lr, hr, job.params)
    except RealsrError as e:  # unreadable files and AlignmentFailed
        return done("failed", str(e))
    except MemoryError:
        return done("failed", "out of memory")
    except Exception as e:  # a bug or an OpenCV failure on odd input: record it, keep going
        log.debug("pair %s: %s", pair.name, traceback.format_exc())
        return done("failed", f"internal error: {type(e).__name__}: {e}")
    fields = res.manifest_fields()
    fields["bit_depth"] = 16 if res.hr.dtype == np.uint16 else 8
    paths = _paths(out, pair.name)
    # PNG encoding of a large HR takes seconds and releases the GIL: encode the files concurrently.
    with ThreadPoolExecutor(max_workers=3) as pool:
        writes = []
        if res.status == "ok":
            writes += [pool.submit(write_png, paths["hr"], res.hr), pool.submit(write_png, paths["lr"], res.lr)]
        if res.lr.size and job.preview:
            lines = [
                f"{pair.name}: {res.status.upper()}" + (f" - {res.reason}" if res.reason else ""),
                f"scale x{job.params.scale}  zoom {res.zoom:.3f}  inliers {res.inliers}  rounds {res.iterations}  "
                f"residual {fields['residual_px']} px (p90 {fields['residual_p90_px']})  PSNR-Y {fields['psnr_y']} dB",
            ]
            pv = make_preview(to_float(res.lr), res.hr_small, lines, res.residual.shifts, res.status == "ok")
            writes.append(pool.submit(write_png, paths["preview"], pv))
        for w in writes:
            w.result()
    return done(res.status, res.reason, **fields)


def _is_finished(entry: dict[str, Any] | None, out: Path) -> bool:
    if entry is None:
        return False
    if entry["status"] == "ok":
        p = _paths(out, entry["name"])
        return p["hr"].is_file() and p["lr"].is_file()
    return entry["status"] == "rejected"


def align_dataset(
    pairs: list[PairSource],
    out: str | Path,
    params: AlignParams,
    raw: RawOptions = RawOptions(),
    workers: int = 1,
    shard: tuple[int, int] = (1, 1),
    overwrite: bool = False,
    preview: bool = True,
    progress: bool = True,
) -> Manifest:
    """Align ``pairs`` into the dataset folder ``out``; returns the (merged) manifest.

    With ``shard=(K, N)`` only every N-th pair (from the K-th) is processed and the manifest is
    ``manifest.shard-K-of-N.json``; when the shards together cover every pair they are merged into
    ``manifest.json`` automatically (or with ``realsr merge``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries(out)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", removed)
    k, n = shard
    mpath = out / (MANIFEST_NAME if n == 1 else shard_manifest_name(k, n))
    run_params = {"align": params.to_json(), "raw": {"linear": raw.linear, "bits": raw.bits, "half_size": raw.half_size}}
    manifest = Manifest("align", params.scale, run_params)
    check_dataset_folder(out, [f for p in pairs for f in (p.lr, p.hr)], overwrite, ("HR", "LR", "previews"))
    resume_manifest(manifest, mpath, overwrite, lambda name: _remove_outputs(out, name))
    mine = select_shard(pairs, k, n)
    todo = [p for p in mine if overwrite or not _is_finished(manifest.pairs.get(p.name), out)]
    if len(todo) < len(mine):
        log.info("%d of %d pairs already done; skipping them", len(mine) - len(todo), len(mine))
    jobs = [_Job(p, str(out), params, raw, preview) for p in todo]
    manifest.save(mpath)
    for _, entry in parallel_map(align_one, jobs, workers=workers, desc="align", progress=progress):
        manifest.pairs[entry["name"]] = entry
        manifest.save(mpath)
        log.info("%s: %s%s", entry["name"], entry["status"], f" ({entry['reason']})" if entry["reason"] else "")
    if n > 1:
        merged = merge_shards(out, require_names=[p.name for p in pairs])
        if merged is not None:
            log.info("all %d shards done: merged into %s", n, out / MANIFEST_NAME)
            return merged
    return manifest
