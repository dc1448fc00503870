"""KernelGAN throughput: one image at a time vs batched (8 and 32 images), same process, same data.

Prints JSON: seconds per image for a full 3000-iteration estimation, throughput ratios against
one-at-a-time, and
whether the batched kernels are bit-identical to the one-at-a-time ones (same seeds), which makes the
accuracy identical by construction. Also times the official layer-by-layer G forward one at a time
(``forward="network"``) for reference, and batched estimation split over worker processes.

With ``--iterations`` below 3000 each run is measured as it is (set-up: sampling maps, crop positions,
initial weights; worker start-up) and the iterations it did not do are added at its own measured
per-iteration rate, taken after the first chunk of 50 iterations. (Scaling the whole run's time
instead would count the set-up 3000/iterations times.)

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


CHUNK = 50  # iterations per progress call of train_kernelgan


def timed(images, seeds, params, device) -> tuple[float, float, list[np.ndarray]]:
    """Wall time of one run, its per-iteration time after the first chunk (s), and the kernels."""
    cuda = str(device).startswith("cuda")
    marks: list[float] = []

    def mark(_n: int) -> None:
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = train_kernelgan(images, seeds, params, device, progress=mark, chunk=CHUNK)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - t
    done = params.iterations
    rate = (marks[-1] - marks[0]) / (done - CHUNK) if done > CHUNK else total / done
    return total, rate, [r.kernel for r in out]


def full_run(total: float, rate: float, done: int) -> float:
    """Seconds a run of FULL iterations takes: the measured run plus its missing iterations."""
    return total + max(0, FULL - done) * rate


def _worker(args):
    images, seeds, params, device, threads = args
    torch.set_num_threads(threads)
    return timed(images, seeds, params, device)[1]


def _worker_one_at_a_time(args):
    """Full-run seconds of each of ``images`` estimated alone, one after the other, in this process."""
    images, seeds, params, device, threads = args
    torch.set_num_threads(threads)
    return [full_run(*timed(images[i:i + 1], seeds[i:i + 1], params, device)[:2], params.iterations)
            for i in range(len(images))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=300, help="iterations run per measurement (the rest of 3000 added at the measured rate)")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--single", type=int, default=2, help="images timed one at a time")
    ap.add_argument("--processes", type=int, default=2, help="worker processes for the split-batch measurement (0: skip)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="measure every configuration this many times, interleaved; the medians are reported")
    args = ap.parse_args()
    p = KernelGANParams(iterations=args.iterations)
    biggest = max(args.batches)
    raw = load_images(biggest)
    images = [prepare_image(im, p) for im in raw]
    seeds = [[0, i] for i in range(biggest)]
    cuda = str(args.device).startswith("cuda")
    res: dict = {
        "device": str(args.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "iterations_measured": args.iterations, "seconds_per_image_are_for": FULL, "repeats": args.repeats,
    }
    if cuda:
        res["gpu"] = torch.cuda.get_device_name()
    timed(images[:1], seeds[:1], KernelGANParams(iterations=20), args.device)  # warm-up
    runs = [measure(args, images, seeds, p) for _ in range(args.repeats)]
    checks = ("bit_identical", "max_kernel_difference")
    med = {key: float(np.median([r[key] for r in runs])) for key in runs[0] if key not in checks}
    res["bit_identical_batched_vs_one_at_a_time"] = all(r["bit_identical"] for r in runs)
    res["max_kernel_difference_batched_vs_one_at_a_time"] = max(r["max_kernel_difference"] for r in runs)
    # One at a time with each thread count up to the default (a single image's many small operations
    # can run faster on one thread than on two); the fastest is the baseline of the ratios.
    by_threads = {key.split("_")[-1]: v for key, v in med.items() if key.startswith("one_threads_")}
    best = min(by_threads, key=by_threads.get)
    one = by_threads[best]
    res["one_at_a_time"] = {"s_per_image": round(one, 2), "threads": int(best),
                            "s_per_image_by_threads": {k: round(v, 2) for k, v in by_threads.items()}}
    res["official_network_forward_one_at_a_time_s_per_image"] = round(med["network"], 2)
    for key, v in med.items():
        if key.startswith("batch_"):
            res[key] = {"s_per_image": round(v, 2), "throughput_vs_one_at_a_time": round(one / v, 2)}
    if "one_processes" in med:
        n = args.processes
        res[f"one_at_a_time_over_{n}_processes"] = {
            "s_per_image": round(med["one_processes"], 2),
            f"batch_{biggest}_over_{n}_processes_vs_this": round(med["one_processes"] / med[f"batch_{biggest}_over_{n}_processes"], 2)}
    res["per_repeat_s_per_image"] = [{k: round(v, 2) for k, v in r.items() if k not in checks} for r in runs]
    print(json.dumps(res, indent=2))


def measure(args, images, seeds, p) -> dict:
    """Seconds per image of a full run for every configuration, once each."""
    out: dict = {}
    cuda = str(args.device).startswith("cuda")
    threads_all = torch.get_num_threads()
    single_k: list[np.ndarray] = []
    counts = [threads_all] if cuda else sorted({1, threads_all})
    for n in counts:
        torch.set_num_threads(n)
        total = 0.0
        for i in range(args.single):
            t, rate, k = timed(images[i:i + 1], seeds[i:i + 1], p, args.device)
            total += full_run(t, rate, p.iterations)
            if n == counts[0]:
                single_k += k
        out[f"one_threads_{n}"] = total / args.single
    torch.set_num_threads(threads_all)
    p_net = KernelGANParams(iterations=max(2 * CHUNK, args.iterations // 3), forward="network")
    t_net, rate_net, _ = timed(images[:1], seeds[:1], p_net, args.device)
    out["network"] = full_run(t_net, rate_net, p_net.iterations)
    identical, diff = True, 0.0
    for b in args.batches:
        t, rate, ks = timed(images[:b], seeds[:b], p, args.device)
        out[f"batch_{b}"] = full_run(t, rate, p.iterations) / b
        identical &= all(np.array_equal(a, c) for a, c in zip(ks[:args.single], single_k))
        diff = max([diff] + [float(np.abs(a - c).max()) for a, c in zip(ks[:args.single], single_k)])
    # bit-identical on the CPU (batch-invariant arithmetic); cuBLAS picks its kernels by batch size,
    # so on CUDA the largest kernel difference is the figure to read
    out["bit_identical"] = identical
    out["max_kernel_difference"] = diff
    if args.processes > 1 and not cuda:
        b, n = max(args.batches), args.processes
        threads = max(1, (os.cpu_count() or 1) // n)
        chunks = [(images[i:b:n], seeds[i:b:n], p, args.device, threads) for i in range(n)]
        t = time.perf_counter()
        with mp.get_context("spawn").Pool(n) as pool:
            rates = pool.map(_worker, chunks)
        out[f"batch_{b}_over_{n}_processes"] = full_run(time.perf_counter() - t, max(rates), p.iterations) / b
        # the same split without batching: each process estimates its images one at a time, side by
        # side (what one process per core gives without batched estimation)
        k = args.single
        with mp.get_context("spawn").Pool(n) as pool:
            times = pool.map(_worker_one_at_a_time, [(images[i * k:(i + 1) * k], seeds[i * k:(i + 1) * k], p, args.device,
                                                      threads) for i in range(n)])
        out["one_processes"] = max(sum(t) for t in times) / k / n  # the processes run side by side
    return out


if __name__ == "__main__":
    main()
