"""Sizes of the demo: the full run (under 10 minutes on 2 CPU cores) and ``--quick`` (under 2).

Every number the demo's steps use is here, so the printed command lines, the built-in data and the
report all read one :class:`DemoPlan`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

PRESETS = ("full", "quick")


@dataclass(frozen=True)
class DemoPlan:
    """One demo configuration. Pixel sizes are in pixels of the image named; sigmas as stated."""

    preset: str = "full"  #: "full" or "quick"
    scale: int = 4  #: SR scale of the whole demo (captures, pool, pairs, model)
    seed: int = 0  #: seed of every random step
    # realsr simulate + realsr align: postcard captures at zoom = scale
    captures: int = 4  #: capture pairs rendered from the built-in procedural scene
    capture_lr_size: tuple[int, int] = (640, 480)  #: LR capture (width, height); HR capture has the same size
    # simulated "phone" photos (realsr degrade --mode classic at x2): a known kernel and noise
    phone_photos: int = 6  #: photos the pool is built from
    phone_scene_size: int = 512  #: side of the clean square scene; the phone photo is half of it
    phone_blur_sigma: float = 1.6  #: std (scene px) of the camera's isotropic Gaussian x2 blur
    phone_kernel_size: int = 21  #: support of that Gaussian (odd, scene px)
    phone_noise_sigma: float = 3.0  #: std of the camera's Gaussian noise, 0-255 scale, per channel
    # realsr build-pool
    kernelgan_iterations: int = 1000  #: KernelGAN iterations per photo (official: 3000)
    noise_patch: int = 64  #: noise patch side and grid stride (phone px; official: 256)
    # realsr degrade --mode pool: clean HR images -> pairs
    train_images: int = 10  #: training HR images
    train_size: int = 512  #: side of each (HR px; large enough for the realism noise estimate)
    val_images: int = 2  #: validation HR images (monitoring during training)
    test_images: int = 4  #: held-out HR images scored by realsr eval
    test_size: int = 384  #: side of the validation and test images (HR px)
    # realsr train (a small RRDBNet, examples/tiny_cpu.yaml with these overrides)
    iterations: int = 2000  #: training iterations
    patch_size: int = 64  #: HR training crop (px; LR crop = patch / scale)
    batch_size: int = 8  #: crops per iteration
    learning_rate: float = 3e-3  #: Adam learning rate (cosine schedule down to 5 % of it)
    grad_clip: float = 0.5  #: gradient-norm clip (unclipped, 5e-3 diverges; clipped, 3e-3 learns faster)
    val_every: int = 250  #: iterations between validations

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}")
        if self.phone_kernel_size % 2 == 0:
            raise ValueError("phone_kernel_size must be odd")
        if self.patch_size % self.scale:
            raise ValueError("patch_size must be a multiple of scale")

    @property
    def phone_size(self) -> int:
        """Side of a phone photo (px): the scene downscaled by 2."""
        return self.phone_scene_size // 2

    @property
    def true_sigma_x4(self) -> float:
        """Std (HR px) of the camera's x4 kernel: the x2 Gaussian applied twice (sigma^2 + (2 sigma)^2)."""
        return math.sqrt(5.0) * self.phone_blur_sigma

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["capture_lr_size"] = list(self.capture_lr_size)
        return d


FULL = DemoPlan()
QUICK = replace(
    FULL, preset="quick", captures=2, phone_photos=2, kernelgan_iterations=400, train_images=4, val_images=1,
    test_images=3, iterations=400, val_every=200,
)


def plan_for(quick: bool, seed: int = 0) -> DemoPlan:
    """The quick or the full plan with ``seed``."""
    return replace(QUICK if quick else FULL, seed=seed)
