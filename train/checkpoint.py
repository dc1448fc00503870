"""Training checkpoints: one ``RUN/checkpoints/iter_<N>.pt`` per save, written atomically (a full
disk or a kill while saving leaves the previous checkpoints intact), read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: ``format``, ``iteration``,
``config``, ``generator``, ``ema``, ``discriminator``, ``opt_g``, ``opt_d``, ``sched_g``,
``sched_d``, ``scaler``, ``rng`` (torch CPU and CUDA generator states), ``best``. The data position
is the iteration itself (see :mod:`realsr.train.data`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from realsr.atomic import atomic_path
from realsr.errors import UsageError

FORMAT = "realsr-checkpoint/1"
log = logging.getLogger("realsr.train")
_NAME = re.compile(r"^iter_(\d+)\.pt$")


def checkpoint_path(folder: str | os.PathLike, iteration: int) -> Path:
    return Path(folder) / f"iter_{iteration:08d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """(iteration, path) of the checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(folder: str | os.PathLike, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``state["iteration"]`` (atomically, fsynced), then remove
    all but the newest ``keep``. An error while writing (disk full ...) propagates and removes nothing."""
    path = checkpoint_path(folder, int(state["iteration"]))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(dict(state, format=FORMAT), f)
            f.flush()
            os.fsync(f.fileno())
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint dict (tensors on the CPU); :class:`UsageError` when unreadable or not a checkpoint."""
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError("checkpoint not found", p) from None
    except Exception as e:  # truncated, corrupt, or needs full unpickling (refused)
        raise UsageError(f"cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})", p) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UsageError("not a realsr training checkpoint", p)
    return obj


def latest_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``folder`` (damaged newer ones are skipped with a warning)."""
    for _, path in reversed(list_checkpoints(folder)):
        try:
            return read_checkpoint(path), path
        except UsageError as e:
            log.warning("skipping damaged checkpoint: %s", e)
    return None
