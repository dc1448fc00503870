"""Inference throughput: megapixels of x4 output per second for SRResCGAN and RRDBNet (random weights),
tiled vs untiled through ``realsr.train.infer.upscale_tensor``, in the same process on the same image.

For each model and precision: one warm-up run of each mode, then ``--repeats`` runs alternating
untiled (``tile=0``, one piece) and tiled (``--tile``/``--overlap``/``--batch``); medians are reported.
``tiling_overhead = tiled_s / untiled_s - 1`` (target: under 0.10). The tiler may raise the overlap
to suit a network's receptive radius (SRResCGAN). Tiles overlap, so part of the
overhead is redundant network work, reported as ``tile_area_ratio`` (LR pixels the network was given,
tiled over untiled, counted around ``model.local_forward``, so it follows the tiler's layout);
``overhead_beyond_tile_area`` is what remains after dividing it out (blending, copies, small batches).
Also the largest absolute difference and the PSNR (dB, output in [0, 1]) between tiled and untiled
outputs (null PSNR: identical). RRDBNet's receptive field is larger than any practical overlap, so
its tiled output is close to, not equal to, the untiled one.

On CUDA timings are bracketed by ``torch.cuda.synchronize()``, each mode reports
``torch.cuda.max_memory_allocated()``, and the default precisions are fp32 and bf16 (CPU: fp32).
``--peak-4k`` (default on for CUDA, off for CPU, where it takes minutes) runs a tiled 3840x2160 output
(960x540 LR, ``--tile-4k``, ``--overlap``, ``--batch``) and reports its peak memory: on CUDA
``max_memory_allocated``; on CPU the growth of the peak RSS (``ru_maxrss``) of a fresh child process
over its own peak after building the model and the input, a coarse measure (allocator caching, page
granularity).

    python benchmarks/infer_bench.py --models srrescgan --repeats 1                        # CPU, 4K output
    python benchmarks/infer_bench.py --models rrdbnet --rrdb-blocks 4 --lr-size 640x360    # CPU, quicker
    python benchmarks/infer_bench.py --device cuda                 # GPU: fp32 and bf16, 4K peak memory
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import time

import numpy as np
import torch

try:  # run as `python benchmarks/x.py` or as `python -m benchmarks.x`
    from machine import machine
except ImportError:
    from benchmarks.machine import machine

from realsr.synthetic import synthetic_scene
from realsr.train.infer import InferOptions, resolve_device, to_tensor, upscale_tensor
from realsr.train.models import build

MODELS = ("srrescgan", "rrdbnet")
LR_4K = (540, 960)  # x4 -> 3840x2160


def make_model(name: str, rrdb_blocks: int):
    torch.manual_seed(0)  # a fresh model per precision: upscale_tensor casts the model in place
    return build(name, **({"nb": rrdb_blocks} if name == "rrdbnet" else {}))


def make_lr(h: int, w: int) -> torch.Tensor:
    return to_tensor(synthetic_scene(h, w, seed=0))


def run_once(model, lr: torch.Tensor, opts: InferOptions, dev: torch.device, backoffs: list) -> tuple[float, torch.Tensor]:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    y = upscale_tensor(model, lr, opts, on_backoff=lambda tile, batch: backoffs.append([tile, batch]))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, y


def count_pixels(model) -> list[int]:
    """Make ``model.local_forward`` add the LR pixels it is given to the returned one-item list."""
    seen, inner = [0], model.local_forward

    def counting(x: torch.Tensor) -> torch.Tensor:
        seen[0] += x.shape[0] * x.shape[2] * x.shape[3]
        return inner(x)

    model.local_forward = counting
    return seen


def bench_case(name: str, lr: torch.Tensor, precision: str, dev: torch.device, args) -> dict:
    model = make_model(name, args.rrdb_blocks)
    seen = count_pixels(model)
    _, _, h, w = lr.shape
    modes = {"untiled": InferOptions(tile=0, overlap=0, batch=1, device=str(dev), precision=precision),
             "tiled": InferOptions(tile=args.tile, overlap=args.overlap, batch=args.batch,
                                   device=str(dev), precision=precision)}
    times: dict[str, list[float]] = {m: [] for m in modes}
    peak = {m: 0 for m in modes}
    outs, backoffs = {}, {m: [] for m in modes}
    pixels = {}
    for m, opts in modes.items():  # warm-up (allocator, cuDNN autotune, thread pools); count network input
        seen[0] = 0
        run_once(model, lr, opts, dev, backoffs[m])
        pixels[m] = seen[0]
    for _ in range(args.repeats):
        for m, opts in modes.items():  # alternate, so slow drift hits both modes alike
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t, outs[m] = run_once(model, lr, opts, dev, backoffs[m])
            times[m].append(t)
            if dev.type == "cuda":
                peak[m] = max(peak[m], torch.cuda.max_memory_allocated())
    out_mp = h * w * model.scale ** 2 / 1e6
    med = {m: float(np.median(v)) for m, v in times.items()}
    area = pixels["tiled"] / pixels["untiled"]
    diff = (outs["tiled"] - outs["untiled"]).abs()
    mse = float((diff ** 2).mean())
    res = {"lr": f"{w}x{h}", "output_megapixels": round(out_mp, 3)}
    for m in modes:
        res[m] = {"median_s": round(med[m], 4), "output_mp_per_s": round(out_mp / med[m], 4)}
        if dev.type == "cuda":
            res[m]["max_memory_allocated_mib"] = round(peak[m] / 2 ** 20, 1)
        if backoffs[m]:
            res[m]["oom_backoffs_tile_batch"] = backoffs[m]
    overhead = med["tiled"] / med["untiled"] - 1
    res.update(tiling_overhead=round(overhead, 4), target_met=overhead < 0.10,
               tile_area_ratio=round(area, 4),
               overhead_beyond_tile_area=round(med["tiled"] / (med["untiled"] * area) - 1, 4),
               max_abs_diff=float(diff.max()), psnr_tiled_vs_untiled_db=round(10 * math.log10(1 / mse), 2) if mse > 0 else None)
    return res


def _rss_child(name: str, rrdb_blocks: int, opts: InferOptions, queue) -> None:
    """In a fresh process: peak RSS (KiB on Linux) before and after one tiled 4K inference."""
    model, lr = make_model(name, rrdb_blocks), make_lr(*LR_4K)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    upscale_tensor(model, lr, opts)
    queue.put((before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t))


def peak_4k(name: str, precision: str, dev: torch.device, args) -> dict:
    opts = InferOptions(tile=args.tile_4k, overlap=args.overlap, batch=args.batch, device=str(dev), precision=precision)
    res = {"output": "3840x2160", "tile": opts.tile, "overlap": opts.overlap, "batch": opts.batch}
    if dev.type == "cuda":
        model, lr = make_model(name, args.rrdb_blocks), make_lr(*LR_4K)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        backoffs: list = []
        t, _ = run_once(model, lr, opts, dev, backoffs)
        res.update(max_memory_allocated_mib=round(torch.cuda.max_memory_allocated() / 2 ** 20, 1),
                   seconds=round(t, 3), output_mp_per_s=round(3840 * 2160 / 1e6 / t, 3))
        if backoffs:
            res["oom_backoffs_tile_batch"] = backoffs
        return res
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_rss_child, args=(name, args.rrdb_blocks, opts, queue))
    proc.start()
    before, after, t = queue.get()
    proc.join()
    res.update(peak_rss_growth_mib=round((after - before) / 1024, 1), peak_rss_mib=round(after / 1024, 1),
               seconds=round(t, 3), output_mp_per_s=round(3840 * 2160 / 1e6 / t, 3),
               note="ru_maxrss of a fresh process: a coarse measure (allocator caching, page granularity)")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, from " + ", ".join(MODELS))
    ap.add_argument("--lr-size", default="960x540",
                    help="LR size WxH (or N for NxN); the default makes a 4K (3840x2160) x4 output")
    ap.add_argument("--rrdb-blocks", type=int, default=23, help="RRDBNet blocks (23: ESRGAN; fewer for quick runs)")
    ap.add_argument("--tile", type=int, default=InferOptions.tile, help="tile side, LR pixels (library default)")
    ap.add_argument("--overlap", type=int, default=InferOptions.overlap, help="tile overlap, LR pixels (library default)")
    ap.add_argument("--batch", type=int, default=InferOptions.batch, help="tiles per forward pass")
    ap.add_argument("--precisions", default=None, help="comma-separated fp32,bf16,fp16 (default: fp32 on CPU, fp32,bf16 on CUDA)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak-4k", action=argparse.BooleanOptionalAction, default=None,
                    help="peak memory of a tiled 3840x2160 output (default: on for CUDA, off for CPU)")
    ap.add_argument("--tile-4k", type=int, default=InferOptions.tile, help="tile side for --peak-4k")
    args = ap.parse_args()

    dev = resolve_device(args.device)
    precisions = (args.precisions or ("fp32,bf16" if dev.type == "cuda" else "fp32")).split(",")
    do_4k = args.peak_4k if args.peak_4k is not None else dev.type == "cuda"
    w, _, h = args.lr_size.partition("x")
    size_w, size_h = int(w), int(h or w)
    res: dict = {"machine": machine(dev),
                 "settings": {"tile": args.tile, "overlap": args.overlap, "batch": args.batch, "repeats": args.repeats,
                              "rrdb_blocks": args.rrdb_blocks, "precisions": precisions, "weights": "random (seed 0)"},
                 "results": {}}
    for name in args.models.split(","):
        lr = make_lr(size_h, size_w)
        for p in precisions:
            key = f"{name}_{p}"
            res["results"][key] = bench_case(name, lr, p, dev, args)
            if do_4k:
                res["results"][key]["peak_4k"] = peak_4k(name, p, dev, args)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
