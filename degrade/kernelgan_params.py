"""KernelGAN's hyper-parameters and input preparation (no torch needed: the CLI and the pool format
use them without importing the training code)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from realsr.images import as_rgb

BICUBIC_LOSSES = ("mixed", "per-channel")
D_INITS = ("official", "xavier")
FORWARDS = ("kernel", "network")


@dataclass(frozen=True)
class KernelGANParams:
    """Hyper-parameters; defaults are the official code's (``configs.py``, ``learner.py``).

    Options that deviate from it (each documented in ``docs/pool.md``):

    * ``bicubic_loss="per-channel"``: compare each colour channel of G's output with the bicubic
      downscale of the *same* channel. The official loss sums the three input channels into every
      target channel (METHODS.md 2.10 pitfall 1), so dark or saturated images never reach the
      0.4 threshold that switches the kernel constraints on.
    * ``d_init="xavier"``: initialise D's convolutions with xavier-normal (gain 0.1) as the official
      code intends. In the official code that call writes into a tensor spectral norm recomputes
      (D runs once in its constructor), so D keeps PyTorch's default (Kaiming-uniform) weights;
      ``"official"`` reproduces that.
    * ``lambda_bicubic=20``: the value in Tencent/Real-SR's vendored copy (upstream: 5).
    * ``n_filtering`` above 40: the post-processing keeps more of a wide kernel (the official 40
      narrows a sigma-2 Gaussian to 1.43 px; docs/pool.md).
    """

    iterations: int = 3000
    g_crop: int = 64
    g_structure: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    g_channels: int = 64
    d_channels: int = 64
    d_layers: int = 7
    d_kernel: int = 7
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    lr_step: int = 750
    lr_decay: float = 10.0
    lambda_bicubic: float = 5.0
    lambda_sum2one: float = 0.5
    lambda_boundaries: float = 0.5
    lambda_centralized: float = 1.0
    lambda_sparse: float = 5.0
    bicubic_threshold: float = 0.4
    lambda_update_freq: int = 200
    lambda_bicubic_decay: float = 100.0
    lambda_bicubic_min: float = 5e-6
    bicubic_loss: str = "mixed"
    d_init: str = "official"
    edge_shave: int = 10
    n_filtering: int = 40
    forward: str = "kernel"

    def __post_init__(self) -> None:
        if self.bicubic_loss not in BICUBIC_LOSSES:
            raise ValueError(f"bicubic_loss must be one of {BICUBIC_LOSSES}")
        if self.d_init not in D_INITS:
            raise ValueError(f"d_init must be one of {D_INITS}")
        if self.forward not in FORWARDS:
            raise ValueError(f"forward must be one of {FORWARDS}")
        if self.iterations < 1 or self.g_crop < 16 or self.d_layers < 3 or self.n_filtering < 1:
            raise ValueError("iterations >= 1, g_crop >= 16, d_layers >= 3 and n_filtering >= 1 are required")
        if len(self.g_structure) < 2 or self.g_structure[-1] != 1 or any(s < 1 for s in self.g_structure):
            raise ValueError("G needs at least two layers, each at least 1x1, the last 1x1 (it carries the stride 2)")
        if self.kernel_size < 5:
            raise ValueError(f"G's kernel would be {self.kernel_size}x{self.kernel_size}: at least 5x5 is needed")
        if self.kernel_size % 2 == 0:  # the centring convention (METHODS.md 2.8) and the x4 kernel need an odd size
            raise ValueError(f"G's kernel would be {self.kernel_size}x{self.kernel_size}: its size (the sum of the "
                             "layer sizes minus one each, plus one) must be odd")
        if self.d_crop < self.d_kernel + 1:
            raise ValueError(f"G's {self.kernel_size}x{self.kernel_size} kernel leaves {self.d_crop}-px outputs of the "
                             f"{self.g_crop}-px crops, too small for D's {self.d_kernel}x{self.d_kernel} layer")

    @property
    def kernel_size(self) -> int:
        """Size of the kernel G represents: its receptive field (13 for the default structure)."""
        return sum(s - 1 for s in self.g_structure) + 1

    @property
    def d_crop(self) -> int:
        """Size of G's output, which is also the size of D's real crops (26 by default)."""
        return (self.g_crop - self.kernel_size) // 2 + 1

    @property
    def min_image_size(self) -> int:
        """Smallest image side (before the edge shave) the estimation can run on."""
        return self.g_crop + 2 * self.edge_shave

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["g_structure"] = list(self.g_structure)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "KernelGANParams":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "g_structure" in kw:
            kw["g_structure"] = tuple(kw["g_structure"])
        return cls(**kw)


def prepare_image(img: np.ndarray, params: KernelGANParams) -> np.ndarray:
    """The image KernelGAN trains on: RGB float64 in [0, 1], ``edge_shave`` px cut per side, then
    cropped to even H and W. Accepts (H, W, 3) uint8/uint16/float [0, 1] or (H, W) gray."""
    img = as_rgb(img)
    if img.dtype == np.uint8:
        x = img / 255.0
    elif img.dtype == np.uint16:
        x = img / 65535.0
    else:
        x = np.asarray(img, np.float64)
    e = params.edge_shave
    if e:
        x = x[e:-e, e:-e]
    h, w = x.shape[:2]
    return np.ascontiguousarray(x[: h - h % 2, : w - w % 2, :3])
