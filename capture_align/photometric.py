"""Photometric correction of the LR capture to the HR capture (RealSR's transfers).

Fitted on the aligned pair (LR crop vs HR downscaled to the LR grid), applied to the LR only: the
HR is the ground truth and is never altered. Images are float RGB in [0, 1].

* ``luminance``: one gain and offset for all channels, ``a = std(Y_hr) / std(Y_lr)``,
  ``b = mean(Y_hr) - a mean(Y_lr)`` (RealSR ``luminance_transfer``; Y = BT.601 full-range luma).
* ``color``: a 3x3 affine colour transform that matches the mean and covariance,
  ``A = C_hr^(1/2) C_lr^(-1/2)``, ``b = mu_hr - A mu_lr`` (RealSR ``color_transfer``). A gray or
  nearly single-hue LR (colour covariance with condition number above 1000) has no colour to map
  and falls back to ``luminance``; the mode used is recorded.
* ``none``.

Statistics are taken on low-passed copies (``sigma`` LR pixels, default 0 = RealSR) so the LR's
extra blur and noise do not bias the gain; clipped pixels (near 0 or 1 in either image) are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realsr.color import rgb_to_gray

MODES = ("color", "luminance", "none")


@dataclass
class ColourTransform:
    """``out = clip(in @ matrix.T + offset)`` on RGB in [0, 1]; ``mode`` is the transfer used."""

    matrix: np.ndarray  # (3, 3)
    offset: np.ndarray  # (3,)
    mode: str = "none"

    @classmethod
    def identity(cls) -> "ColourTransform":
        return cls(np.eye(3), np.zeros(3), "none")

    def apply(self, img: np.ndarray) -> np.ndarray:
        """Apply to a float RGB image in [0, 1]; returns float32, clipped to [0, 1]."""
        m = np.hstack([self.matrix, self.offset[:, None]]).astype(np.float32)
        out = cv2.transform(np.ascontiguousarray(img, dtype=np.float32), m)
        return np.clip(out, 0.0, 1.0, out=out)

    def to_json(self) -> dict:
        return {"mode": self.mode, "matrix": np.round(self.matrix, 6).tolist(),
                "offset": np.round(self.offset, 6).tolist()}


def _sqrtm_psd(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.maximum(w, 1e-10)
    d = w ** (-0.5 if inverse else 0.5)
    return (v * d) @ v.T


def fit_transfer(lr: np.ndarray, hr_small: np.ndarray, mode: str = "color", sigma: float = 0.0,
                 max_samples: int = 500_000) -> ColourTransform:
    """Fit the transfer that maps ``lr`` colours onto ``hr_small`` (same shape, float RGB [0, 1])."""
    if mode not in MODES:
        raise ValueError(f"photometric mode must be one of {MODES}")
    if mode == "none":
        return ColourTransform.identity()
    if sigma > 0:
        lr = cv2.GaussianBlur(lr, (0, 0), sigma)
        hr_small = cv2.GaussianBlur(hr_small, (0, 0), sigma)
    step = max(1, lr.shape[0] * lr.shape[1] // max_samples)
    x = lr.reshape(-1, 3)[::step].astype(np.float64)
    y = hr_small.reshape(-1, 3)[::step].astype(np.float64)
    ok = np.all((x > 0.002) & (x < 0.998) & (y > 0.002) & (y < 0.998), axis=1)
    if ok.sum() >= 100:
        x, y = x[ok], y[ok]
    cx = np.cov(x, rowvar=False)
    ev = np.linalg.eigvalsh(cx)
    if mode == "color" and ev[0] < 1e-3 * max(ev[-1], 1e-12):
        # A gray (or nearly single-hue) LR has no colour to map: a 3x3 transfer would divide by
        # ~0 and amplify noise. Fall back to one gain and offset.
        mode = "luminance"
    if mode == "luminance":
        gx, gy = rgb_to_gray(x), rgb_to_gray(y)
        sx = gx.std()
        a = gy.std() / sx if sx > 1e-6 else 1.0
        b = gy.mean() - a * gx.mean()
        return ColourTransform(np.eye(3) * a, np.full(3, b), "luminance")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cy = np.cov(y, rowvar=False) + np.eye(3) * 1e-8
    a = _sqrtm_psd(cy) @ _sqrtm_psd(cx + np.eye(3) * 1e-8, inverse=True)
    return ColourTransform(a, my - a @ mx, "color")
