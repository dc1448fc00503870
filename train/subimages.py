"""Pre-cropped sub-images for large training sets (BasicSR's ``extract_subimages``): every pair of a
pair dataset becomes overlapping aligned crops (default 480 HR px, step 240), written as a new pair
dataset. Training then reads small files instead of decoding whole 2K photos per sample
(``data.in_memory: false``).

Crop positions per axis: ``0, step, 2*step, ...`` while the crop fits, plus a last crop flush with
the far edge when more than ``min_rest`` pixels would otherwise be left out (BasicSR's
``thresh_size``). LR crops are the HR crops / scale at the same place (HR = scale x LR exactly).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

from realsr.atomic import remove_stale_temporaries
from realsr.errors import ImageReadError, UsageError, concerns_one_file, os_error_text
from realsr.images import read_image, write_png
from realsr.manifest import MANIFEST_NAME, Manifest, check_dataset_folder, resume_manifest

from .evaluate import find_pairs, fit_hr

log = logging.getLogger("realsr.train")


def crop_positions(length: int, crop: int, step: int, min_rest: int = 0) -> list[int]:
    """Start positions of crops of ``crop`` px along an axis of ``length`` px (empty when too short)."""
    if length < crop:
        return []
    pos = list(range(0, length - crop + 1, step))
    if length - (pos[-1] + crop) > min_rest:
        pos.append(length - crop)
    return pos


def _remove_crop(out: Path, name: str) -> None:
    for sub in ("HR", "LR"):
        try:
            (out / sub / f"{name}.png").unlink(missing_ok=True)
        except OSError as e:  # a name too long to exist at all
            if not concerns_one_file(e):
                raise


def extract_subimages(dataset: str | os.PathLike, out: str | os.PathLike, scale: int, crop: int = 480,
                      step: int = 240, min_rest: int = 0, overwrite: bool = False,
                      progress: Callable[[str], None] | None = None) -> Manifest:
    """Write the sub-image pair dataset of ``dataset`` (``HR/`` + ``LR/``) to ``out``.

    ``crop``, ``step``, ``min_rest`` in HR pixels, multiples of ``scale``. Sources already done
    (recorded in ``out/manifest.json``) are skipped unless ``overwrite``; unreadable, unpaired or
    wrong-sized pairs are recorded as failed (name = the source stem) and the rest go on. An ``out``
    whose HR/ or LR/ holds the inputs, or images no manifest lists, is refused
    (:func:`realsr.manifest.check_dataset_folder`); one made with other settings needs ``overwrite``,
    which removes its crops.
    """
    if crop % scale or step % scale or crop <= 0 or step <= 0:
        raise UsageError(f"--crop ({crop}) and --step ({step}) must be positive multiples of the scale ({scale})")
    out = Path(out)
    pairs = find_pairs(dataset)
    names = {p.name for p in pairs}
    for p in pairs:  # crops are named <source>_sNNN: a source named like that would be mixed up with them
        m = re.fullmatch(r"(.+)_s\d{3,}", p.name)
        if m and m.group(1) in names:
            raise UsageError(f"the pair '{p.name}' has the name of a crop of the pair '{m.group(1)}'; rename it", dataset)
    check_dataset_folder(out, [f for p in pairs for f in (p.lr, p.hr)], overwrite)
    if remove_stale_temporaries(out):
        log.info("removed temporary files left by an interrupted run")
    path = out / MANIFEST_NAME
    man = Manifest("subimages", scale, {"source": str(dataset), "crop": crop, "step": step, "min_rest": min_rest})
    resume_manifest(man, path, overwrite, lambda name: _remove_crop(out, name))
    done_sources = set() if overwrite else {e.get("source") for e in man.pairs.values() if e["status"] == "ok"}
    for pair in pairs:
        if pair.name in done_sources:
            continue
        for name in [n for n, e in man.pairs.items() if e.get("source") == pair.name]:  # a redo replaces all
            _remove_crop(out, name)
            del man.pairs[name]
        try:
            if pair.problem:
                raise ValueError(pair.problem)
            lr, hr = read_image(pair.lr), read_image(pair.hr)
            hr = fit_hr(hr, lr.shape, scale, "--scale")
        except (ImageReadError, ValueError) as e:
            man.set(pair.name, "failed", str(e), source=pair.name)
            log.warning("pair %s: %s", pair.name, e)
            continue
        ys = crop_positions(hr.shape[0], crop, step, min_rest)
        xs = crop_positions(hr.shape[1], crop, step, min_rest)
        if not ys or not xs:
            man.set(pair.name, "rejected", f"smaller than the {crop}px crop", source=pair.name)
            continue
        boxes = [(x, y) for y in ys for x in xs]
        try:
            for k, (x, y) in enumerate(boxes, 1):
                name = f"{pair.name}_s{k:03d}"
                write_png(out / "HR" / f"{name}.png", hr[y:y + crop, x:x + crop])
                ly, lx, lc = y // scale, x // scale, crop // scale
                write_png(out / "LR" / f"{name}.png", lr[ly:ly + lc, lx:lx + lc])
                man.set(name, "ok", source=pair.name, box=[x, y, x + crop, y + crop])
        except OSError as e:  # a crop name too long for the file system ...: this source fails, the rest go on
            if not concerns_one_file(e):
                raise
            for k in range(1, len(boxes) + 1):
                _remove_crop(out, f"{pair.name}_s{k:03d}")
                man.pairs.pop(f"{pair.name}_s{k:03d}", None)
            man.set(pair.name, "failed", os_error_text(e), source=pair.name)
            log.warning("pair %s: %s", pair.name, os_error_text(e))
        man.save(path)
        if progress:
            progress(pair.name)
    man.save(path)
    return man
