"""``realsr upscale``: super-resolve images (no HR needed). Bit depth is kept (8-bit in, 8-bit out;
16-bit in, 16-bit out); an alpha channel is upscaled on its own with MATLAB bicubic and put back."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realsr.atomic import remove_stale_temporaries, write_json_atomic
from realsr.errors import RealsrError, UsageError, item_failure
from realsr.images import from_float, read_image, to_float, write_png
from realsr.manifest import check_inputs_outside, read_json_mapping, settings_differences
from realsr.resize import imresize

from .infer import InferOptions, upscale_image
from .models import SRNet

log = logging.getLogger("realsr.upscale")


def upscale_array(model: SRNet, img: np.ndarray, options: InferOptions = InferOptions()) -> np.ndarray:
    """Super-resolve an (H, W, 3) RGB or (H, W, 4) RGBA uint8/uint16 image; returns the same dtype and
    channel count at ``model.scale`` times the size (alpha: MATLAB bicubic, clipped)."""
    rgb = img[:, :, :3]
    out = from_float(upscale_image(model, np.ascontiguousarray(rgb), options), img.dtype)
    if img.shape[2] == 4:
        a = np.clip(imresize(to_float(img[:, :, 3]), model.scale, method="bicubic"), 0.0, 1.0)
        out = np.concatenate([out, from_float(a, img.dtype)[:, :, None]], axis=2)
    return out


#: the record of how the images in an upscale output folder were made
UPSCALE_JSON = "upscale.json"


def upscale_files(model: SRNet, sources: list[tuple[str, str]], out_dir: str | os.PathLike,
                  options: InferOptions = InferOptions(), overwrite: bool = False,
                  progress: Callable[[str], None] | None = None,
                  model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upscale each (name, path) into ``out_dir/<name>.png``; finished outputs are skipped unless
    ``overwrite``. Returns {"done": [...], "skipped": [...], "failed": [{"name", "reason", "file"}]}.

    ``out_dir/upscale.json`` records the model (``model_info``, e.g. its file's sha256, else its
    architecture and arguments), the scale and the options that change the pixels. Without
    ``overwrite`` (:class:`UsageError` otherwise) a re-run must have the same settings (outputs of
    another model or scale would be counted as finished), and outputs already present need that
    record (they are someone else's files). An input lying in ``out_dir`` is refused: its output
    would replace it, or it would be taken for a finished output."""
    out_dir = Path(out_dir)
    check_inputs_outside(out_dir, [path for _, path in sources], ["."])
    settings = {"model": model_info or {"arch": model.arch, "arch_args": model.arch_args}, "scale": model.scale,
                "tile": options.tile, "overlap": options.overlap if options.tile else 0,
                "ensemble": options.ensemble, "precision": options.precision}
    prev = (read_json_mapping(out_dir / UPSCALE_JSON) or {}).get("settings")
    prev = prev if isinstance(prev, dict) else None
    if not overwrite:
        if prev is not None and prev != settings:
            raise UsageError(f"the output folder holds images upscaled with other settings "
                             f"({settings_differences(prev, settings)}); use --overwrite or another -o", out_dir)
        present = [n for n, _ in sources if (out_dir / f"{n}.png").is_file()]
        if prev is None and present:
            raise UsageError(f"the output folder already holds {len(present)} of the outputs ({present[0]}.png ...) "
                             f"but no {UPSCALE_JSON} says how they were made; use --overwrite or another -o", out_dir)
    if remove_stale_temporaries(out_dir):
        log.info("removed temporary files left by an interrupted run")
    if overwrite and prev != settings:  # outputs of other settings go before the new record is written:
        for name, _ in sources:  # an interrupted --overwrite run must not leave them to pass as finished
            (out_dir / f"{name}.png").unlink(missing_ok=True)
    if prev != settings:
        write_json_atomic(out_dir / UPSCALE_JSON, {"format": "realsr-upscale", "version": 1, "settings": settings})
    result: dict[str, Any] = {"done": [], "skipped": [], "failed": []}
    for name, path in sources:
        if progress:
            progress(name)
        target = out_dir / f"{name}.png"
        if target.is_file() and not overwrite:
            result["skipped"].append(name)
            continue
        try:
            img = read_image(path, keep_alpha=True)
            write_png(target, upscale_array(model, img, options))
        except (RealsrError, MemoryError, OSError) as e:
            failure = item_failure(e)
            if failure is None:
                raise  # disk full, no permission: the run cannot go on
            reason, where = failure
            log.warning("%s: %s", name, reason)
            result["failed"].append({"name": name, "reason": reason, "file": where or str(path)})
            continue
        result["done"].append(name)
    return result
