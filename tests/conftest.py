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
