"""PSNR and SSIM with the SR benchmark protocol (METHODS.md 7.1-7.3), in NumPy and batched torch.

Protocol (BasicSR's, which reproduces the MATLAB numbers): both images quantised to their integer
levels (a float SR output in [0, 1] is rounded to 8 bit first), ``crop_border`` pixels cut from every
side *before* the colour conversion, then on the Y channel of MATLAB ``rgb2ycbcr`` (BT.601 studio
swing, Y in [16, 235] on the 0-255 scale, not rounded unless ``round_y``: MATLAB on uint8 rounds) or
on all RGB channels; PSNR in float64 with peak 255; SSIM with the 11x11 Gaussian window (sigma 1.5),
"valid" filtering, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, averaged over channels for RGB.
16-bit images are compared at their full precision on the same 0-255 scale.

NumPy functions take (H, W, 3) RGB (or (H, W) gray) uint8 / uint16 / float [0, 1]; torch functions
(imported lazily, ``*_torch``) take (B, C, H, W) float [0, 1] and return one value per image.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from realsr.color import rgb_to_y
from realsr.images import check_pixels, from_float

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
#: MATLAB rgb2ycbcr luma weights for R, G, B in [0, 1] (Y on the 0-255 scale, + 16)
Y_WEIGHTS = (65.481, 128.553, 24.966)


def _to_255(img: np.ndarray) -> np.ndarray:
    """Integer levels on the 0-255 scale as float64: uint8 as is, uint16 / 257, float [0, 1] rounded to
    8 bit. Raises :class:`ValueError` for what :func:`realsr.images.check_pixels` refuses (0-255 floats ...)."""
    img = check_pixels(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 257.0
    return from_float(img, np.uint8).astype(np.float64)


def prepare(img: np.ndarray, crop_border: int = 0, y_channel: bool = True, round_y: bool = False) -> np.ndarray:
    """The array the metrics compare: quantised, cropped by ``crop_border`` px per side, Y (H, W) or
    RGB (H, W, 3), float64 on the 0-255 scale."""
    x = _to_255(img)
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and x.ndim == 3:
        y = rgb_to_y(x / 255.0)
        return np.round(y) if round_y else y
    return x


def _pair(sr: np.ndarray, hr: np.ndarray) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} differ in size")


def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0, y_channel: bool = True, round_y: bool = False) -> float:
    """PSNR in dB of ``sr`` against ``hr`` (the module's protocol); ``inf`` for identical images."""
    _pair(sr, hr)
    a, b = prepare(sr, crop_border, y_channel, round_y), prepare(hr, crop_border, y_channel, round_y)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _window() -> np.ndarray:
    k = cv2.getGaussianKernel(11, 1.5)
    return k @ k.T


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    w = _window()

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, w)[5:-5, 5:-5]  # "valid": drop what the border touched

    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1**2 + mu2**2 + _C1) * (s11 + s22 + _C2))
    return float(m.mean())


def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int = 0, y_channel: bool = True, round_y: bool = False) -> float:
    """SSIM of ``sr`` against ``hr`` (the module's protocol). Raises :class:`ValueError` when the
    compared area is smaller than the 11x11 window."""
    _pair(sr, hr)
    a, b = prepare(sr, crop_border, y_channel, round_y), prepare(hr, crop_border, y_channel, round_y)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {a.shape[1]}x{a.shape[0]}")
    if a.ndim == 2:
        return _ssim_channel(a, b)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def conventions(crop_border: int, y_channel: bool = True, round_y: bool = False) -> dict[str, Any]:
    """The conventions of a metric run, as recorded in ``eval.json``."""
    return {"channel": "Y (MATLAB rgb2ycbcr, BT.601 studio swing)" if y_channel else "RGB",
            "crop_border": crop_border, "round_y": round_y, "quantised": "8-bit (16-bit inputs at full precision)",
            "ssim": "11x11 Gaussian window, sigma 1.5, valid filtering, C1=(0.01*255)^2, C2=(0.03*255)^2"}


# ------------------------------------------------------------------------------------------ torch
def prepare_torch(x: Any, crop_border: int = 0, y_channel: bool = True, round_y: bool = False,
                  quantize: bool = True) -> Any:
    """Torch twin of :func:`prepare` for (B, C, H, W) float [0, 1]: rounded to 8-bit levels (unless
    ``quantize=False``), cropped, Y (B, 1, H, W) or RGB, float64 on the 0-255 scale."""
    import torch

    x = x.to(torch.float64).clamp(0, 1)
    x = torch.floor(x * 255 + 0.5) if quantize else x * 255
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and x.shape[1] == 3:
        w = torch.tensor(Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
        x = (x * w).sum(dim=1, keepdim=True) + 16.0
        if round_y:
            x = torch.round(x)
    return x


def psnr_torch(sr: Any, hr: Any, crop_border: int = 0, y_channel: bool = True, round_y: bool = False,
               quantize: bool = True) -> Any:
    """PSNR per image (B,) in dB of batches ``sr``, ``hr`` (B, C, H, W) float [0, 1]; inf where equal."""
    import torch

    a = prepare_torch(sr, crop_border, y_channel, round_y, quantize)
    b = prepare_torch(hr, crop_border, y_channel, round_y, quantize)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse == 0, torch.full_like(mse, math.inf), 10 * torch.log10(255.0**2 / mse))


def ssim_torch(sr: Any, hr: Any, crop_border: int = 0, y_channel: bool = True, round_y: bool = False,
               quantize: bool = True) -> Any:
    """SSIM per image (B,) of batches ``sr``, ``hr`` (B, C, H, W) float [0, 1] (mean over channels)."""
    import torch
    import torch.nn.functional as F

    a = prepare_torch(sr, crop_border, y_channel, round_y, quantize)
    b = prepare_torch(hr, crop_border, y_channel, round_y, quantize)
    c = a.shape[1]
    w = torch.as_tensor(_window(), dtype=a.dtype, device=a.device).expand(c, 1, 11, 11)

    def f(x: Any) -> Any:
        return F.conv2d(x, w, groups=c)  # valid

    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1**2 + mu2**2 + _C1) * (s11 + s22 + _C2))
    return m.mean(dim=(1, 2, 3))
