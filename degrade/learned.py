"""Learned degradations: a trained network turns a clean HR image into its LR (``--mode dsgan``,
``--mode network``).

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
- ``network``: DDNSR's degradation network (METHODS.md 4.1; ``RUN/degradation.safetensors`` of a
  ``method: ddnsr`` training run) on the HR and a real LR patch of the same LR size drawn from a
  folder of real LR photos (``source``): the seed picks the photo and the crop (mirror-tiled when
  the photo is smaller than the LR), so a pair replays from its record; the folder is identified
  by a SHA-256 over its file names and contents (``source_sha256``), checked on replay.

This module imports without torch (``realsr.degrade`` must); the networks live in
``realsr.train.models`` and are imported when a degrader is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from realsr.devices import full_fp32
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
    weights (None: not checked), so a file replaced during a run stops it; ``source``: the folder
    of real LR photos (``network`` only); ``source_files`` / ``source_sha256``: its readable photos
    and their digest as the first load found them, so worker processes do not read and hash the
    folder again (None: found at load); ``checked``: the spec of a worker process, which re-loads
    what the main process has loaded and checked (its warnings are not repeated).
    """

    mode: str
    weights: str
    scale: int = 4
    device: str = "auto"
    tile: int = 512
    threads: int | None = None
    sha256: str | None = None
    source: str | None = None
    source_files: tuple[str, ...] | None = None
    source_sha256: str | None = None
    checked: bool = False

    def __post_init__(self) -> None:
        if self.mode not in LOADERS:
            raise ValueError(f"unknown learned mode {self.mode!r}; one of {', '.join(LOADERS)}")
        if self.scale < 1:
            raise ValueError("scale must be >= 1")
        if self.tile < 0:
            raise ValueError("tile must be >= 0 (0: the whole image)")


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, getattr(torch, "OutOfMemoryError", ())) or "out of memory" in str(e).lower()


def run_same_size(net: "torch.nn.Module", x: np.ndarray, radius: int, device: "torch.device",
                  tile: int = 0) -> np.ndarray:
    """``net`` (image -> image of the same size, every output pixel depending only on input pixels
    within ``radius``) on ``x`` float32 (h, w, 3); float32 (h, w, 3) result. Tiling and the
    out-of-memory back-off as :func:`run_tiled`."""
    import torch

    src = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
    return run_tiled(lambda y0, y1, x0, x1: net(src[:, :, y0:y1, x0:x1].to(device)), x.shape[:2], radius, device, tile)


