"""Settings of ``realsr align`` (:class:`AlignParams`); each field is a CLI option of the same name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import geometry as geo
from .mapping import INTERPOLATIONS

REFINE_MODES = ("field", "ecc", "none")
PHOTOMETRIC_MODES = ("color", "luminance", "none")
INTERPOLATION_NAMES = tuple(INTERPOLATIONS)


@dataclass(frozen=True)
class AlignParams:
    """Alignment settings. Pixel units: "LR px" = pixels of the LR capture."""

    scale: int = 2  #: output scale: HR size == scale * LR size, exactly
    zoom: float | None = None  #: expected focal-length ratio HR/LR; None = ``scale``
    zoom_tolerance: float = 0.3  #: reject when the measured zoom differs from ``zoom`` by more (relative)
    model: str = "homography"  #: "homography" or "affine"
    method: str = "magsac"  #: robust estimator: "magsac" (USAC MAGSAC++) or "ransac"
    ratio: float = 0.75  #: Lowe ratio-test threshold
    max_features: int = 8000  #: SIFT keypoints kept per image (strongest)
    coarse_size: int = 768  #: coarse matching: LR reduced to at most this many pixels per side
    work_size: int = 1024  #: refinement: LR crop reduced to at most this many pixels per side
    coarse_threshold: float = 3.0  #: inlier distance in coarse-image pixels
    refine_threshold: float = 1.5  #: inlier distance in refinement working pixels
    blur: float = 0.5  #: Gaussian sigma (LR px) applied to the HR before matching (LR optics)
    crop: float = 0.03  #: fraction of the crop width/height removed per side each round
    max_iters: int = 2  #: iterative-refinement rounds at most (0: coarse only)
    tol: float = 0.05  #: stop when an update moves no crop corner by more (LR px)
    refine: str = "field"  #: dense refinement: "field" (ECC + smooth field), "ecc", "none" (paper)
    field_degree: int = 3  #: polynomial degree of the displacement field
    photometric: str = "color"  #: "color", "luminance" or "none"
    photometric_sigma: float = 0.0  #: low-pass (LR px) before fitting the photometric transfer
    interpolation: str = "cubic"  #: HR resampling: "cubic", "lanczos" or "linear"
    margin: float = 3.0  #: HR pixels at the HR border never sampled (interpolation support)
    min_size: int = 32  #: smallest output LR side (px)
    min_inliers: int = 30  #: gate: fewer final inliers -> rejected
    max_residual: float = 0.5  #: gate: median residual misalignment above this (LR px) -> rejected
    min_psnr: float = 20.0  #: gate: PSNR-Y (dB) of bicubic-downscaled HR vs LR below this -> rejected

    def __post_init__(self) -> None:
        checks = [
            (self.scale >= 1, "scale must be >= 1"),
            (self.zoom is None or self.zoom > 0, "zoom must be > 0"),
            (self.model in geo.MODELS, f"model must be one of {geo.MODELS}"),
            (self.method in geo.METHODS, f"method must be one of {geo.METHODS}"),
            (self.refine in REFINE_MODES, f"refine must be one of {REFINE_MODES}"),
            (0 <= self.field_degree <= 5, "field_degree must be in 0..5"),
            (self.photometric in PHOTOMETRIC_MODES, f"photometric must be one of {PHOTOMETRIC_MODES}"),
            (self.interpolation in INTERPOLATION_NAMES, f"interpolation must be one of {INTERPOLATION_NAMES}"),
            (0.0 <= self.crop < 0.25, "crop must be in [0, 0.25)"),
            (0.0 < self.ratio <= 1.0, "ratio must be in (0, 1]"),
            (self.max_iters >= 0, "max_iters must be >= 0"),
            (self.coarse_size >= 64 and self.work_size >= 64, "coarse/work sizes must be >= 64"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @property
    def expected_zoom(self) -> float:
        return float(self.zoom if self.zoom is not None else self.scale)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
