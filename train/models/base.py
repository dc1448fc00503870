"""The architecture registry and the contract every SR network here keeps.

A network is an :class:`SRNet`: ``forward(x)`` maps an RGB batch ``(B, 3, h, w)`` with values in
``[0, pixel_range]`` to ``(B, 3, scale*h, scale*w)`` in the same range. ``pixel_range`` is 1 for most
networks and 255 where the published model works on [0, 255] data (SRResCGAN), so every published
model keeps its native range (its losses and thresholds depend on it).

For tiled inference the forward pass is split in two: ``local_forward`` (any per-pixel-local part,
run tile by tile) and ``finish`` (the image-global remainder, run once on the assembled output).
Networks without a global part keep the defaults (``finish`` is the identity).
"""

from __future__ import annotations

import inspect
import json
import math
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn

from realsr.errors import UsageError

_REGISTRY: dict[str, type["SRNet"]] = {}


class SRNet(nn.Module):
    """Base class: ``scale``, ``pixel_range``, ``arch_args``, the local/global split and key maps."""

    arch: ClassVar[str] = ""
    #: input and output values lie in [0, pixel_range]
    pixel_range: ClassVar[float] = 1.0
    #: how far (LR pixels) an output pixel looks into the input; None when too large to matter
    receptive_radius: int | None = None
    #: the scales the architecture can be built for
    scales: ClassVar[tuple[int, ...]] = (2, 3, 4)

    @property
    def min_input_size(self) -> int:
        """The smallest input side (LR pixels) the network can process; 1 unless a global part needs more."""
        return 1

    def __init__(self, scale: int):
        super().__init__()
        if scale not in self.scales:
            raise UsageError(f"architecture {self.arch!r} supports scales {list(self.scales)}, not {scale}")
        self.scale = int(scale)
        self.arch_args: dict[str, Any] = {}

    def local_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The part of the forward pass that only looks at nearby pixels; may return extra channels
        that :meth:`finish` consumes. Default: the whole forward pass."""
        return self(x)

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        """Image-global remainder of the forward pass on the assembled :meth:`local_forward` output."""
        return y

    @classmethod
    def map_state(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Key map from an official checkpoint's names to this implementation's (default: none)."""
        return state

    @classmethod
    def args_from_state(cls, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Architecture arguments that can be read off a (mapped) state dict's shapes."""
        return {}


def register(cls: type[SRNet]) -> type[SRNet]:
    """Class decorator: make ``cls`` buildable by its ``arch`` name."""
    if not cls.arch or cls.arch in _REGISTRY:
        raise ValueError(f"bad or duplicate architecture name {cls.arch!r}")
    _REGISTRY[cls.arch] = cls
    return cls


def names() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def arch_class(name: str) -> type[SRNet]:
    """The class registered as ``name``; :class:`UsageError` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown architecture {name!r} (known: {', '.join(names())})") from None


def _arch_arg(arch: str, key: str, value: Any, default: Any) -> Any:
    """``value`` of argument ``key`` as the type of its default: NumPy scalars as Python numbers,
    integral floats as int for int arguments (``scale: 4.0`` would write a model file that does not
    load), finite numbers for float ones. :class:`UsageError` for the rest."""
    if isinstance(value, np.generic):
        value = value.item()
    kind = type(default)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = (isinstance(value, bool) if kind is bool
          else isinstance(value, int) and not isinstance(value, bool) if kind is int
          else isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) if kind is float
          else isinstance(value, str) if kind is str else True)
    if not ok:
        what = "a finite number" if kind is float else f"{'an' if kind is int else 'a'} {kind.__name__}"
        raise UsageError(f"bad arguments for architecture {arch!r}: {key} must be {what}, got {value!r}")
    return float(value) if kind is float else value


def build(name: str, **arch_args: Any) -> SRNet:
    """A fresh network of architecture ``name`` built with ``arch_args`` (defaults fill the rest; the
    full argument set is kept in ``model.arch_args`` for model files)."""
    cls = arch_class(name)
    sig = inspect.signature(cls.__init__)
    try:
        bound = sig.bind(None, **arch_args)
    except TypeError as e:
        raise UsageError(f"bad arguments for architecture {name!r}: {e}") from None
    bound.apply_defaults()
    args = {k: _arch_arg(name, k, v, sig.parameters[k].default) for k, v in bound.arguments.items() if k != "self"}
    negative = [k for k, v in args.items() if isinstance(v, int) and not isinstance(v, bool) and v < 0]
    if negative:  # every integer argument is a count or a size: nb=-2 would build like nb=0
        raise UsageError(f"bad arguments for architecture {name!r} {args}: {', '.join(negative)} may not be negative")
    try:
        with warnings.catch_warnings():  # torch warns about zero-element layers; refused just below
            warnings.simplefilter("ignore", UserWarning)
            model = cls(**args)
    except UsageError:
        raise
    except (TypeError, ValueError, RuntimeError, ArithmeticError) as e:  # torch's own complaint, reduction=0 ...
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UsageError(f"bad arguments for architecture {name!r} {args}: {first}") from None
    if any(t.numel() == 0 for t in model.parameters()):  # nf=0: builds, then fails in the first step
        raise UsageError(f"bad arguments for architecture {name!r} {args}: they give a layer with no weights")
    model.arch_args = json.loads(json.dumps(args))
    return model
