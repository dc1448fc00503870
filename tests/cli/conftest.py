"""Fixtures shared by the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from realsr.cli.main import main
from realsr.images import write_png
from realsr.synthetic import synthetic_scene


def _run(*args) -> int:
    return main(["-q", *map(str, args)])


@pytest.fixture(scope="session")
def degraded(tmp_path_factory) -> tuple[Path, Path]:
    """Training and held-out pairs made by `realsr degrade` with one fixed camera-like degradation:
    Gaussian blur sigma 1.2-1.4 HR px, bicubic x1/4 without antialiasing, no noise."""
    root = tmp_path_factory.mktemp("degraded")
    for name, seeds, size in (("train", range(6), 192), ("val", range(100, 103), 128)):
        src = root / f"hr_{name}"
        src.mkdir()
        for s in seeds:
            write_png(src / f"s{s}.png", synthetic_scene(size, size, seed=s))
        assert _run("degrade", src, "-o", root / name, "--scale", 4, "--mode", "classic", "--blur-sigma", 1.2, 1.4,
                    "--resize-methods", "bicubic", "--noise", "none", "--workers", 1, "--seed", 1) == 0
    return root / "train", root / "val"
