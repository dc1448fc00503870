"""The demo's built-in images and training config: generated, nothing downloaded.

* ``OUT/data/phone_scenes/``: the scenes the simulated phone photographs: a procedural photo
  (:func:`realsr.synthetic.synthetic_scene`) with a plain wall on its left half, so the photos
  have flat areas where ``realsr build-pool`` can collect noise patches;
* ``OUT/data/clean_train/``, ``clean_val/``, ``clean_test/``: clean HR images (procedural photos
  of distinct seeds, the left half a plain wall) that ``realsr degrade`` turns into training,
  validation and held-out pairs;
* ``OUT/train_config.yaml``: ``examples/tiny_cpu.yaml`` (a small RRDBNet trained with L1), copied
  here so the demo also runs from an installed package.

Run alone: ``python -m realsr.demo.data -o OUT [--quick] [--seed N]`` writes the same files.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path

import numpy as np
import yaml

from realsr.atomic import write_bytes_atomic
from realsr.images import write_png
from realsr.synthetic import synthetic_scene

from .plan import DemoPlan, plan_for

#: seed offsets of the image sets, so no two sets (nor realsr simulate's scenes, seeds 0-99) share a picture
SEED_BASE = {"phone_scenes": 500, "clean_train": 1000, "clean_test": 2000, "clean_val": 3000}

#: fraction of the width of the clean HR images that is a plain wall: flat areas as in the phone
#: photos, so the realism report compares noise on like content (texture reads as noise otherwise)
CLEAN_WALL = 0.5

#: examples/tiny_cpu.yaml (2 RRDB blocks of 32 features, L1, Adam 3e-3 with a cosine schedule)
TINY_CPU: dict = {
    "name": "demo_tiny_cpu",
    "scale": 4,
    "seed": 0,
    "model": {"arch": "rrdbnet", "args": {"nf": 32, "nb": 2, "gc": 16}},
    "data": {"patch_size": 64, "batch_size": 8, "workers": 1, "val_crop": 128},
    "optim": {
        "iterations": 600,
        "generator": {"type": "adam", "lr": 3.0e-3, "betas": [0.9, 0.99]},
        "schedule": {"type": "cosine", "eta_min": 0.05, "warmup": 50},
        "ema": 0.9,
    },
    "losses": {"pixel": {"kind": "l1", "weight": 1.0}},
    "log": {"every": 20, "val_every": 200, "save_every": 200, "samples": 2},
}


def wall_scene(size: int, seed: int, wall: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB uint8 procedural photo whose left ``wall`` columns (px) are a plain,
    softly lit wall (brightness varies by about 8 DN top to bottom; colour mean 90-180, from ``seed``).

    Flat areas are what ``realsr build-pool`` collects noise patches from (gray variance below 20
    on 0-255 after the camera noise), and what the realism report measures noise on.
    """
    img = synthetic_scene(size, size, seed=seed).astype(np.float32)
    rng = np.random.default_rng(seed)
    colour = rng.uniform(90, 180, 3).astype(np.float32)
    shade = (np.arange(size, dtype=np.float32)[:, None, None] / size - 0.5) * 8.0
    img[:, :max(0, min(wall, size))] = colour[None, None, :] + shade
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def phone_wall(plan: DemoPlan) -> int:
    """Wall width (scene px) of the phone scenes: covers whole noise patches of the half-size photo
    over about half its width, plus a 16-px (phone px) margin that the blur of the scene's edge
    does not reach, so every patch collected there is pure camera noise."""
    patches = max(1, math.ceil(plan.phone_size / 2 / plan.noise_patch))
    return 2 * (patches * plan.noise_patch + 16)


def image_sets(plan: DemoPlan) -> dict[str, tuple[int, int]]:
    """``{set name: (count, side px)}`` of the built-in image folders."""
    return {
        "phone_scenes": (plan.phone_photos, plan.phone_scene_size),
        "clean_train": (plan.train_images, plan.train_size),
        "clean_val": (plan.val_images, plan.test_size),
        "clean_test": (plan.test_images, plan.test_size),
    }


def train_config(plan: DemoPlan) -> dict:
    """The training config written to ``OUT/train_config.yaml`` (tiny_cpu; the demo's sizes are
    given as ``key=value`` overrides on the printed ``realsr train`` command line instead)."""
    cfg = copy.deepcopy(TINY_CPU)
    cfg["scale"] = plan.scale
    cfg["seed"] = plan.seed
    return cfg


def write_builtin_data(out: str | os.PathLike, plan: DemoPlan) -> dict[str, int]:
    """Write ``out/data/<set>/*.png`` and ``out/train_config.yaml``; return ``{set: count}``.

    The same plan gives the same files (existing files are rewritten identically).
    """
    out = Path(out)
    counts: dict[str, int] = {}
    for name, (count, side) in image_sets(plan).items():
        folder = out / "data" / name
        for i in range(count):
            seed = SEED_BASE[name] + 10000 * plan.seed + i
            wall = phone_wall(plan) if name == "phone_scenes" else int(side * CLEAN_WALL)
            img = wall_scene(side, seed, wall)
            write_png(folder / f"{name.split('_')[-1]}{i:03d}.png", img)
        counts[name] = count
    header = ("# examples/tiny_cpu.yaml, written by `realsr demo` (the demo's sizes are key=value overrides\n"
              "# on its `realsr train` command line; see OUT/commands.sh)\n")
    text = header + yaml.safe_dump(train_config(plan), sort_keys=False)
    write_bytes_atomic(out / "train_config.yaml", text.encode("utf-8"))
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python -m realsr.demo.data -o OUT [--quick] [--seed N]``."""
    ap = argparse.ArgumentParser(prog="python -m realsr.demo.data", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", required=True, help="demo folder (data/ and train_config.yaml go in it)")
    ap.add_argument("--quick", action="store_true", help="the sizes of realsr demo --quick")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    counts = write_builtin_data(args.out, plan_for(args.quick, args.seed))
    print(", ".join(f"{v} {k}" for k, v in counts.items()) + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
