"""Degradation throughput: megapixels of HR per second for each mode, the offline NumPy path and the
batched torch path, against a straightforward scipy.ndimage implementation in the same process.

Baselines (float64, per channel, as one would first write them): ``pool`` = ``ndimage.correlate``
(reflect) at full resolution, keep every S-th pixel, add the same noise tiles; ``bicubic`` = MATLAB's
antialiased cubic taps with ``ndimage.correlate1d`` along each axis, then subsample (the same output);
``classic`` and ``highorder`` = ``ndimage.correlate`` for blurs and ``ndimage.zoom`` (spline order 3/1/0)
for resizes, the same noise and the same JPEG codec (comparable work, not identical output).

    python benchmarks/degrade_bench.py                # CPU
    python benchmarks/degrade_bench.py --device cuda  # also the GPU batch of 16 x 256x256
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from realsr.degrade.degrade_pair import degrade_pair
from realsr.degrade.jpeg import jpeg_numpy
from realsr.degrade.kernel_family import make_kernel
from realsr.degrade.kernels import analytic_x4, gaussian_kernel, shift_to_convention
from realsr.degrade.pipeline import gaussian_field, poisson_noise, tile_noise
from realsr.degrade.pool import Pool, write_synthetic_pool
from realsr.degrade.recipes import ModeParams
from realsr.images import from_float, read_image, to_float
from realsr.resize import _integer_downscale_kernel, modcrop
from realsr.synthetic import synthetic_scene

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ORDER = {"nearest": 0, "area": 1, "bilinear": 1, "bicubic": 3, "lanczos2": 3, "lanczos3": 3}


def load_images(n: int) -> list[np.ndarray]:
    files = sorted(glob.glob(str(DATA / "city100" / "NikonD5500" / "*H.png")))[:n]
    if files:
        return [read_image(f) for f in files]
    return [synthetic_scene(870, 1218, seed=i) for i in range(n)]


def make_pool(folder: Path) -> Pool:
    """An x4 pool shaped like a real one: an anisotropic KernelGAN-size kernel, 256-px noise patches."""
    k2 = shift_to_convention(gaussian_kernel(13, 1.4, 0.9, 0.4), 2)
    return write_synthetic_pool(folder, analytic_x4(k2), n_noise=4, noise_size=256, level=120.0)


def _correlate(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.correlate(x[..., c], k, mode="reflect") for c in range(x.shape[2])], 2)


def baseline(hr: np.ndarray, record: dict, pool: Pool | None) -> np.ndarray:
    """The record's degradation written plainly with scipy.ndimage (see the module docstring)."""
    x = to_float(hr).astype(np.float64)
    for st in record["steps"]:
        op = st["op"]
        if op == "blur":
            x = _correlate(x, make_kernel(st["kernel"], pool))
        elif op == "subsample":
            x = x[:: st["scale"], :: st["scale"]]
        elif op == "resize" and record["mode"] == "bicubic":
            s = x.shape[0] // st["size"][0]
            k, anchor = _integer_downscale_kernel(s)  # output x = sum_j k[j] in[s x + s//2 - anchor + j]
            assert anchor == len(k) // 2  # so scipy's default origin centres the taps
            y = ndimage.correlate1d(x, k, axis=0, mode="reflect")
            y = ndimage.correlate1d(y, k, axis=1, mode="reflect")
            x = y[s // 2::s, s // 2::s]
        elif op == "resize":
            f = (st["size"][0] / x.shape[0], st["size"][1] / x.shape[1], 1)
            x = ndimage.zoom(x, f, order=ORDER[st["method"]])
        elif op == "gaussian_noise":
            x = x + gaussian_field(x.shape[:2], 1 if st["gray"] else 3, st["seed"]) * st["sigma"] / 255
        elif op == "poisson_noise":
            x = x + poisson_noise(x.astype(np.float32), st["peak"], st["seed"], st["gray"]) * st.get("scale", 1.0)
        elif op == "pool_noise":
            x = x + tile_noise(st["tiles"], x.shape[:2], pool)
        elif op == "jpeg":
            x = jpeg_numpy(np.clip(x, 0, 1).astype(np.float32), st["quality"]).astype(np.float64)
        elif op == "clip":
            x = np.clip(x, 0, 1)
    return from_float(x.astype(np.float32), np.uint8)


def bench_numpy(images, pool, modes, repeats: int) -> dict:
    out = {}
    for mode in modes:
        mp = sum(modcrop(im, 4).shape[0] * modcrop(im, 4).shape[1] for im in images) / 1e6
        ours, base = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            records = [degrade_pair(im, mode, 4, seed=i, params=ModeParams(), pool=pool) for i, im in enumerate(images)]
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            lrs = [baseline(h, r, pool) for h, _, r in records]
            base.append(time.perf_counter() - t)
        diff = max(int(np.abs(a.astype(int) - b[1].astype(int)).max()) for a, b in zip(lrs, records))
        o, b = min(ours), min(base)
        out[mode] = {"hr_megapixels": round(mp, 2), "realsr_mp_per_s": round(mp / o, 2),
                     "baseline_mp_per_s": round(mp / b, 2), "speedup": round(b / o, 2),
                     "max_level_difference_to_baseline": diff}
    return out


def bench_torch(pool, device: str, repeats: int) -> dict:
    import torch

    from realsr.degrade import ops
    from realsr.degrade.recipes import ClassicParams, HighOrderParams

    dev = torch.device(device)
    rng = np.random.default_rng(0)
    g = torch.Generator(device=dev).manual_seed(0)
    g_cpu = torch.Generator().manual_seed(0)  # NoiseBank draws its crop positions on the CPU (as training does)
    hr = torch.rand(16, 3, 256, 256, device=dev)
    bank = ops.NoiseBank(pool, dev)
    fns = {
        "pool": lambda: ops.quantize(ops.random_pool(hr, 4, pool, bank, rng, g_cpu)),
        "classic": lambda: ops.quantize(ops.random_classic(hr, 4, ClassicParams(jpeg_prob=0.5), rng, g)),
        "bicubic": lambda: ops.quantize(ops.resize(hr, (64, 64), "bicubic")),
        "highorder": lambda: ops.quantize(ops.random_highorder(hr, 4, HighOrderParams(), rng, g)),
    }
    out = {}
    for mode, fn in fns.items():
        fn()  # warm-up (kernels, matrices, cuDNN)
        times = []
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        ms = 1000 * float(np.median(times))
        out[mode] = {"batch": "16x3x256x256", "ms_per_batch": round(ms, 2), "mp_per_s": round(16 * 256 * 256 / 1e6 / (ms / 1000), 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for the batched path")
    ap.add_argument("--modes", nargs="+", default=["pool", "classic", "bicubic", "highorder"])
    args = ap.parse_args()
    import tempfile

    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        pool = make_pool(Path(tmp))
        images = load_images(args.images)
        res = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, "
                          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)",
               "images": f"{len(images)} x {images[0].shape[1]}x{images[0].shape[0]}",
               "numpy": bench_numpy(images, pool, args.modes, args.repeats)}
        try:
            res["torch_" + args.device] = bench_torch(pool, args.device, max(5, args.repeats))
        except ImportError as e:
            res["torch"] = f"not measured: {e}"
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
