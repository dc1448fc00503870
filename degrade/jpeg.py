"""JPEG compression as a degradation step: the real codec (OpenCV / libjpeg-turbo) and a batched,
optionally differentiable torch simulation of it.

* :func:`jpeg_numpy` encodes and decodes one image with OpenCV's codec (libjpeg-turbo in the
  opencv-python wheels): baseline JPEG, IJG quantisation tables scaled by ``quality``, 4:2:0 chroma
  subsampling (OpenCV's default; set explicitly through ``IMWRITE_JPEG_SAMPLING_FACTOR`` where that
  flag exists so the result does not depend on the OpenCV version), integer DCTs, "fancy"
  (triangle-filter) chroma upsampling on decoding.
* :func:`jpeg_torch` does the same to a ``(B, C, H, W)`` batch on any device, either through the
  codec (``backend="codec"``: exact, one image at a time on the CPU) or with a pure-torch model of
  libjpeg-turbo (``backend="simulated"``: batched, no Python loop over images, per-image quality,
  optional straight-through gradients).

The simulation follows libjpeg-turbo (as built into OpenCV) step by step, in integer-exact
arithmetic: 8-bit input; RGB -> YCbCr (JFIF full-range BT.601) with libjpeg's 16-bit fixed-point
constants and rounding; 4:2:0 chroma by 2x2 sums with libjpeg's alternating 1/2 rounding bias
(full-resolution rows padded to an even count, columns to the MCU width, then the last chroma row
replicated down to the MCU height, as jcprepct.c/jcsample.c do); Y padded by edge replication;
8x8 forward DCT, quantisation with the IJG tables scaled by quality, inverse DCT with libjpeg's
range limiting; h2v2 "fancy" chroma upsampling (3/4-1/4 triangle filter in both directions, integer
arithmetic with its 8/7 rounding offsets, edges replicated at the real chroma size ceil(H/2) x
ceil(W/2); plain 2x2 replication when the chroma is at most 2 samples wide, i.e. W <= 4, as
jdsample.c does); YCbCr -> RGB with libjpeg's fixed-point tables. The DCT is either libjpeg's own
fixed-point "islow" DCT and reciprocal quantiser (``dct="islow"``, the default: the result equals
OpenCV's bit for bit) or the orthonormal DCT-II as a floating-point matmul (``dct="float"``: the
textbook model; libjpeg's integer rounding then occasionally moves a coefficient that lies close
to a quantisation boundary to the neighbouring step, see ``tests/degrade/test_jpeg.py`` for the
measured agreement).

This module does not need torch: it is imported lazily inside the torch functions.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from realsr.images import from_float, to_float

__all__ = ["CHROMA_TABLE", "LUMA_TABLE", "jpeg_numpy", "jpeg_torch", "quant_tables"]

#: IJG / JPEG Annex K luminance quantisation table (natural, row-major order), quality 50.
LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64).reshape(8, 8)
#: IJG / JPEG Annex K chrominance quantisation table (natural order), quality 50.
CHROMA_TABLE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
], dtype=np.int64).reshape(8, 8)

_SAMPLING_420 = getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_420", 0x221111)
_BACKENDS = ("simulated", "codec")
_DCTS = ("islow", "float")


def _check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, numbers.Integral):
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")  # noqa: TRY004
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {q}")
    return q


def quant_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(luma, chroma)`` 8x8 quantisation tables libjpeg writes for ``quality`` (1..100).

    As ``jpeg_set_quality(cinfo, quality, force_baseline=TRUE)``: scale = 5000 // q below 50, else
    200 - 2q; entry = (base * scale + 50) // 100 clamped to [1, 255]. Natural (row-major) order, int64.
    """
    q = _check_quality(quality)
    s = 5000 // q if q < 50 else 200 - 2 * q  # jpeg_quality_scaling (integer division, as in C)
    return tuple(np.clip((t * s + 50) // 100, 1, 255) for t in (LUMA_TABLE, CHROMA_TABLE))


def _encode_params(quality: int) -> list[int]:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, _SAMPLING_420]
    return params


def _codec_u8(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a uint8 (H, W) gray or (H, W, 3) RGB array through OpenCV."""
    bgr = img[:, :, ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), _encode_params(quality))
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("JPEG encoding failed")
    out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if img.ndim == 2 else cv2.IMREAD_COLOR)
    if out is None:  # pragma: no cover - OpenCV failure
        raise RuntimeError("JPEG decoding failed")
    return np.ascontiguousarray(out[:, :, ::-1]) if img.ndim == 3 else out


def jpeg_numpy(img: np.ndarray, quality: int) -> np.ndarray:
    """Compress ``img`` as a JPEG of ``quality`` (integer 1..100) with OpenCV's codec and decode it.

    ``img``: RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, of dtype

    * ``uint8``: coded as is, returns ``uint8``;
    * ``float32``/``float64`` in [0, 1]: clipped and rounded to 8 bit first
      (:func:`realsr.images.from_float`), returns ``float32`` in [0, 1] on the 1/255 grid
      (:func:`realsr.images.to_float` of the decoded 8-bit image);
    * ``uint16``: JPEG is 8-bit, so it is scaled to 8 bit (``round(v / 257)``), coded, and returned
      as ``uint16`` scaled back (``v8 * 257``): the low 8 bits of precision are lost as well.

    Gray input is coded as a one-component (grayscale) JPEG, colour input with chroma subsampling
    4:2:0 (OpenCV's default, also set explicitly where OpenCV exposes
    ``IMWRITE_JPEG_SAMPLING_FACTOR``), baseline IJG tables scaled by ``quality`` (see
    :func:`quant_tables`), no progressive mode or optimised Huffman tables (those do not change
    the pixels anyway). Raises ``ValueError`` for a quality outside 1..100, a bad shape or
    non-finite float pixels, ``TypeError`` for other dtypes.
    """
    q = _check_quality(quality)
    a = np.asarray(img)
    squeeze = a.ndim == 3 and a.shape[2] == 1
    if squeeze:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"JPEG needs an (H, W, 3) RGB or (H, W) gray image, got shape {np.shape(img)}")
    if a.dtype == np.uint8:
        out = _codec_u8(a, q)
    elif a.dtype == np.uint16:
        u8 = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257), exactly
        out = _codec_u8(u8, q).astype(np.uint16) * np.uint16(257)
    elif a.dtype in (np.float32, np.float64):
        if not np.isfinite(a).all():
            raise ValueError("JPEG input holds NaN or infinity")
        out = to_float(_codec_u8(from_float(a, np.uint8), q))
    else:
        raise TypeError(f"JPEG needs uint8, uint16 or float pixels, got {a.dtype}")
    return out[:, :, None] if squeeze else out


# --------------------------------------------------------------------------------------- torch


def _qualities(quality, batch: int, device):
    """``quality`` (int, sequence or tensor of ints 1..100) -> int64 tensor ``(batch,)`` on ``device``.
    Ints, sequences and CPU tensors are checked on the host and uploaded without a GPU sync; a
    tensor of qualities already on the GPU costs one sync for its range check."""
    import torch

    from realsr.devices import to_device

    if isinstance(quality, (bool, np.bool_)):
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")  # noqa: TRY004
    if isinstance(quality, numbers.Integral):
        return torch.full((batch,), _check_quality(quality), dtype=torch.int64, device=device)
    if isinstance(quality, (Sequence, np.ndarray)) and not isinstance(quality, (str, bytes)):
        q = np.asarray(quality)
        if q.dtype == np.bool_ or not (np.issubdtype(q.dtype, np.integer) or np.issubdtype(q.dtype, np.floating)):
            raise ValueError(f"JPEG qualities must be integers in 1..100, got {quality!r}")
        q = torch.from_numpy(np.array(q, dtype=np.float64 if q.dtype.kind == "f" else np.int64))
    elif isinstance(quality, torch.Tensor):
        q = quality.detach()
    else:
        msg = f"JPEG quality must be an int or one int per image, got {type(quality).__name__}"
        raise ValueError(msg)  # noqa: TRY004
    if q.dtype == torch.bool or q.is_complex():
        raise ValueError("JPEG qualities must be integers in 1..100")
    if q.ndim == 0:
        q = q.expand(batch)
    if q.shape != (batch,):
        raise ValueError(f"need one JPEG quality per image: {batch} expected, got shape {tuple(q.shape)}")
    if q.is_floating_point():
        if batch and not bool((q == q.round()).all()):
            raise ValueError("JPEG qualities must be whole numbers")
        q = q.round()
    q = q.to(torch.int64)
    if batch and not bool(((q >= 1) & (q <= 100)).all()):
        raise ValueError(f"JPEG qualities must be in 1..100, got {q.tolist()}")
    return to_device(q, device)


def jpeg_torch(x, quality, backend: str = "simulated", differentiable: bool = False, dct: str = "islow"):
    """JPEG-compress a batch ``x`` ``(B, C, H, W)`` of float images in [0, 1] (C = 3 RGB or 1 gray).

    ``quality``: one integer 1..100 for all images, or one per image (a ``(B,)`` tensor or a
    sequence of ints). Returns a tensor of ``x``'s shape, dtype and device, on the 1/255 grid.

    * ``backend="codec"``: exact. Each image is taken to the CPU and run through
      :func:`jpeg_numpy` (8-bit rounding, OpenCV codec), so the result equals the numpy path bit
      for bit. Not differentiable.
    * ``backend="simulated"``: a batched pure-torch model of libjpeg-turbo (see the module
      docstring) that runs wherever ``x`` is, with no loop over images; quantisation tables are
      looked up per image, so mixed qualities cost nothing extra.

      ``dct="islow"`` (default) reproduces libjpeg's fixed-point "islow" forward/inverse DCT and
      its reciprocal quantiser in integer arithmetic: the output then equals the codec's bit for
      bit (verified in the tests). ``dct="float"`` uses the orthonormal DCT-II as a 64x64 matmul
      in floating point instead (the textbook model: a few percent of the pixels differ by a grey
      level or more where a coefficient sits near a quantisation boundary; PSNR to the codec ~47 dB).

      ``differentiable=True`` gives straight-through gradients: every rounding passes the gradient
      unchanged, and with ``dct="islow"`` the integer DCTs take their gradient from the float DCT.
      The forward value is unchanged by the flag.

    Images of any size are handled (padded by edge replication to whole 16x16 MCUs, cropped back).
    """
    import torch

    if backend not in _BACKENDS:
        raise ValueError(f"unknown JPEG backend {backend!r} (use one of {', '.join(_BACKENDS)})")
    if dct not in _DCTS:
        raise ValueError(f"unknown DCT {dct!r} (use one of {', '.join(_DCTS)})")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"JPEG needs a (B, 3, H, W) or (B, 1, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise TypeError(f"JPEG needs float images in [0, 1], got {x.dtype}")
    B, C, H, W = x.shape
    if H < 1 or W < 1:
        raise ValueError(f"JPEG needs a non-empty image, got {H}x{W}")
    q = _qualities(quality, B, x.device)
    if B == 0:
        return x.clone()
    if backend == "codec":
        if differentiable:
            raise ValueError("the codec backend is not differentiable; use backend='simulated'")
        qs = q.tolist()
        src = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
        outs = [jpeg_numpy(src[i] if C == 3 else src[i, :, :, 0], qs[i]) for i in range(B)]
        out = torch.from_numpy(np.stack(outs))
        out = out.permute(0, 3, 1, 2) if C == 3 else out[:, None]
        return out.to(device=x.device, dtype=x.dtype).contiguous()
    if differentiable:
        return _simulate(x, q, True, dct == "islow")
    with torch.no_grad():
        return _simulate(x, q, False, dct == "islow")


@cache
def _dct_kron() -> np.ndarray:
    """64x64 matrix of the orthonormal 2-D 8x8 DCT-II acting on row-major flattened blocks.

    The four frequencies (u, v) in {0, 4}^2 have basis functions of exactly +-1/8; those rows are
    set exactly, so that their coefficients (and exact ties at half a quantisation step, which
    libjpeg's integer DCT also produces exactly for them) come out exact in floating point.
    """
    n = np.arange(8)
    d = np.sqrt(2.0 / 8) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    d[0] /= np.sqrt(2.0)
    k = np.kron(d, d)
    for u in (0, 4):
        for v in (0, 4):
            k[u * 8 + v] = np.sign(k[u * 8 + v]) * 0.125
    return k


@cache
def _quant_lut() -> np.ndarray:
    """int64 ``(101, 2, 4, 64)``: for each quality (index 0 unused) and table (luma, chroma) the
    quantisation step ``Q`` and libjpeg-turbo's reciprocal divisor for ``8 Q`` (jcdctmgr.c
    ``compute_reciprocal``: ``recip``, ``corr``, ``shift``), used on the islow DCT's output."""
    lut = np.ones((101, 2, 4, 64), np.int64)
    for qual in range(1, 101):
        for t, tab in enumerate(quant_tables(qual)):
            for i, qv in enumerate(tab.ravel()):
                d = int(qv) << 3  # islow output is scaled by 8
                r = 16 + d.bit_length() - 1
                fq, fr, c = (1 << r) // d, (1 << r) % d, d // 2
                if fr == 0:  # power of two
                    fq >>= 1
                    r -= 1
                elif fr <= d // 2:
                    c += 1
                else:
                    fq += 1
                lut[qual, t, :, i] = (qv, fq, c, r)
    return lut


# libjpeg's islow DCT constants (CONST_BITS = 13): FIX(x) = round(x * 2^13)
_F0298, _F0390, _F0541, _F0765, _F0899, _F1175 = 2446, 3196, 4433, 6270, 7373, 9633
_F1501, _F1847, _F1961, _F2053, _F2562, _F3072 = 12299, 15137, 16069, 16819, 20995, 25172


def _fdct_pass_sums(d, first: bool):
    """One 1-D pass of libjpeg's ``jpeg_fdct_islow`` (jfdctint.c) along the last axis, up to but
    not including the final ``DESCALE``: returns the 8 integer sums and their right shifts."""
    d0, d1, d2, d3, d4, d5, d6, d7 = (d[..., i] for i in range(8))
    t0, t7, t1, t6 = d0 + d7, d0 - d7, d1 + d6, d1 - d6
    t2, t5, t3, t4 = d2 + d5, d2 - d5, d3 + d4, d3 - d4
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    # outputs 0 and 4: LEFT_SHIFT(.., PASS1_BITS) in pass 1, DESCALE(.., PASS1_BITS) in pass 2
    o0, o4, sh0 = ((t10 + t11) * 4, (t10 - t11) * 4, 0) if first else (t10 + t11, t10 - t11, 2)
    z1 = (t12 + t13) * _F0541
    o2, o6 = z1 + t13 * _F0765, z1 - t12 * _F1847
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _F1175
    t4, t5, t6, t7 = t4 * _F0298, t5 * _F2053, t6 * _F3072, t7 * _F1501
    z1, z2, z3, z4 = z1 * -_F0899, z2 * -_F2562, z3 * -_F1961 + z5, z4 * -_F0390 + z5
    o7, o5, o3, o1 = t4 + z1 + z3, t5 + z2 + z4, t6 + z2 + z3, t7 + z1 + z4
    sh = 11 if first else 15  # CONST_BITS -/+ PASS1_BITS
    return np.stack((o0, o1, o2, o3, o4, o5, o6, o7), -1), np.array([sh0, sh, sh, sh, sh0, sh, sh, sh])


def _idct_pass_sums(c, first: bool):
    """One 1-D pass of libjpeg's ``jpeg_idct_islow`` (jidctint.c) along the last axis, up to but
    not including the final ``DESCALE`` (the all-zero-AC shortcuts give the same values)."""
    c0, c1, c2, c3, c4, c5, c6, c7 = (c[..., i] for i in range(8))
    z1 = (c2 + c6) * _F0541
    t2, t3 = z1 - c6 * _F1847, z1 + c2 * _F0765
    t0, t1 = (c0 + c4) * 8192, (c0 - c4) * 8192  # LEFT_SHIFT(.., CONST_BITS)
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    z1, z2, z3, z4 = c7 + c1, c5 + c3, c7 + c3, c5 + c1
    z5 = (z3 + z4) * _F1175
    t0, t1, t2, t3 = c7 * _F0298, c5 * _F2053, c3 * _F3072, c1 * _F1501
    z1, z2, z3, z4 = z1 * -_F0899, z2 * -_F2562, z3 * -_F1961 + z5, z4 * -_F0390 + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    sh = 11 if first else 18  # CONST_BITS - PASS1_BITS; CONST_BITS + PASS1_BITS + 3
    outs = (t10 + t3, t11 + t2, t12 + t1, t13 + t0, t13 - t0, t12 - t1, t11 - t2, t10 - t3)
    return np.stack(outs, -1), np.full(8, sh)


@cache
def _islow_passes() -> tuple:
    """The four 1-D passes of libjpeg's islow FDCT/IDCT as ``(W, shift)``: every output of a pass is
    ``DESCALE(sum_j W[i, j] d[j], shift[i])``, an integer linear form rounded once (each pass
    only adds, subtracts and multiplies by constants before its final descale)."""
    eye = np.eye(8, dtype=np.int64)
    return tuple((f(eye, first)[0].T.astype(np.float64), f(eye, first)[1])
                 for f, first in ((_fdct_pass_sums, True), (_fdct_pass_sums, False),
                                  (_idct_pass_sums, True), (_idct_pass_sums, False)))


@cache
def _islow_tensors(dev):
    """Per pass, float64 tensors ``(W^T, 2^-shift, half)`` on ``dev`` for :func:`_pass`; built once
    per device (shared: never written to)."""
    import torch

    from realsr.devices import to_device

    out = []
    with torch.inference_mode(False):  # cached: must serve autograd even when first built under inference_mode
        for w, sh in _islow_passes():
            half = np.where(sh > 0, 2.0 ** (sh - 1), 0.0)
            out.append(tuple(to_device(a, dev, torch.float64) for a in (w.T, 2.0 ** -sh, half)))
    return out


def _pass(x, p, rows: bool):
    """Apply an islow pass along the last axis (``rows``) or the second-to-last axis of float64
    blocks holding integers. All values stay below 2^40, so float64 is exact."""
    import torch

    wt, scale, half = p
    if rows:
        return torch.floor((x @ wt + half) * scale)
    return torch.floor((wt.T @ x + half[:, None]) * scale[:, None])


# libjpeg's 16-bit fixed-point colour conversion constants (jccolor.c / jdcolor.c: FIX(x) = round(x * 2^16))
_ONE_HALF, _CBCR_OFFSET, _SCALE = 1 << 15, 128 << 16, float(1 << 16)


def _simulate(x, q, differentiable: bool, islow: bool):
    import torch
    import torch.nn.functional as F

    from realsr.devices import device_constant

    if differentiable:  # straight-through: the forward value is exact, the gradient is the identity
        def flr(t):
            return t + (torch.floor(t) - t).detach()

        def ste(exact, smooth):
            return smooth + (exact - smooth).detach()
    else:
        flr = torch.floor

    def round_half_up(t):  # libjpeg's DESCALE
        return flr(t + 0.5)

    def round_half_away(t):  # libjpeg's quantiser: (|c| + q/2) // q, sign restored
        return torch.sign(t) * flr(t.abs() + 0.5)

    B, C, H, W = x.shape
    dev = x.device
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    kron = device_constant(_dct_kron, dev, dt)
    lut = device_constant(_quant_lut, dev)[q]  # (B, 2, 4, 64): Q, recip, corr, shift
    passes = _islow_tensors(dev) if islow else None

    def code(plane, t):
        """(B, k, 8nh, 8nw) samples 0-255 (float holding integers) -> decoded samples 0-255."""
        b, k, h, w = plane.shape
        nh, nw = h // 8, w // 8
        blk = (plane - 128).reshape(b, k, nh, 8, nw, 8).permute(0, 1, 2, 4, 3, 5)  # (b, k, nh, nw, 8, 8)
        qv = lut[:, t, 0].view(b, 1, 1, 1, 8, 8)
        if islow:  # libjpeg's integer DCTs and quantiser, exactly, in float64 (integers < 2^40)
            blk64 = blk.detach().to(torch.float64)
            c8 = _pass(_pass(blk64, passes[0], True), passes[1], False)  # 8x the orthonormal DCT
            recip, corr, shift = (lut[:, t, i].view(b, 1, 1, 1, 8, 8) for i in (1, 2, 3))
            qc = torch.sign(c8) * torch.floor((c8.abs() + corr) * recip / torch.exp2(shift.to(torch.float64)))
            rec = _pass(_pass(qc * qv, passes[2], False), passes[3], True)
            rec = (torch.remainder(rec + 512, 1024) - 384).clamp(0, 255).to(dt)  # range_limit[x & 1023]
            if differentiable:  # exact values, gradients through the float DCT
                qf = qv.to(dt)
                coef = ste(qc.to(dt), (blk.reshape(b, k, nh, nw, 64) @ kron.T).view(b, k, nh, nw, 8, 8) / qf)
                rec = ste(rec, ((coef * qf).reshape(b, k, nh, nw, 64) @ kron).view(b, k, nh, nw, 8, 8) + 128)
        else:
            qf = qv.to(dt)
            coef = (blk.reshape(b, k, nh, nw, 64) @ kron.T).view(b, k, nh, nw, 8, 8)
            rec = (round_half_away(coef / qf) * qf).reshape(b, k, nh, nw, 64) @ kron
            rec = torch.clamp(round_half_up(rec.view(b, k, nh, nw, 8, 8) + 128), 0, 255)
        return rec.permute(0, 1, 2, 4, 3, 5).reshape(b, k, h, w)

    v = flr(torch.clamp(x.to(dt), 0, 1) * 255 + 0.5)  # to 8 bit as realsr.images.from_float
    hp, wp = -(-H // 16) * 16, -(-W // 16) * 16
    if (hp, wp) != (H, W):
        v = F.pad(v, (0, wp - W, 0, hp - H), mode="replicate")

    if C == 1:
        out = code(v, 0)[:, :, :H, :W]
    else:
        # RGB -> YCbCr exactly as libjpeg (integer arithmetic, exact in float32: all terms < 2^24);
        # Y rounds half up, Cb/Cr round with 0.5 - epsilon
        r, g, b_ = v.unbind(1)
        y = flr((19595 * r + 38470 * g + 7471 * b_ + _ONE_HALF) / _SCALE)
        cb = flr((-11059 * r - 21709 * g + 32768 * b_ + (_CBCR_OFFSET + _ONE_HALF - 1)) / _SCALE)
        cr = flr((32768 * r - 27439 * g - 5329 * b_ + (_CBCR_OFFSET + _ONE_HALF - 1)) / _SCALE)
        # h2v2 downsampling: (sum of 2x2 + bias) >> 2, bias 1 on even and 2 on odd output columns.
        # libjpeg pads the full-resolution rows only to an even count (the columns to the whole
        # MCU width), and then replicates the last *downsampled* row down to the MCU height.
        hc = -(-H // 2)
        c = F.avg_pool2d(torch.stack((cb, cr), 1)[:, :, :2 * hc], 2) * 4  # 2x2 sums, exact
        bias = torch.arange(wp // 2, device=dev).remainder(2).to(dt) + 1
        c = flr((c + bias) / 4)
        if hp // 2 > hc:
            c = F.pad(c, (0, 0, 0, hp // 2 - hc), mode="replicate")
        y = code(y[:, None], 0)[:, 0, :H, :W]
        # chroma as the decoder sees it: its real size is ceil(H/2) x ceil(W/2)
        wc = -(-W // 2)
        c = code(c, 1)[:, :, :hc, :wc]
        if wc > 2:
            # libjpeg h2v2 "fancy" upsampling: vertical 3/4-1/4 sums, then horizontal 3/4-1/4 with
            # (.. + 8) >> 4 on even and (.. + 7) >> 4 on odd output columns; edges replicated
            pv = F.pad(c, (0, 0, 1, 1), mode="replicate")
            colsum = torch.stack((3 * c + pv[:, :, :-2], 3 * c + pv[:, :, 2:]), 3).reshape(B, 2, 2 * hc, wc)
            ph = F.pad(colsum, (1, 1, 0, 0), mode="replicate")
            even = flr((3 * colsum + ph[..., :-2] + 8) / 16)
            odd = flr((3 * colsum + ph[..., 2:] + 7) / 16)
            c = torch.stack((even, odd), 4).reshape(B, 2, 2 * hc, 2 * wc)
        else:  # libjpeg uses plain pixel replication when the chroma is at most 2 samples wide
            c = c.repeat_interleave(2, 2).repeat_interleave(2, 3)
        c = c[:, :, :H, :W]
        # YCbCr -> RGB exactly as libjpeg's jdcolor.c tables
        cb, cr = c[:, 0] - 128, c[:, 1] - 128
        rgb = torch.stack((y + flr((91881 * cr + _ONE_HALF) / _SCALE),
                           y + flr((-22554 * cb - 46802 * cr + _ONE_HALF) / _SCALE),
                           y + flr((116130 * cb + _ONE_HALF) / _SCALE)), 1)
        out = torch.clamp(rgb, 0, 255)
    # to [0, 1] exactly as realsr.images.to_float (float32 multiply), whatever the dtype of x
    # (the Python float of float32(1/255) multiplies a float32 tensor as that same float32)
    return (out.to(torch.float32) * float(np.float32(1.0 / 255.0))).to(x.dtype)
