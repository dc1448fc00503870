"""KernelGAN throughput: one image at a time vs batched (8 and 32 images), same process, same data.

Prints JSON: seconds per image for a full estimation (``--iterations`` measured, scaled to 3000:
the cost per iteration does not change during a run), throughput ratios against one-at-a-time, and
whether the batched kernels are bit-identical to the one-at-a-time ones (same seeds), which makes the
accuracy identical by construction. Also times the official layer-by-layer G forward one at a time
(``forward="network"``) for reference, and batched estimation split over worker processes.

    python benchmarks/kernel_bench.py --device cpu --iterations 300
    python benchmarks/kernel_bench.py --device cuda --iterations 3000 --batches 8 32
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from realsr.degrade.kernelgan import KernelGANParams, prepare_image, train_kernelgan
from realsr.images import read_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FULL = 3000


def load_images(n: int) -> list[np.ndarray]:
    files = sorted(glob.glob(str(DATA / "real_lr" / "*.png"))) + sorted(glob.glob(str(DATA / "city100" / "*" / "*L.png")))
    if not files:
        raise SystemExit(f"no real LR photos under {DATA}")
    imgs = [read_image(f) for f in files]
    return [imgs[i % len(imgs)] for i in range(n)]


def timed(images, seeds, params, device) -> tuple[float, list[np.ndarray]]:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = train_kernelgan(images, seeds, params, device)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, [r.kernel for r in out]


def _worker(args):
    images, seeds, params, device, threads = args
    torch.set_num_threads(threads)
    return timed(images, seeds, params, device)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=300, help="iterations measured per run (scaled to 3000)")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--single", type=int, default=2, help="images timed one at a time")
    ap.add_argument("--processes", type=int, default=2, help="worker processes for the split-batch measurement (0: skip)")
    args = ap.parse_args()
    p = KernelGANParams(iterations=args.iterations)
    biggest = max(args.batches)
    raw = load_images(biggest)
    images = [prepare_image(im, p) for im in raw]
    seeds = [[0, i] for i in range(biggest)]
    scale = FULL / args.iterations
    res: dict = {
        "device": str(args.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "iterations_measured": args.iterations, "seconds_per_image_are_for": FULL,
    }
    if str(args.device).startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name()
    timed(images[:1], seeds[:1], KernelGANParams(iterations=20), args.device)  # warm-up
    single_t, single_k = 0.0, []
    for i in range(args.single):
        t, k = timed(images[i:i + 1], seeds[i:i + 1], p, args.device)
        single_t += t
        single_k += k
    one = single_t / args.single * scale
    res["one_at_a_time_s_per_image"] = round(one, 2)
    t_net, _ = timed(images[:1], seeds[:1], KernelGANParams(iterations=max(20, args.iterations // 5), forward="network"),
                     args.device)
    res["official_network_forward_one_at_a_time_s_per_image"] = round(t_net * FULL / max(20, args.iterations // 5), 2)
    for b in args.batches:
        t, ks = timed(images[:b], seeds[:b], p, args.device)
        per = t / b * scale
        res[f"batch_{b}"] = {
            "s_per_image": round(per, 2), "throughput_vs_one_at_a_time": round(one / per, 2),
            "bit_identical_to_one_at_a_time": all(np.array_equal(a, c) for a, c in zip(ks[:args.single], single_k)),
        }
    if args.processes > 1 and not str(args.device).startswith("cuda"):
        b = biggest
        threads = max(1, (os.cpu_count() or 1) // args.processes)
        chunks = [(images[i:b:args.processes], seeds[i:b:args.processes], p, args.device, threads)
                  for i in range(args.processes)]
        t = time.perf_counter()
        with mp.get_context("spawn").Pool(args.processes) as pool:
            pool.map(_worker, chunks)
        per = (time.perf_counter() - t) / b * scale
        res[f"batch_{b}_over_{args.processes}_processes"] = {
            "s_per_image": round(per, 2), "throughput_vs_one_at_a_time": round(one / per, 2), "threads_each": threads}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
