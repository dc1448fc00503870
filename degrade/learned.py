"""Learned degradations: a trained network turns a clean HR image into its LR (``--mode dsgan``).

The contract (:class:`LearnedDegrader`): given an HR image, float32 RGB in [0, 1], shape (H, W, 3)
with H and W multiples of ``scale``, and an integer seed, return the LR image, float32 RGB in
[0, 1], shape (H / scale, W / scale, 3), the same for the same image and seed on the same device.
A degrader also ``describe``s itself (model, weights file name, weights SHA-256) for the manifest.

In a recipe a learned degradation is one step (:mod:`realsr.degrade.pipeline`)::

    {"op": "learned", "model": "dsgan", "weights": "300_G.pth", "weights_sha256": "...",
     "scale": 4, "seed": n}

:func:`run_learned` executes it with a loaded degrader, refusing one whose model, weights or scale
differ from the recorded ones, so ``regenerate`` either replays a pair exactly or says why not.

Modes (:data:`LOADERS`, :data:`LEARNED_MODES`):

- ``dsgan``: SRResCGAN's training-data generator (Fritsche et al. 2019; METHODS.md 3.2): MATLAB
  bicubic x1/scale of the HR in float (antialiased, not rounded, clipped to [0, 1]: the
  ``utils.imresize`` of the official ``create_dataset.py``), then the DSGAN generator
  (:mod:`realsr.train.models.dsgan`). Deterministic: the seed is recorded but not used.
- ``network`` (planned, not implemented): DDNSR's degradation network, a realsr model file mapping
  an HR patch and a real LR patch to an LR image (METHODS.md 4.1). To add it: write a class with the
  :class:`LearnedDegrader` attributes (its ``degrade`` draws the real LR patch from the seed, so a
  pair replays from its record), a loader ``LearnedSpec -> degrader``, and add ``"network": loader``
  to :data:`LOADERS`; ``realsr degrade --mode network --weights FILE``, the settings check, the
  manifest and ``regenerate`` then work unchanged. Extra inputs (a folder of real LR photos) go into
  :class:`LearnedSpec` and the run parameters.

This module imports without torch (``realsr.degrade`` must); the networks live in
``realsr.train.models`` and are imported when a degrader is loaded.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import numpy as np

from realsr.errors import UsageError
from realsr.manifest import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: the scale DSGAN's official pipeline uses (``create_dataset.py``: ``--upscale_factor`` choices [4])
DSGAN_SCALE = 4
#: smallest tile (LR px) the out-of-memory back-off goes down to
MIN_TILE = 32


class LearnedDegrader(Protocol):
    """A learned HR -> LR degradation (see the module docstring)."""

    #: the ``--mode`` name
    mode: str
    #: HR = scale x LR
    scale: int

    def describe(self) -> dict[str, Any]:
        """JSON fields that identify the degradation: ``model``, ``weights`` (file name),
        ``weights_sha256`` (recorded in every step and compared on replay)."""
        ...

    def degrade(self, hr: np.ndarray, seed: int) -> np.ndarray:
        """LR float32 (H/scale, W/scale, 3) in [0, 1] of ``hr`` float32 (H, W, 3) in [0, 1]."""
        ...


@dataclass(frozen=True)
class LearnedSpec:
    """How to load a learned degrader in a (worker) process.

    ``weights``: the weights file; ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
    ``tile``: LR tile side in pixels (0: the whole image at once; tiles overlap by the network's
    receptive radius, so they change nothing beyond float rounding); ``threads``: torch CPU threads
    to use in this process (None: leave torch's setting); ``sha256``: the expected SHA-256 of the
    weights (None: not checked), so a file replaced during a run stops it.
    """

    mode: str
    weights: str
    scale: int = 4
    device: str = "auto"
    tile: int = 512
    threads: int | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in LOADERS:
            raise ValueError(f"unknown learned mode {self.mode!r}; one of {', '.join(LOADERS)}")
        if self.scale < 1:
            raise ValueError("scale must be >= 1")
        if self.tile < 0:
            raise ValueError("tile must be >= 0 (0: the whole image)")


@contextlib.contextmanager
def exact_math() -> Iterator[None]:
    """Full fp32 on CUDA (no TF32) and deterministic cuDNN kernels for the duration; restored after."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = saved


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in str(e).lower()


def run_same_size(net: "torch.nn.Module", x: np.ndarray, radius: int, device: "torch.device",
                  tile: int = 0) -> np.ndarray:
    """``net`` (image -> image of the same size, every output pixel depending only on input pixels
    within ``radius``) on ``x`` float32 (h, w, 3); float32 (h, w, 3) result.

    ``tile`` > 0: tiles of ``tile`` x ``tile`` output pixels, each computed from its window grown by
    ``radius`` (clipped at the image border, where the network pads as on the whole image), so the
    stitched result equals the whole-image one up to float rounding. On a device out of memory the
    tile is halved (from 512 when it was the whole image) down to :data:`MIN_TILE`."""
    import torch

    h, w = x.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
    while True:
        try:
            with torch.no_grad(), exact_math():
                if tile <= 0 or (h <= tile and w <= tile):
                    return net(src.to(device)).float().cpu()[0].permute(1, 2, 0).numpy()
                out = torch.empty_like(src)
                for y0 in range(0, h, tile):
                    for x0 in range(0, w, tile):
                        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                        wy0, wx0 = max(0, y0 - radius), max(0, x0 - radius)
                        wy1, wx1 = min(h, y1 + radius), min(w, x1 + radius)
                        y = net(src[:, :, wy0:wy1, wx0:wx1].to(device)).float().cpu()
                        out[:, :, y0:y1, x0:x1] = y[:, :, y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
                return out[0].permute(1, 2, 0).numpy()
        except RuntimeError as e:
            if device.type == "cpu" or not _is_oom(e):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            smaller = min(512, max(h, w) // 2) if tile <= 0 or (h <= tile and w <= tile) else tile // 2
            if smaller < MIN_TILE:
                raise
            log.warning("out of memory on %s: retrying with %d px tiles", device, smaller)
            tile = smaller


class DSGANDegrader:
    """``--mode dsgan``: MATLAB bicubic x1/scale (float, clipped to [0, 1]), then the DSGAN generator."""

    mode = "dsgan"

    def __init__(self, net: "torch.nn.Module", scale: int, weights_name: str, weights_sha256: str,
                 device: "torch.device", tile: int = 512):
        self.net = net.to(device)
        self.scale = int(scale)
        self.weights_name = weights_name
        self.weights_sha256 = weights_sha256
        self.device = device
        self.tile = int(tile)
        self.radius = int(getattr(net, "receptive_radius", 18))

    def describe(self) -> dict[str, Any]:
        return {"model": self.mode, "weights": self.weights_name, "weights_sha256": self.weights_sha256}

    def bicubic(self, hr: np.ndarray) -> np.ndarray:
        """The generator's input: MATLAB ``imresize(hr, 1/scale)`` (bicubic, antialiased) in float32,
        not rounded, clipped to [0, 1] (as the official ``utils.imresize``)."""
        from realsr.resize import imresize

        h, w = hr.shape[:2]
        if h % self.scale or w % self.scale:
            raise ValueError(f"HR {w}x{h} is not a multiple of the scale x{self.scale} (mod-crop it first)")
        lr = imresize(np.ascontiguousarray(hr, dtype=np.float32), output_shape=(h // self.scale, w // self.scale))
        return np.clip(lr, 0.0, 1.0)

    def degrade(self, hr: np.ndarray, seed: int) -> np.ndarray:
        """LR float32 (H/scale, W/scale, 3) in (0, 1); ``seed`` is unused (the generator has no noise input)."""
        return run_same_size(self.net, self.bicubic(hr), self.radius, self.device, self.tile)


def _resolve_device(spec: str) -> "torch.device":
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise UsageError(f"unknown device {spec!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {spec} asked for, but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    return dev


def load_dsgan_degrader(spec: LearnedSpec) -> DSGANDegrader:
    """The ``dsgan`` degrader of ``spec`` (weights checked to fit the generator exactly)."""
    from realsr.train.models.dsgan import load_dsgan

    device = _resolve_device(spec.device)
    net = load_dsgan(spec.weights)
    if spec.scale != DSGAN_SCALE:
        log.warning("DSGAN was trained on x%d bicubic LR images; at x%d its degradation is untested",
                    DSGAN_SCALE, spec.scale)
    return DSGANDegrader(net, spec.scale, Path(spec.weights).name, file_sha256(spec.weights), device, spec.tile)


#: learned modes and their loaders; ``network`` (DDNSR) is to be added here (module docstring)
LOADERS: dict[str, Callable[[LearnedSpec], LearnedDegrader]] = {"dsgan": load_dsgan_degrader}
LEARNED_MODES: tuple[str, ...] = tuple(LOADERS)
#: what ``--weights`` is for each learned mode (for messages)
WEIGHTS_HELP: dict[str, str] = {
    "dsgan": "the DSGAN generator state dict, e.g. SRResCGAN's pretrained_nets/DSGAN/300_G.pth",
}

_LOADED: dict[LearnedSpec, LearnedDegrader] = {}


def load_degrader(spec: LearnedSpec) -> LearnedDegrader:
    """The degrader of ``spec``, loaded once per process. :class:`UsageError` for a missing,
    unreadable or mismatched weights file, a device that is not there, or weights whose SHA-256
    is not ``spec.sha256``."""
    key = replace(spec, sha256=None)
    if key not in _LOADED:
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        _LOADED[key] = LOADERS[spec.mode](spec)
    deg = _LOADED[key]
    sha = str(deg.describe().get("weights_sha256"))
    if spec.sha256 is not None and sha != spec.sha256:
        raise UsageError(f"the weights file changed during the run (SHA-256 {sha[:12]}..., "
                         f"expected {spec.sha256[:12]}...)", spec.weights)
    return deg


def learned_step(degrader: LearnedDegrader, rng: np.random.Generator) -> dict[str, Any]:
    """The recipe step of one pair degraded by ``degrader``: its description, scale and a drawn seed."""
    return {"op": "learned", **degrader.describe(), "scale": int(degrader.scale),
            "seed": int(rng.integers(2**63 - 1))}


def run_learned(x: np.ndarray, step: dict[str, Any], degrader: LearnedDegrader | None) -> np.ndarray:
    """Execute a ``learned`` step on ``x`` float32 (H, W, 3) in [0, 1] with ``degrader``;
    :class:`UsageError` when none is given or it is not the recorded one (model, weights, scale)."""
    want = {k: step[k] for k in ("model", "weights_sha256")}
    if degrader is None:
        raise UsageError(f"this pair was made by the learned degradation '{step['model']}' with the weights "
                         f"{step.get('weights')} (SHA-256 {str(step['weights_sha256'])[:12]}...); load them "
                         "(realsr.degrade.learned.load_degrader) and pass them as learned=")
    have = degrader.describe()
    if {k: have.get(k) for k in want} != want or int(step["scale"]) != degrader.scale:
        raise UsageError(f"this pair was made by '{step['model']}' x{step['scale']} with weights "
                         f"{step.get('weights')} (SHA-256 {str(step['weights_sha256'])[:12]}...), not by "
                         f"'{have.get('model')}' x{degrader.scale} with {have.get('weights')} "
                         f"(SHA-256 {str(have.get('weights_sha256'))[:12]}...)")
    return degrader.degrade(x, int(step["seed"]))
