"""Helpers shared by the training tests: a tiny pair dataset, a tiny config, log readers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from realsr.images import write_png


def block_pairs(folder: Path, n: int = 3, lr_size: int = 24, scale: int = 4, seed: int = 0) -> Path:
    """A pair dataset whose HR is its LR blown up into constant scale x scale blocks, so every
    aligned crop, flip and transpose keeps LR == HR[::scale, ::scale] exactly."""
    rng = np.random.default_rng(seed)
    for sub in ("HR", "LR"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lr = rng.integers(0, 256, (lr_size, lr_size + 4 * i, 3), dtype=np.uint8)
        write_png(folder / "LR" / f"p{i}.png", lr)
        write_png(folder / "HR" / f"p{i}.png", lr.repeat(scale, 0).repeat(scale, 1))
    (folder / "manifest.json").write_text(json.dumps({"format": "realsr-pairs", "version": 1, "scale": scale, "pairs": []}))
    return folder


def tiny(train: Path, **sections) -> dict:
    tree = {"name": "t", "scale": 4, "seed": 3,
            "model": {"arch": "rrdbnet", "args": {"nf": 8, "nb": 1, "gc": 4}},
            "data": {"train": str(train), "patch_size": 32, "batch_size": 4, "workers": 0},
            "optim": {"iterations": 6, "ema": 0.9, "schedule": {"type": "multistep", "milestones": [3], "gamma": 0.5}},
            "log": {"every": 1, "val_every": 0, "save_every": 3, "progress": False, "tensorboard": False}}
    for k, v in sections.items():
        tree.setdefault(k, {})
        if isinstance(v, dict):
            tree[k].update(v)
        else:
            tree[k] = v
    return tree


def run_killed_at(trainer, iteration: int) -> None:
    """Run ``trainer`` (a built ``Trainer``) as if the process were interrupted (Ctrl-C) when it is
    about to train iteration ``iteration + 1``: asserts the interrupt propagates."""
    cls = type(trainer)
    real = cls.train_step

    def killed(self, micro):
        if self.iteration == iteration:
            raise KeyboardInterrupt
        return real(self, micro)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "train_step", killed)
        with pytest.raises(KeyboardInterrupt):
            trainer.run()


def losses_of(run: Path) -> list[tuple[int, dict]]:
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [(r["iteration"], r["losses"]) for r in recs if "losses" in r]


train_kit = SimpleNamespace(block_pairs=block_pairs, tiny=tiny, losses_of=losses_of, run_killed_at=run_killed_at)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """``kit.block_pairs``, ``kit.tiny``, ``kit.losses_of``, ``kit.run_killed_at``."""
    return train_kit


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return block_pairs(tmp_path_factory.mktemp("pairs"))
