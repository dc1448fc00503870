"""Reading and writing weight files without running pickled code.

- :func:`load_state`: a PyTorch state dict (``.pth`` / ``.pt``, official checkpoints) read with
  ``torch.load(weights_only=True)``; the usual wrappers (``state_dict``, BasicSR's ``params`` /
  ``params_ema``, DataParallel's ``module.`` prefix) are unwrapped. Anything that needs full
  unpickling is refused with a :class:`~realsr.errors.UsageError`.
- :func:`read_safetensors` / :func:`write_safetensors`: tensors plus string metadata, the project's
  model file format (ARCHITECTURE.md "Model files"); written atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from realsr.atomic import atomic_path
from realsr.errors import UsageError

#: wrappers around the tensors in checkpoints of common SR code bases, in the order tried
WRAPPERS = ("params_ema", "params", "state_dict", "model", "generator", "netG")


def _unwrap(obj: object) -> object:
    for _ in range(3):
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    return obj


def load_error_detail(e: BaseException, lines: int = 3, width: int = 160) -> str:
    """What went wrong in a ``load_state_dict`` (or a key look-up), for a one-line message: the
    detail lines of PyTorch's "Error(s) in loading state_dict" (missing and unexpected keys, size
    mismatches), at most ``lines`` of them, each cut to ``width`` characters, joined by "; "."""
    found = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if len(found) > 1 and found[0].startswith("Error(s) in loading state_dict"):
        found = found[1:]
    if isinstance(e, KeyError):
        found = [f"missing {', '.join(found) or 'key'}"]
    parts = [ln if len(ln) <= width else ln[:width - 3] + "..." for ln in found[:lines]]
    if len(found) > lines:
        parts.append(f"{len(found) - lines} more")
    return "; ".join(parts) or type(e).__name__


def load_state(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path`` (on CPU). :class:`UsageError` when the file is missing,
    unreadable, holds no tensor dict, or needs full unpickling (refused: unpickling can run code)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} not found (weights are never downloaded; give a local file)", p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for anything beyond tensors and containers
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(e).splitlines()[0] if str(e) else "")
        if first.startswith("Weights only load failed"):  # torch then advises weights_only=False: not here
            first = "torch.load(weights_only=True) refused it"
        raise UsageError(f"cannot read {what} as plain tensors: the file needs full unpickling or is "
                         f"damaged, and full unpickling is refused because it can run code "
                         f"({type(e).__name__}: {first[:200]})", p) from None
    obj = _unwrap(obj)
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsageError(f"{what} is not a state dict of tensors", p)
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def read_safetensors(path: str | os.PathLike, what: str = "model file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors on CPU, metadata) of a ``.safetensors`` file; :class:`UsageError` when unreadable."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} not found", p)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UsageError(f"cannot read {what} ({type(e).__name__}: {str(e)[:200]})", p) from None
    return tensors, meta


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` (moved to CPU, made contiguous) with string ``metadata``, atomically."""
    from safetensors.torch import save_file

    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(data, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
