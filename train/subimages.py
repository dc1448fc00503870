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
from pathlib import Path
from typing import Callable

from realsr.errors import ImageReadError, UsageError
from realsr.images import read_image, write_png
from realsr.manifest import MANIFEST_NAME, Manifest

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


def extract_subimages(dataset: str | os.PathLike, out: str | os.PathLike, scale: int, crop: int = 480,
                      step: int = 240, min_rest: int = 0, progress: Callable[[str], None] | None = None) -> Manifest:
    """Write the sub-image pair dataset of ``dataset`` (``HR/`` + ``LR/``) to ``out``.

    ``crop``, ``step``, ``min_rest`` in HR pixels, multiples of ``scale``. Sources already done
    (recorded in ``out/manifest.json``) are skipped; unreadable or wrong-sized pairs are recorded as
    failed (name = the source stem) and the rest go on.
    """
    if crop % scale or step % scale or crop <= 0 or step <= 0:
        raise UsageError(f"--crop ({crop}) and --step ({step}) must be positive multiples of the scale ({scale})")
    out = Path(out)
    params = {"source": str(dataset), "crop": crop, "step": step, "min_rest": min_rest}
    path = out / MANIFEST_NAME
    man = Manifest("subimages", scale, params)
    if path.exists():
        old = Manifest.load(path)
        if old.scale != scale or old.params != params:
            raise UsageError("the output folder holds sub-images made with other settings", out)
        man = old
    done_sources = {e.get("source") for e in man.pairs.values() if e["status"] == "ok"}
    for pair in find_pairs(dataset):
        if pair.name in done_sources:
            continue
        try:
            if pair.hr is None:
                raise ValueError("no HR image")
            lr, hr = read_image(pair.lr), read_image(pair.hr)
            hr = fit_hr(hr, lr.shape, scale)
        except (ImageReadError, ValueError) as e:
            man.set(pair.name, "failed", str(e), source=pair.name)
            log.warning("pair %s: %s", pair.name, e)
            continue
        man.pairs.pop(pair.name, None)
        ys = crop_positions(hr.shape[0], crop, step, min_rest)
        xs = crop_positions(hr.shape[1], crop, step, min_rest)
        if not ys or not xs:
            man.set(pair.name, "rejected", f"smaller than the {crop}px crop", source=pair.name)
            continue
        k = 0
        for y in ys:
            for x in xs:
                k += 1
                name = f"{pair.name}_s{k:03d}"
                write_png(out / "HR" / f"{name}.png", hr[y:y + crop, x:x + crop])
                ly, lx, lc = y // scale, x // scale, crop // scale
                write_png(out / "LR" / f"{name}.png", lr[ly:ly + lc, lx:lx + lc])
                man.set(name, "ok", source=pair.name, box=[x, y, x + crop, y + crop])
        man.save(path)
        if progress:
            progress(pair.name)
    man.save(path)
    return man
