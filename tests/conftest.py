"""Shared fixtures. Tests on real data read ../shared/data (beside the project) and skip when absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from realsr.synthetic import synthetic_scene

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REALSR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


@pytest.fixture(scope="session")
def shared():
    """``shared("city100", "iPhoneX")``: a path under ../shared/data; skips the test when absent."""
    return _shared


@pytest.fixture(scope="session")
def scene() -> np.ndarray:
    """A 768x1024 procedural RGB uint8 photo."""
    return synthetic_scene(768, 1024, seed=0)


@pytest.fixture(scope="session")
def scenes() -> list[np.ndarray]:
    return [synthetic_scene(768, 1024, seed=s) for s in range(1, 5)]


def write_odd_formats(folder: Path) -> Path:
    """``folder`` (created) with four 64x64 sources a stage must accept: ``ok.png`` (RGB),
    ``gray.png``, ``rgba.png`` (opaque alpha 200) and ``deep.png`` (16-bit)."""
    import cv2

    from realsr.images import write_png

    folder.mkdir(parents=True, exist_ok=True)
    write_png(folder / "ok.png", synthetic_scene(64, 64, seed=3))
    write_png(folder / "gray.png", synthetic_scene(64, 64, seed=4)[..., 0])
    rgba = np.dstack([synthetic_scene(64, 64, seed=5), np.full((64, 64), 200, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba[..., [2, 1, 0, 3]])
    write_png(folder / "deep.png", synthetic_scene(64, 64, seed=6).astype(np.uint16) * 257)
    return folder


@pytest.fixture(scope="session")
def odd_formats():
    """``odd_formats(folder)``: writes RGB, gray, RGBA and 16-bit sources there (see write_odd_formats)."""
    return write_odd_formats


@pytest.fixture(scope="session")
def bomb_png() -> bytes:
    """A small PNG whose header claims 60000 x 60000 RGB pixels (over OpenCV's decoding limit)."""
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    side = 60000
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * (side * 3 + 1) * 4)) + chunk(b"IEND", b""))
