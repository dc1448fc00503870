"""Which torch device a ``--device`` / ``engine.device`` string means, checked to exist here; host
data to a device without a synchronisation; full-fp32 arithmetic on CUDA."""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import UsageError

if TYPE_CHECKING:  # torch is imported only when a device is resolved
    import torch


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(spec: "str | torch.device | None" = "auto", auto: tuple[str, ...] = ("cuda", "mps"),
                   allowed: tuple[str, ...] | None = None) -> "torch.device":
    """``"auto"`` (or None): the first of ``auto`` that is available here, else the CPU. Any other
    string as torch reads it (``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...), which must name a device
    of a type in ``allowed`` (None: any) that exists here; :class:`UsageError` otherwise, saying why
    (unknown name, no CUDA, no such CUDA index, PyTorch built without it)."""
    import torch

    if spec is None or str(spec) == "auto":
        for kind in auto:
            if kind == "cuda" and torch.cuda.is_available() or kind == "mps" and _mps_available():
                return torch.device(kind)
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {str(spec)!r} (auto, cpu, cuda, cuda:N or mps)") from None
    if allowed is not None and dev.type not in allowed:
        raise UsageError(f"device {str(spec)!r}: use auto or one of {', '.join(allowed)} here")
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {str(spec)!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {str(spec)!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
        return dev
    if dev.type == "mps" and not _mps_available():
        raise UsageError(f"device {str(spec)!r} asked for, but MPS (Apple GPU) is not available here")
    try:  # mps, xpu ...: a tiny allocation tells whether this PyTorch build and machine have it
        torch.empty(1, device=dev)
    except Exception as e:  # noqa: BLE001 -- RuntimeError or AssertionError, depending on the backend
        raise UsageError(f"device {str(spec)!r} is not available here ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    return dev


@contextlib.contextmanager
def full_fp32(deterministic: bool = False) -> Iterator[None]:
    """Full fp32 arithmetic on CUDA for the duration: no TF32 in cuDNN convolutions (PyTorch allows it
    there by default, which on an A100/H100 rounds inputs to a 10-bit mantissa) nor in cuBLAS matrix
    products; with ``deterministic``, deterministic cuDNN kernels and no autotuning too. The flags
    are restored after. Changes nothing on the CPU."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if deterministic:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = saved


def to_device(data: Any, device: "str | torch.device", dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """``data`` (a NumPy array, number, sequence or tensor) as a tensor of ``dtype`` on ``device``,
    without a host-device synchronisation. A plain ``torch.as_tensor(a, device="cuda")`` copies from
    pageable memory, which makes the host wait until the GPU has finished all its queued work: once
    per call, so a few small parameter uploads per training batch leave the GPU idle between
    batches. Here host data is staged in pinned memory and copied asynchronously (PyTorch keeps the
    pinned block alive until the copy is done, so ``data`` may change afterwards, unless it is a CPU
    tensor that is pinned already: that one is copied from directly). Data already on a device is
    cast there; on the CPU this is ``torch.as_tensor``; other devices (MPS) get a plain copy.
    The ``meta`` device (no data) stands in for CUDA in the tests and is copied to asynchronously."""
    import torch

    dev = torch.device(device)
    if isinstance(data, torch.Tensor) and data.device.type != "cpu":
        return data.to(device=dev, dtype=dtype)
    t = torch.as_tensor(data, dtype=dtype)
    if dev.type == "cpu":
        return t
    if dev.type == "cuda":
        t = t.pin_memory()
    return t.to(dev, non_blocking=dev.type in ("cuda", "meta"))


@functools.lru_cache(maxsize=64)
def device_constant(make: Callable[[], Any], device: "torch.device", dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """``make()`` (a table: NumPy array or nested sequence) as a tensor on ``device``, built and
    copied once per (table, device, dtype) and then reused: no host-to-device copy per call on hot
    paths. The tensor is shared: read it, never write to it."""
    import torch

    with torch.inference_mode(False):  # a table first needed under inference_mode must still serve autograd
        return to_device(make(), device, dtype)
