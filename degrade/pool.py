"""The degradation pool (``POOL/pool.json``, ARCHITECTURE.md "Data contracts"): reading and writing.

``pool.json`` holds the scale, the resolved parameters, one entry per source photo (``sources``:
status ``ok``/``rejected``/``failed``, reason, its kernel and noise entries) and, derived from them,
the flat ``kernels`` and ``noise`` lists the degrade stage draws from. Files are relative to POOL.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from realsr.atomic import write_json_atomic
from realsr.errors import RealsrError, UsageError
from realsr.images import read_image
from realsr.manifest import STATUSES, merge_shard_files, settings_differences, shard_manifest_name, status_counts

from .kernels import kernel_array
from .noise import zero_mean

FORMAT = "realsr-pool"
VERSION = 1
POOL_NAME = "pool.json"
POOL_STEM = "pool"
#: noise patches kept in memory per process (a 256-px RGB patch is about 200 kB)
NOISE_CACHE = 256


def pool_shard_name(index: int, count: int) -> str:
    """``pool.shard-K-of-N.json``: the record written by shard K of N."""
    return shard_manifest_name(index, count, POOL_STEM)


@dataclass
class Pool:
    """A kernel + noise pool. ``sources`` maps a source name to its entry; ``root`` is the folder the
    entries' files are relative to."""

    scale: int
    params: dict[str, Any]
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    root: Path = Path(".")
    #: the file it was loaded from (None: built in memory)
    path: Path | None = field(default=None, compare=False)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    _noise_cache: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict, repr=False, compare=False)

    @property
    def record(self) -> Path:
        """The pool's JSON file (for error messages): the file it was loaded from, else ``root/pool.json``."""
        return self.path if self.path is not None else self.root / POOL_NAME

    # ----- contents
    @property
    def kernels(self) -> list[dict[str, Any]]:
        """Kernel entries of the usable sources, sorted by source name."""
        return [dict(e["kernel"], source=e.get("file")) for _, e in sorted(self.sources.items())
                if e.get("status") == "ok" and e.get("kernel")]

    @property
    def noise(self) -> list[dict[str, Any]]:
        """Noise-patch entries of the usable sources, sorted by source name then position."""
        return [dict(n, source=e.get("file")) for _, e in sorted(self.sources.items())
                if e.get("status") == "ok" for n in e.get("noise") or []]

    def kernel(self, i: int) -> np.ndarray:
        """Kernel ``i`` of :attr:`kernels` as float32 (K, K), sums to 1."""
        return self.kernel_file(self.kernels[i]["file"])

    def noise_patch(self, i: int) -> np.ndarray:
        """Noise patch ``i`` of :attr:`noise`, raw RGB (uint8 or uint16) as stored."""
        return self.noise_file(self.noise[i]["file"])

    def kernel_file(self, rel: str) -> np.ndarray:
        """The kernel stored at ``rel`` (relative to the pool folder) as float32 (K, K), normalised to
        sum 1; cached. Raises :class:`UsageError` naming the file when it is missing or not a kernel
        (not square 2-D, not finite, negative mass, zero sum)."""
        if rel not in self._cache:
            path = self._inside(rel)
            try:
                k = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise UsageError(f"cannot read pool kernel: {e}", path) from None
            if not np.issubdtype(k.dtype, np.number) or np.issubdtype(k.dtype, np.complexfloating):
                raise UsageError(f"pool kernel holds {k.dtype} values, not numbers", path)
            try:
                k = kernel_array(k, "pool kernel")
            except ValueError as e:
                raise UsageError(str(e), path) from None
            if k.min() < -0.01 * k.max():
                raise UsageError("pool kernel has negative weight: not a blur kernel", path)
            self._cache[rel] = (k / k.sum()).astype(np.float32)
        return self._cache[rel]

    def _inside(self, rel: str) -> Path:
        """``root / rel``, refusing paths that lead outside the pool folder."""
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise UsageError(f"pool entry {rel!r} points outside the pool folder", self.record)
        return path

    def noise_file(self, rel: str, cache: bool = True) -> np.ndarray:
        """The noise patch stored at ``rel`` as RGB uint8/uint16; the most recently used
        :data:`NOISE_CACHE` patches are kept in memory. Raises :class:`UsageError`."""
        if rel in self._noise_cache:
            self._noise_cache.move_to_end(rel)
            return self._noise_cache[rel]
        try:
            img = read_image(self._inside(rel))
        except RealsrError as e:
            raise UsageError(f"pool noise patch: {e}") from None
        if cache:
            self._noise_cache[rel] = img
            while len(self._noise_cache) > NOISE_CACHE:
                self._noise_cache.popitem(last=False)
        return img

    def check_files(self, kernels: bool = True, noise: bool = True) -> None:
        """Read every kernel (and noise patch) the pool lists, so a broken pool fails at the start
        with the file named rather than half-way through a run. Raises :class:`UsageError`."""
        if kernels:
            for e in self.kernels:
                self.kernel_file(e["file"])
        if noise:
            for e in self.noise:
                self.noise_file(e["file"], cache=False)

    def random_kernel(self, rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """A kernel drawn uniformly (Real-SR draws one per image) and its entry; ``rng`` a NumPy
        Generator (used as it is) or a seed."""
        ks = self.kernels
        if not ks:
            raise UsageError("the pool has no kernels", self.record)
        i = int(np.random.default_rng(rng).integers(len(ks)))
        return self.kernel(i), ks[i]

    def random_noise(self, rng: np.random.Generator | int | None = None,
                     size: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """A noise patch drawn uniformly, randomly cropped to ``size`` px, made zero-mean per channel:
        float32 additive noise in [0, 1] units (Real-SR's ``noiseDataset``), and its entry; ``rng`` a
        NumPy Generator (used as it is) or a seed."""
        ns = self.noise
        if not ns:
            raise UsageError("the pool has no noise patches", self.record)
        rng = np.random.default_rng(rng)
        i = int(rng.integers(len(ns)))
        patch = self.noise_patch(i)
        if size is not None:
            h, w = patch.shape[:2]
            if size > min(h, w):
                raise UsageError(f"noise crop of {size} px is larger than the pool's {w}x{h} patches")
            y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
            patch = patch[y:y + size, x:x + size]
        return zero_mean(patch), ns[i]

    def counts(self) -> dict[str, int]:
        """Number of sources per status."""
        return status_counts(self.sources.values())

    # ----- files
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "scale": self.scale, "params": self.params,
            "kernels": self.kernels, "noise": self.noise,
            "sources": [self.sources[k] for k in sorted(self.sources)],
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Pool":
        """Read a pool: ``path`` is the POOL folder or its ``pool.json``. Raises :class:`UsageError`."""
        path = Path(path)
        if path.is_dir():
            path = path / POOL_NAME
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read pool: {e}", path) from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise UsageError("not a realsr pool", path)
        if obj.get("version") != VERSION:
            raise UsageError(f"unsupported pool version {obj.get('version')!r}", path)
        scale = obj.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise UsageError(f"malformed pool: scale must be a positive integer, not {scale!r}", path)
        if not isinstance(obj.get("params"), dict) or not isinstance(obj.get("sources"), list):
            raise UsageError("malformed pool: it needs a 'params' object and a 'sources' list", path)
        sources: dict[str, dict[str, Any]] = {}
        for i, e in enumerate(obj["sources"]):
            problem = source_entry_problem(e)
            if problem:
                raise UsageError(f"malformed pool: sources[{i}] {problem}", path)
            sources[e["name"]] = dict(e)
        pool = cls(scale, dict(obj["params"]), sources, path.parent)
        pool.path = path
        return pool


def source_entry_problem(e: Any) -> str | None:
    """What is wrong with one ``sources`` entry of ``pool.json`` (None: well formed): a name, a
    known status, a kernel that is null or an object with a ``file`` path, a list of noise objects
    with a ``file`` path each."""
    if not isinstance(e, dict):
        return f"is {type(e).__name__}, not an object"
    name = e.get("name")
    if not isinstance(name, str) or not name:
        return "has no name"
    if e.get("status") not in STATUSES:
        return f"({name}) has status {e.get('status')!r}, not one of {', '.join(STATUSES)}"
    k = e.get("kernel")
    if k is not None:
        if not isinstance(k, dict):
            return f"({name}) kernel is {type(k).__name__}, not an object or null"
        for key in ("file", "file_x2"):
            if (key == "file" or key in k) and (not isinstance(k.get(key), str) or not k.get(key)):
                return f"({name}) kernel has no '{key}' path"
    noise = e.get("noise", [])
    if noise is None:
        noise = []
    if not isinstance(noise, list):
        return f"({name}) noise is {type(noise).__name__}, not a list"
    for j, n in enumerate(noise):
        if not isinstance(n, dict) or not isinstance(n.get("file"), str) or not n.get("file"):
            return f"({name}) noise[{j}] has no 'file' path"
    return None


def pool_settings(p: Pool) -> dict[str, Any]:
    """What must agree between the records of one pool: scale and parameters."""
    return {"scale": p.scale, "params": p.params}


def merge_pools(pools: Iterable[Pool]) -> Pool:
    """Join pools of the same scale and parameters (later source entries replace earlier ones)."""
    pools = list(pools)
    if not pools:
        raise UsageError("nothing to merge")
    first = pools[0]
    out = Pool(first.scale, dict(first.params), {}, first.root)
    for p in pools:
        if pool_settings(p) != pool_settings(first):
            raise UsageError("pools to merge were built with different settings "
                             f"({settings_differences(pool_settings(first), pool_settings(p))})")
        out.sources.update(p.sources)
    return out


def merge_pool_shards(folder: str | os.PathLike, require_names: Iterable[str] | None = None) -> Pool | None:
    """Merge ``pool.shard-K-of-N.json`` files (and an existing ``pool.json``) into ``pool.json`` once
    they cover ``require_names``; returns the merged pool or None."""
    return merge_shard_files(folder, POOL_STEM, Pool.load, merge_pools, lambda p: p.sources, require_names)


def write_synthetic_pool(folder: str | os.PathLike, kernel_x4: np.ndarray, n_noise: int, noise_size: int,
                         level: float = 128.0, sigma: float = 3.0, name: str = "k", seed: int = 0) -> Pool:
    """A hand-made x4 pool in ``folder`` for tests and benchmarks: one source ``name`` with the
    kernel ``kernel_x4`` and ``n_noise`` flat noise patches (``noise_size`` px, grey ``level`` plus
    Gaussian noise of ``sigma`` levels, 8-bit). Returns the loaded pool."""
    from realsr.images import write_png

    folder = Path(folder)
    (folder / "kernels").mkdir(parents=True, exist_ok=True)
    (folder / "noise").mkdir(exist_ok=True)
    np.save(folder / "kernels" / f"{name}_x4.npy", np.asarray(kernel_x4, np.float32))
    rng = np.random.default_rng(seed)
    noise = []
    for i in range(n_noise):
        patch = np.clip(level + rng.normal(0, sigma, (noise_size, noise_size, 3)), 0, 255).astype(np.uint8)
        write_png(folder / "noise" / f"{name}_{i}.png", patch)
        noise.append({"file": f"noise/{name}_{i}.png", "y": 0, "x": 0, "gray_var": sigma ** 2, "gray_mean": level})
    src = {"name": name, "file": f"{name}.png", "status": "ok", "reason": None,
           "kernel": {"name": name, "file": f"kernels/{name}_x4.npy", "size": int(np.shape(kernel_x4)[0])},
           "noise": noise}
    Pool(4, {}, {name: src}, folder).save(folder / "pool.json")
    return Pool.load(folder)