def run_tiled(window: Callable[[int, int, int, int], "torch.Tensor"], size: tuple[int, int], radius: int,
              device: "torch.device", tile: int = 0) -> np.ndarray:
    """A network's (h, w, 3) float32 output assembled from ``window(y0, y1, x0, x1)``, the output
    (1, 3, y1 - y0, x1 - x0) computed from the inputs around that box of output pixels (every
    output pixel depending only on inputs within ``radius`` output pixels), under ``no_grad`` and
    exact fp32 math.

    ``tile`` > 0: tiles of ``tile`` x ``tile`` output pixels, each computed from its box grown by
    ``radius`` (clipped at the image border, where the network pads as on the whole image), so the
    stitched result equals the whole-image one up to float rounding. On a device out of memory the
    tile is halved (from 512 when it was the whole image) down to :data:`MIN_TILE`."""
    import torch

    h, w = size
    while True:
        try:
            with torch.no_grad(), full_fp32(deterministic=True):
                if tile <= 0 or (h <= tile and w <= tile):
                    return window(0, h, 0, w).float().cpu()[0].permute(1, 2, 0).numpy()
                out = torch.empty((3, h, w), dtype=torch.float32)
                for y0 in range(0, h, tile):
                    for x0 in range(0, w, tile):
                        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                        wy0, wx0 = max(0, y0 - radius), max(0, x0 - radius)
                        wy1, wx1 = min(h, y1 + radius), min(w, x1 + radius)
                        y = window(wy0, wy1, wx0, wx1).float().cpu()
                        out[:, y0:y1, x0:x1] = y[0, :, y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
                return out.permute(1, 2, 0).numpy()
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
    from realsr.devices import resolve_device

    return resolve_device(spec, auto=("cuda",), allowed=("cpu", "cuda"))


def load_dsgan_degrader(spec: LearnedSpec) -> DSGANDegrader:
    """The ``dsgan`` degrader of ``spec`` (weights checked to fit the generator exactly)."""
    from realsr.train.models.dsgan import load_dsgan

    device = _resolve_device(spec.device)
    net = load_dsgan(spec.weights)
    if spec.scale != DSGAN_SCALE and not spec.checked:
        log.warning("DSGAN was trained on x%d bicubic LR images; at x%d its degradation is untested",
                    DSGAN_SCALE, spec.scale)
    return DSGANDegrader(net, spec.scale, Path(spec.weights).name, file_sha256(spec.weights), device, spec.tile)


def source_files(folder: str | Path) -> list[Path]:
    """The image files of a folder of real LR photos (its ``LR/`` subfolder when it has one),
    sorted by name; :class:`UsageError` when the folder is missing or holds no image."""
    from realsr.images import folder_images

    root = Path(folder)
    if not root.is_dir():
        raise UsageError("folder of real LR photos (--source) not found", root)
    if (root / "LR").is_dir():
        root = root / "LR"
    files = folder_images(root)
    if not files:
        raise UsageError("no images in the folder of real LR photos (--source)", root)
    return files


def usable_sources(files: list[Path]) -> list[Path]:
    """The files that decode as images (each read once); the others are skipped with a warning.
    :class:`UsageError` when none is left."""
    from realsr.errors import ImageReadError
    from realsr.images import read_image

    ok = []
    for f in files:
        try:
            read_image(f)
        except ImageReadError as e:
            log.warning("real LR photo skipped: %s", e)
            continue
        ok.append(f)
    if not ok:
        raise UsageError(f"none of the {len(files)} files of the real LR folder (--source) can be read as an image",
                         files[0].parent if files else None)
    return ok


def source_digest(files: list[Path]) -> str:
    """SHA-256 over the (name, content SHA-256) of ``files``: what identifies a source folder."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def mirror_crop(img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An (h, w, C) crop of ``img`` at a position drawn from ``rng``; an image smaller than that is
    first mirror-tiled (``numpy.pad`` ``symmetric``) to at least (h, w)."""
    ih, iw = img.shape[:2]
    if ih < h or iw < w:
        img = np.pad(img, ((0, max(0, h - ih)), (0, max(0, w - iw)), (0, 0)), mode="symmetric")
        ih, iw = img.shape[:2]
    y, x = int(rng.integers(ih - h + 1)), int(rng.integers(iw - w + 1))
    return img[y:y + h, x:x + w]


class NetworkDegrader:
    """``--mode network``: DDNSR's degradation network on the HR and a real LR patch (module doc)."""

    mode = "network"

    def __init__(self, net: "torch.nn.Module", weights_name: str, weights_sha256: str, sources: list[Path],
                 sources_sha256: str, device: "torch.device", tile: int = 512):
        self.net = net.to(device)
        self.scale = int(net.scale)
        self.weights_name, self.weights_sha256 = weights_name, weights_sha256
        self.sources, self.sources_sha256 = sources, sources_sha256
        self.device, self.tile = device, int(tile)
        self.radius = int(net.receptive_radius)
        self._cache: dict[int, np.ndarray] = {}

    def describe(self) -> dict[str, Any]:
        return {"model": self.mode, "weights": self.weights_name, "weights_sha256": self.weights_sha256,
                "source_sha256": self.sources_sha256}

    def _source(self, i: int) -> np.ndarray:
        from realsr.errors import ImageReadError
        from realsr.images import as_rgb, read_image, to_float

        if i not in self._cache:
            try:
                self._cache = {i: to_float(as_rgb(read_image(self.sources[i])))}
            except ImageReadError as e:
                raise UsageError(f"cannot read a real LR photo of the source folder: {e.message}", self.sources[i]) from None
        return self._cache[i]

    def source_patch(self, h: int, w: int, seed: int) -> np.ndarray:
        """The real LR patch (h, w, 3) float32 in [0, 1] that ``seed`` draws: a photo, then a crop."""
        rng = np.random.default_rng([seed, 31])
        img = self._source(int(rng.integers(len(self.sources))))
        return np.ascontiguousarray(mirror_crop(img, h, w, rng), dtype=np.float32)

    def degrade(self, hr: np.ndarray, seed: int) -> np.ndarray:
        """LR float32 (H/scale, W/scale, 3), clipped to [0, 1], of ``hr`` float32 (H, W, 3) in [0, 1]."""
        import torch

        H, W = hr.shape[:2]
        s = self.scale
        if H % s or W % s:
            raise ValueError(f"HR {W}x{H} is not a multiple of the scale x{s} (mod-crop it first)")
        src = self.source_patch(H // s, W // s, seed)
        x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32)).permute(2, 0, 1)[None]
        n = torch.from_numpy(src).permute(2, 0, 1)[None]

        def window(y0: int, y1: int, x0: int, x1: int) -> "torch.Tensor":
            return self.net(x[:, :, y0 * s:y1 * s, x0 * s:x1 * s].to(self.device), n[:, :, y0:y1, x0:x1].to(self.device))

        return np.clip(run_tiled(window, (H // s, W // s), self.radius, self.device, self.tile), 0.0, 1.0)


def load_network_degrader(spec: LearnedSpec) -> NetworkDegrader:
    """The ``network`` degrader of ``spec``: a DDNSR degradation-network file and a source folder."""
    from realsr.train.models.ddnsr import load_degradation

    if not spec.source:
        raise UsageError("--mode network needs --source DIR, a folder of real LR photos (the network's second input)")
    device = _resolve_device(spec.device)
    net = load_degradation(spec.weights)
    if net.scale != spec.scale:
        raise UsageError(f"the degradation network is x{net.scale}, not x{spec.scale} (--scale)", spec.weights)
    if spec.source_files is not None and spec.source_sha256 is not None:
        files, digest = [Path(f) for f in spec.source_files], spec.source_sha256
    else:
        files = usable_sources(source_files(spec.source))
        digest = source_digest(files)
    return NetworkDegrader(net, Path(spec.weights).name, file_sha256(spec.weights), files, digest, device, spec.tile)


#: learned modes and their loaders
LOADERS: dict[str, Callable[[LearnedSpec], LearnedDegrader]] = {"dsgan": load_dsgan_degrader,
                                                                 "network": load_network_degrader}
LEARNED_MODES: tuple[str, ...] = tuple(LOADERS)
#: what ``--weights`` is for each learned mode (for messages)
WEIGHTS_HELP: dict[str, str] = {
    "dsgan": "the DSGAN generator state dict, e.g. SRResCGAN's pretrained_nets/DSGAN/300_G.pth",
    "network": "a DDNSR degradation network, RUN/degradation.safetensors of a method: ddnsr training run",
}

_LOADED: dict[LearnedSpec, LearnedDegrader] = {}


def load_degrader(spec: LearnedSpec) -> LearnedDegrader:
    """The degrader of ``spec``, loaded once per process. :class:`UsageError` for a missing,
    unreadable or mismatched weights file, a device that is not there, or weights whose SHA-256
    is not ``spec.sha256``."""
    key = replace(spec, sha256=None, source_files=None, source_sha256=None, checked=False)
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
    want = {k: step[k] for k in ("model", "weights_sha256", "source_sha256") if k in step}
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
