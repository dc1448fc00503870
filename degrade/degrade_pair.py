"""One clean HR image -> one LR/HR pair, with the record that regenerates it exactly.

:func:`degrade_pair` mod-crops the HR (top-left anchored, so HR = scale x LR exactly), draws the
steps of the mode (:mod:`realsr.degrade.recipes`) from a generator seeded with the pair's seed, runs
them (:mod:`realsr.degrade.pipeline`) in float and rounds and clips once. :func:`regenerate` replays a
record: same steps, same noise fields, same LR. Images are RGB arrays (uint8, uint16 or float in
[0, 1]; gray and RGBA are made RGB); the LR has the HR's dtype (float in -> uint8 out), except that
a 16-bit HR through JPEG (8-bit codec) still gives 16-bit files. Learned modes (``dsgan``) need
the loaded degrader (:func:`realsr.degrade.learned.load_degrader`) as ``learned``, also to replay.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from realsr.errors import RealsrError
from realsr.images import as_rgb, from_float, to_float
from realsr.resize import imresize, modcrop

from .pipeline import apply_steps
from .recipes import ModeParams, sample_steps

CLEANUPS = ("off", "replace", "add")


def pair_seed(seed: int, name: str) -> int:
    """The seed of pair ``name`` in a run with ``seed``: independent of order, workers and shards."""
    key = zlib.crc32(name.encode("utf-8", "surrogateescape"))  # names from undecodable file names too
    return int(np.random.SeedSequence([seed, key]).generate_state(1, np.uint64)[0] >> 1)


def clean_up(hr: np.ndarray) -> np.ndarray:
    """Real-SR's source clean-up (METHODS.md 2b.2): MATLAB bicubic x1/2 (antialiased, ceil size), in
    float, rounded to the input's dtype: halves the source's noise and blur to make a cleaner HR."""
    x = as_rgb(hr)
    out = imresize(to_float(x), 0.5)
    return from_float(out, x.dtype if x.dtype in (np.uint8, np.uint16) else np.uint8)


def _summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    kernel = [s["kernel"] for s in steps if s["op"] == "blur"]
    noise = [{k: v for k, v in s.items() if k != "tiles"} | ({"tiles": len(s["tiles"])} if "tiles" in s else {})
             for s in steps if s["op"].endswith("_noise")]
    jpeg = [s["quality"] for s in steps if s["op"] == "jpeg"]
    out = {"kernel": kernel or None, "noise": noise or None, "jpeg_quality": jpeg or None}
    learned = [{k: s[k] for k in ("model", "weights", "weights_sha256", "source_sha256") if k in s}
               for s in steps if s["op"] == "learned"]
    if learned:
        out["learned"] = learned
    return out


def degrade_pair(hr: np.ndarray, mode: str, scale: int, seed: int, params: ModeParams = ModeParams(),
                 pool: Any = None, learned: Any = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(HR mod-cropped, LR, record) for ``hr`` in ``mode`` with the pair's ``seed``.

    The record holds ``mode``, ``seed``, ``kernel`` (kernel specs of the blur steps), ``noise`` (the
    noise steps; pool noise as the number of tiles), ``jpeg_quality`` (list or None), for learned
    modes ``learned`` (model, weights file name and SHA-256) and ``steps`` (everything, for
    :func:`regenerate`). ``learned``: the loaded degrader of a learned mode. Raises
    :class:`RealsrError` when the HR is smaller than ``scale`` (or the pool kernel),
    :class:`UsageError` for a bad pool, mode or missing degrader.
    """
    hr = as_rgb(hr)
    if min(hr.shape[:2]) < scale:  # (said of the source's own size, not of the empty mod-crop)
        raise RealsrError(f"HR {hr.shape[1]}x{hr.shape[0]} is smaller than the scale x{scale}")
    hr = modcrop(hr, scale)
    rng = np.random.default_rng(seed)
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(hr.dtype)
    steps = sample_steps(mode, rng, hr.shape[:2], scale, params, pool, depth, learned)
    record = {"mode": mode, "seed": int(seed), **_summary(steps), "steps": steps}
    return hr, regenerate(hr, record, pool, learned), record


def regenerate(hr: np.ndarray, record: dict[str, Any], pool: Any = None, learned: Any = None) -> np.ndarray:
    """The LR of a recorded pair from its mod-cropped HR (RGB) and record (``steps``): rounded to the
    HR's dtype (uint8 for float input). ``learned``: the degrader of a learned-mode pair."""
    hr = as_rgb(hr)
    steps, x = record["steps"], hr
    first = steps[0] if steps else {}
    if first.get("round_passes") and hr.dtype in (np.uint8, np.uint16) and first["round_passes"] == np.iinfo(hr.dtype).max:
        # MATLAB integer semantics on the integer image itself: the same numbers as the float
        # round trip in apply_steps, without a full-resolution float copy
        x = imresize(hr, output_shape=tuple(first["size"]), method=first["method"], antialias=first["antialias"])
        steps = steps[1:]
    lr = apply_steps(to_float(x), steps, pool, learned)
    return from_float(lr, hr.dtype if hr.dtype in (np.uint8, np.uint16) else np.uint8)
