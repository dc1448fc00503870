"""Deterministic development of camera RAW files through rawpy (LibRaw)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageReadError

#: RAW file extensions (lower case, with the dot) developed through rawpy.
RAW_EXTENSIONS = frozenset(
    {
        ".dng", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".arw", ".srf", ".sr2", ".kdc", ".dcr",
        ".orf", ".rw2", ".raf", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".mef", ".mos", ".iiq",
        ".rwl", ".raw", ".k25", ".mrw",
    }
)


@dataclass(frozen=True)
class RawOptions:
    """How RAW files are developed.

    ``linear``: keep linear sensor-referred RGB (gamma 1) instead of the sRGB transfer curve.
    ``bits``: 16 (default) or 8 bits per channel. ``half_size``: LibRaw's 2x2 binning (no
    demosaicing). White balance is the camera's as-shot multipliers (LibRaw falls back to its
    daylight default when a file has none); auto-brightness is off, so exposure is the file's own.
    """

    linear: bool = False
    bits: int = 16
    half_size: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (8, 16):
            raise ValueError(f"RAW output bits must be 8 or 16, got {self.bits}")


def develop_raw(path: str | os.PathLike, options: RawOptions = RawOptions()) -> np.ndarray:
    """Develop a RAW file to ``(H, W, 3)`` RGB (sRGB primaries), uint16 or uint8.

    Deterministic: camera white balance, no auto-brightness, AHD demosaicing, sRGB output colour
    space, sRGB-like gamma (2.222, 4.5) or linear; the file's own orientation flag is applied.
    Raises :class:`ImageReadError` when LibRaw cannot read the file.
    """
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover - rawpy is a declared dependency
        raise ImageReadError("reading RAW files needs the 'rawpy' package", path) from e
    p = Path(path)
    try:
        with rawpy.imread(os.fspath(p)) as r:
            rgb = r.postprocess(
                use_camera_wb=True,
                use_auto_wb=False,
                no_auto_bright=True,
                output_color=rawpy.ColorSpace.sRGB,
                output_bps=options.bits,
                gamma=(1.0, 1.0) if options.linear else (2.222, 4.5),
                half_size=options.half_size,
                demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD,
            )
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise ImageReadError(f"cannot develop RAW file: {type(e).__name__}: {e}".rstrip(": "), p) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ImageReadError(f"RAW file developed to an unexpected shape {rgb.shape}", p)
    return np.ascontiguousarray(rgb)
