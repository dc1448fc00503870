"""Where a KernelGAN iteration's time goes: wall time per phase, batched and one image alone.

Wraps the phases of ``realsr.degrade.kernelgan.train_kernelgan`` (G's kernel composition, G forward,
D forward, the backward passes, Adam, crop and noise preparation) with timers, runs the same images
batched and one at a time in one process, and prints JSON: milliseconds per iteration and the share
of each phase, the per-image set-up (sampling maps, crop positions) kept apart. CPU only: on CUDA
the phases would need a synchronisation each, which changes what is measured.

    python benchmarks/kernel_phases.py --batch 16 --threads 1 --iterations 200
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import time

import torch

import realsr.degrade.kernelgan as kg

try:  # run as `python benchmarks/x.py` or as `python -m benchmarks.x`
    from kernel_bench import load_images
    from machine import machine
except ImportError:
    from benchmarks.kernel_bench import load_images
    from benchmarks.machine import machine

PHASES = {
    "kernel composition (forward)": (kg, "compose_kernel"),
    "G forward": (kg, "g_forward_kernel"),
    "D forward": (kg._Discriminators, "__call__"),
    "backward passes": (kg._Params, "set_grads"),
    "crops and noise": (kg._Job, "chunk"),
    "bicubic targets": (kg, "_bicubic_targets"),
    "G row bands": (kg, "crop_rows"),
    "Adam": (torch.optim.Adam, "step"),
}


def instrument(clock: collections.Counter) -> None:
    """Replace every phase function by a timed wrapper adding its wall seconds to ``clock``."""
    for name, (owner, attr) in PHASES.items():
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*a, _fn=fn, _name=name, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                clock[_name] += time.perf_counter() - t

        setattr(owner, attr, timed)


def run(images, params, clock: collections.Counter) -> dict:
    """Phase breakdown of one batched run of ``images``: ms per iteration per phase and their shares."""
    t = time.perf_counter()
    setup = [kg._Job(im, [0, i], params) for i, im in enumerate(images)]  # what the run's set-up costs
    t_setup = time.perf_counter() - t
    del setup
    clock.clear()
    t = time.perf_counter()
    kg.train_kernelgan(images, [[0, i] for i in range(len(images))], params)
    total = time.perf_counter() - t - t_setup
    it = params.iterations
    phases = {k: round(1000 * v / it, 2) for k, v in clock.most_common()}
    phases["other (losses, learner)"] = round(1000 * total / it - sum(phases.values()), 2)
    return {"images": len(images), "ms_per_iteration": round(1000 * total / it, 2),
            "ms_per_image_iteration": round(1000 * total / it / len(images), 3),
            "setup_s_per_image": round(t_setup / len(images), 3),
            "ms_per_iteration_by_phase": phases,
            "share_by_phase": {k: round(v / (1000 * total / it), 3) for k, v in phases.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = kg.KernelGANParams(iterations=args.iterations)
    images = [kg.prepare_image(im, params) for im in load_images(args.batch)]
    clock: collections.Counter = collections.Counter()
    instrument(clock)
    kg.train_kernelgan(images[:1], [0], kg.KernelGANParams(iterations=20))  # warm-up
    out = {"machine": machine(torch.device("cpu")), "iterations": args.iterations,
           "batched": run(images, params, clock), "one_image": run(images[:1], params, clock)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
