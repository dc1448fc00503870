"""Model files: the project's ``*.safetensors`` (weights + ``{"arch", "arch_args", "scale"}``
metadata, ARCHITECTURE.md) and official PyTorch checkpoints (state dicts read with
``weights_only=True``, renamed through the architecture's key map, architecture named with ``arch``
or recognised from the parameter names and shapes).

``load_model("bicubic", scale=S)`` gives the built-in MATLAB-bicubic baseline without a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from realsr.errors import UsageError

from .models import SRNet, arch_class, build, names
from .weights import load_state, read_safetensors, write_safetensors

FORMAT = "realsr-model/1"


def save_model(path: str | os.PathLike, model: SRNet, extra: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and architecture as a safetensors model file (atomically).
    ``extra``: more JSON-serialisable metadata (training run, iteration ...)."""
    meta = {"format": FORMAT, "arch": model.arch, "arch_args": json.dumps(model.arch_args, sort_keys=True),
            "scale": str(model.scale), "pixel_range": str(model.pixel_range)}
    if extra:
        meta["extra"] = json.dumps(extra, sort_keys=True)
    write_safetensors(path, model.state_dict(), meta)


def _fits(model: SRNet, state: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return own.keys() == state.keys() and all(own[k].shape == v.shape for k, v in state.items())


def _load_into(model: SRNet, state: dict[str, torch.Tensor], path: Path) -> SRNet:
    own = model.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        def few(xs: list[str]) -> str:
            return ", ".join(xs[:4]) + (f" (+{len(xs) - 4} more)" if len(xs) > 4 else "")
        parts = [f"{what}: {few(xs)}" for what, xs in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if xs]
        raise UsageError(f"weights do not fit architecture {model.arch!r} with {model.arch_args} "
                         f"({'; '.join(parts)})", path)
    model.load_state_dict(state, strict=True)
    return model


def recognise(state: dict[str, torch.Tensor], scale: int | None = None) -> tuple[str, dict[str, Any]] | None:
    """(architecture name, arguments) of the first registered architecture whose mapped parameter
    names and shapes equal ``state``'s, or None."""
    for name in names():
        cls = arch_class(name)
        mapped = cls.map_state(state)
        args = cls.args_from_state(mapped)
        if scale is not None:
            args["scale"] = scale
        try:
            model = build(name, **args)
        except (UsageError, TypeError, ValueError, RuntimeError):
            continue
        if _fits(model, mapped):
            return name, args
    return None


def load_model(spec: str | os.PathLike, arch: str | None = None, scale: int | None = None,
               **arch_args: Any) -> SRNet:
    """A network in eval mode on the CPU from a model file, an official checkpoint, or the name
    ``bicubic``. ``arch`` / ``scale`` / ``arch_args`` override or complete what the file says;
    a file whose scale disagrees with ``scale`` is refused. :class:`UsageError` for every problem."""
    if arch is not None:
        arch_class(arch)  # unknown names fail here, whatever the file
    if str(spec) == "bicubic":
        if arch not in (None, "bicubic"):
            raise UsageError(f"'bicubic' is its own architecture; --arch {arch} does not apply")
        return build("bicubic", scale=4 if scale is None else scale, **arch_args).eval()
    path = Path(spec)
    if not path.is_file():
        raise UsageError("model file not found (give a .safetensors model, an official .pth "
                         "checkpoint, or 'bicubic')", path)
    if path.suffix.lower() == ".safetensors":
        state, meta = read_safetensors(path)
        file_arch = meta.get("arch")
        if file_arch:
            if arch and arch != file_arch:
                raise UsageError(f"the file holds architecture {file_arch!r}, not {arch!r}", path)
            try:
                args = json.loads(meta.get("arch_args", "{}"))
            except json.JSONDecodeError:
                raise UsageError("model file metadata 'arch_args' is not JSON", path) from None
            if not isinstance(args, dict) or not isinstance(args.get("scale", 1), int):
                raise UsageError(f"model file metadata 'arch_args' is not a mapping with an integer scale: {args!r}",
                                 path)
            if scale is not None and int(args.get("scale", scale)) != scale:
                raise UsageError(f"the model is x{args.get('scale')}, but x{scale} was asked for", path)
            args.update(arch_args)
            try:
                net = build(file_arch, **args)
            except UsageError as e:
                raise UsageError(e.message, path) from None
            return _load_into(net, state, path).eval()
    else:
        state = load_state(path, "model checkpoint")
    if not state:  # bicubic's own files say so in their metadata (above)
        raise UsageError("the file holds no weights", path)
    if arch is None:
        found = recognise(state, scale)
        if found is None and scale is not None and (other := recognise(state)) is not None:
            raise UsageError(f"the weights are a x{other[1].get('scale')} {other[0]!r} model, "
                             f"but x{scale} was asked for", path)
        if found is None:
            raise UsageError(f"cannot tell the architecture of these weights; name it with --arch "
                             f"(known: {', '.join(n for n in names() if n != 'bicubic')})", path)
        arch, args = found
    else:
        state_args = arch_class(arch).args_from_state(arch_class(arch).map_state(state))
        if scale is not None and "scale" in state_args and state_args["scale"] != scale:
            raise UsageError(f"the weights are x{state_args['scale']}, but x{scale} was asked for", path)
        args = {**state_args, **({"scale": scale} if scale is not None else {})}
    args.update(arch_args)
    return _load_into(build(arch, **args), arch_class(arch).map_state(state), path).eval()
