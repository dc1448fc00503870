"""MATLAB-compatible ``imresize`` (bicubic, antialiased when downscaling).

A port of the published algorithm (cubic kernel a = -0.5; kernel widened by 1/scale when
downscaling; pixel-centre coordinate map ``u = x/scale + 0.5 (1 - 1/scale)``; symmetric padding;
output size ``ceil(in * scale)``; separable, rows first). The result is float and not rounded;
``round(clip(255 * out))`` reproduces the uint8 LR files MATLAB writes. See METHODS.md section 7.4.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _box(x: np.ndarray) -> np.ndarray:
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


def _lanczos(a: int):
    def f(x: np.ndarray) -> np.ndarray:
        return np.sinc(x) * np.sinc(x / a) * (np.abs(x) < a)
    return f


# MATLAB imresize's interpolation kernels and their widths (in input pixels at scale 1).
# 'nearest' is the box kernel without antialiasing (MATLAB never antialiases it); 'area' is the box
# kernel with antialiasing: an exact block average for integer downscaling.
METHODS: dict[str, tuple] = {
    "nearest": (_box, 1.0),
    "area": (_box, 1.0),
    "bilinear": (_triangle, 2.0),
    "bicubic": (_cubic, 4.0),
    "lanczos2": (_lanczos(2), 4.0),
    "lanczos3": (_lanczos(3), 6.0),
}


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  method: str = "bicubic") -> sp.csr_matrix:
    """Sparse ``(out_len, in_len)`` matrix applying MATLAB ``imresize`` resampling along one axis.

    ``method``: one of :data:`METHODS` (MATLAB's kernels; ``nearest`` is never antialiased,
    ``area`` is the antialiased box). Weights are normalised per output pixel, borders symmetric.
    """
    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}; one of {sorted(METHODS)}")
    kernel, kernel_width = METHODS[method]
    antialias = antialias and method != "nearest"
    if scale < 1 and antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    d = u[:, None] - idx
    if scale < 1 and antialias:
        w = scale * kernel(d * scale)
    else:
        w = kernel(d)
    w = w / w.sum(axis=1, keepdims=True)
    # symmetric (mirror with edge repeat) boundary, as MATLAB's padarray 'symmetric'
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    rows = np.repeat(np.arange(out_len), taps)
    keep = w.ravel() != 0
    m = sp.coo_matrix((w.ravel()[keep], (rows[keep], cols.ravel()[keep])), shape=(out_len, in_len))
    return m.tocsr()  # duplicate (mirrored) entries are summed, as MATLAB's weights are


def _integer_downscale_kernel(s: int) -> tuple[np.ndarray, int]:
    """MATLAB's antialiased bicubic weights for downscaling by the integer ``s`` and the anchor.

    Output pixel ``x`` is centred on input position ``s x + (s - 1) / 2`` (0-based); every output
    pixel has the same taps, so the resize is a FIR filter followed by taking every ``s``-th sample.
    """
    if s % 2 == 0:
        offsets = np.arange(-2 * s, 2 * s) + 0.5  # taps i-2s .. i+2s-1 around the half-pixel centre
        anchor = 2 * s
    else:
        offsets = np.arange(-2 * s + 1, 2 * s).astype(np.float64)
        anchor = 2 * s - 1
    w = _cubic(offsets / s) / s
    return w / w.sum(), anchor


def _fast_integer_downscale(x: np.ndarray, s: int, integer: bool, hi: float, fdtype: type,
                            band: int = 128) -> np.ndarray:
    """Exact fast path of :func:`imresize` for ``scale = 1/s`` when H and W are multiples of ``s``.

    ``x`` may be integer; each pass is computed in ``fdtype`` (float32/float64). Works in bands of
    ``band`` output rows (input rows gathered with mirrored halos), so no full-resolution float
    buffer is ever allocated.
    """
    import cv2

    k, anchor = _integer_downscale_kernel(s)
    kd = k.astype(fdtype)
    one = np.ones(1, fdtype)
    depth = cv2.CV_32F if fdtype == np.float32 else cv2.CV_64F
    h, w = x.shape[:2]
    oh, ow = h // s, w // s
    start = s // 2
    taps = len(k)
    mirror = np.concatenate([np.arange(h), np.arange(h - 1, -1, -1)])  # symmetric padding
    out = np.empty((oh, ow) + x.shape[2:], fdtype)
    for r0 in range(0, oh, band):
        r1 = min(oh, r0 + band)
        # output row i needs input rows s*i + start - anchor ... + taps - 1
        rows = np.arange(s * r0 + start - anchor, s * (r1 - 1) + start - anchor + taps)
        chunk = x[mirror[np.mod(rows, 2 * h)]]
        v = cv2.sepFilter2D(chunk, depth, one, kd, anchor=(0, 0), borderType=cv2.BORDER_REFLECT)
        if v.ndim < x.ndim:
            v = v[..., None]
        v = v[0 : s * (r1 - r0) : s]  # rows (H) first ...
        if integer:
            v = np.clip(np.floor(v + 0.5), 0.0, hi)  # MATLAB rounds half away from zero
        hz = cv2.sepFilter2D(np.ascontiguousarray(v), depth, kd, one, anchor=(anchor, 0), borderType=cv2.BORDER_REFLECT)
        if hz.ndim < x.ndim:
            hz = hz[..., None]
        hz = hz[:, start::s]  # ... then columns, as MATLAB
        out[r0:r1] = np.clip(np.floor(hz + 0.5), 0.0, hi) if integer else hz
    return out


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
    float_result: bool = False,
    method: str = "bicubic",
) -> np.ndarray:
    """Resize ``img`` (H, W) or (H, W, C) like MATLAB ``imresize(img, scale, method)``.

    Give ``scale`` (output size ``ceil(H*scale), ceil(W*scale)``) or ``output_shape`` (rows, cols;
    the scale per axis is then ``out/in`` as in MATLAB). Float input gives float output in the same
    units, not rounded (float32 stays float32). Integer input (uint8/uint16) behaves as MATLAB on
    that class: computed in float64, rounded and clipped to the class after *each* pass, returned
    in the input dtype. ``float_result=True`` treats integer input as float instead (no rounding)
    and returns float32 in the input's units (e.g. 0-255), without a float copy of the input.
    ``method``: ``bicubic`` (default), ``bilinear``, ``nearest``, ``area``, ``lanczos2``, ``lanczos3``.
    """
    img = np.asarray(img)
    if img.dtype == np.float16:
        img = img.astype(np.float32)
    if img.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ValueError(f"imresize takes uint8, uint16 or float images, got {img.dtype}")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C), got shape {img.shape}")
    h, w = img.shape[:2]
    if scale is not None and not (isinstance(scale, (int, float, np.number)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if output_shape is None:
        if scale is None:
            raise ValueError("give scale or output_shape")
        oh, ow = int(math.ceil(h * scale)), int(math.ceil(w * scale))
        sh = sw = float(scale)
    else:
        oh, ow = map(int, output_shape)
        if oh < 1 or ow < 1:
            raise ValueError(f"output_shape must be at least (1, 1), got {tuple(output_shape)}")
        sh, sw = (oh / h, ow / w) if scale is None else (float(scale), float(scale))
    if h < 1 or w < 1:
        raise ValueError(f"cannot resize an empty {w}x{h} image")
    is_int = np.issubdtype(img.dtype, np.integer)
    integer = is_int and not float_result  # MATLAB integer semantics
    dtype = img.dtype if img.dtype in (np.float32, np.float64) else (np.float32 if float_result else np.float64)
    hi = float(np.iinfo(img.dtype).max) if integer else 0.0
    inv = 1.0 / sh if sh > 0 else 0.0
    s_int = int(round(inv))
    if (
        method == "bicubic" and antialias and sh == sw and s_int > 1 and abs(inv - s_int) < 1e-9
        and h % s_int == 0 and w % s_int == 0 and (oh, ow) == (h // s_int, w // s_int)
        and (img.ndim == 2 or img.shape[2] <= 4)
    ):
        out = _fast_integer_downscale(img, s_int, integer, hi, dtype)
        out = out.astype(img.dtype) if integer else out
        return out if img.ndim == 3 else out.reshape(oh, ow)
    x = img.astype(dtype, copy=False)
    c = x.shape[2] if x.ndim == 3 else 1
    # MATLAB resizes the dimension with the smaller scale first; rows first on a tie.
    order = ("h", "w") if sh <= sw else ("w", "h")
    for axis in order:
        if axis == "h":
            m = resize_matrix(h, oh, sh, antialias, method).astype(dtype)
            x = (m @ x.reshape(h, -1)).reshape((oh, x.shape[1]) + x.shape[2:])
        else:
            m = resize_matrix(w, ow, sw, antialias, method).astype(dtype)
            xt = np.moveaxis(x, 1, 0).reshape(w, -1)
            x = np.moveaxis((m @ xt).reshape((ow, x.shape[0]) + x.shape[2:]), 0, 1)
        if integer:  # MATLAB returns the input class from every 1-D pass
            x = np.clip(np.floor(x + 0.5), 0.0, hi)  # half away from zero, as MATLAB
    out = np.ascontiguousarray(x).astype(img.dtype) if integer else np.ascontiguousarray(x)
    return out if img.ndim == 3 or c != 1 else out.reshape(oh, ow)


def check_scale(scale: Any) -> int:
    """``scale`` (an SR factor) as a positive Python int; ValueError for anything else (0, 2.5, True ...)."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``scale`` (top-left anchored)."""
    scale = check_scale(scale)
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
