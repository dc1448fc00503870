"""KernelGAN (Bell-Kligler, Shocher, Irani, NeurIPS 2019), batched: many images estimated at once.

Each image has its own deep linear generator G (7,5,3,1,1,1; 64 channels; no bias; the last layer
strides by 2) and patch discriminator D (spectral-normalised 7x7 conv, five 1x1 conv+BN+ReLU blocks,
1x1 conv + sigmoid), trained with the official losses, regularisers, schedule and crop sampling
(METHODS.md section 2). The networks of a batch are stacked along a leading image axis and every
layer is a batched matrix product, so image ``b``'s numbers never mix with image ``c``'s: the result
for an image does not depend on the batch it ran in (up to float summation order), nor on the
device; all random numbers come from per-image NumPy streams on the CPU.

Two exact ways to run G forward (``KernelGANParams.forward``):

* ``"kernel"`` (default): G is linear with no padding, so ``G(x)`` equals a valid 2-D correlation
  of ``x`` with G's 13x13 kernel, strided by 2. The kernel is composed from the weights (the
  regularisers need it anyway), then applied once. Same function, same parameters, same gradients
  as the layer-by-layer network; one image at a time it runs 4-5x faster on CPU (docs/benchmarks.md).
* ``"network"``: the official layer-by-layer forward (for checking the above, and as the baseline
  of ``benchmarks/kernel_bench.py``).

Tensor units follow the official code: images in [-1, 1], noise ``N(0, 1) / 255`` in those units
for fake D inputs and in [0, 1] units (2/255 in tensor units) for real D crops.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from realsr import devices

from .kernels import bicubic_kernel
from .kernelgan_params import BICUBIC_LOSSES, D_INITS, FORWARDS, KernelGANParams, prepare_image  # noqa: F401
from .sampling import crop_corners, sampling_maps

@dataclass
class RawEstimate:
    """What one KernelGAN run returns: ``kernel`` is G's 13x13 correlation kernel (x2 convention,
    not post-processed); ``similar_at``/``constraints_at``: iterations at which G first matched bicubic
    and the centralised/sparsity constraints switched on (None: never); ``loss_bicubic``: last value."""

    kernel: np.ndarray
    loss_bicubic: float
    similar_at: int | None
    constraints_at: int | None
    featureless: bool


# ---------------------------------------------------------------------------------------------
# Per-image preparation (NumPy, CPU)


def _streams(seed: int | Sequence[int]) -> dict[str, np.random.Generator]:
    ss = np.random.SeedSequence(seed)
    names = ("init", "crops", "real_noise", "fake_noise")
    return {n: np.random.Generator(np.random.PCG64(s)) for n, s in zip(names, ss.spawn(len(names)))}


class _Job:
    """One image's data stream: crops, noise and initial weights from its own random streams."""

    def __init__(self, img: np.ndarray, seed: int | Sequence[int], params: KernelGANParams) -> None:
        self.img = img
        self.rng = _streams(seed)
        p_g, p_d, self.has_gradients = sampling_maps(img, params.g_crop, params.d_crop)
        shape = img.shape[:2]
        self.g_corners = crop_corners(p_g, shape, params.g_crop, params.iterations, self.rng["crops"])
        self.d_corners = crop_corners(p_d, shape, params.d_crop, params.iterations, self.rng["crops"])

    def chunk(self, start: int, stop: int, params: KernelGANParams) -> tuple[np.ndarray, ...]:
        g, d = params.g_crop, params.d_crop
        gx = np.stack([self.img[t:t + g, l:l + g] for t, l in self.g_corners[start:stop]])
        dx = np.stack([self.img[t:t + d, l:l + d] for t, l in self.d_corners[start:stop]])
        n = stop - start
        dx = dx + self.rng["real_noise"].standard_normal((n, d, d, 3)) / 255.0
        fake = self.rng["fake_noise"].standard_normal((n, 3, d, d)) / 255.0
        to_t = lambda a: np.ascontiguousarray((a * 2.0 - 1.0).transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
        return to_t(gx), to_t(dx), fake.astype(np.float32)


def _xavier_normal(rng: np.random.Generator, shape: tuple[int, ...], gain: float) -> np.ndarray:
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * rf, shape[0] * rf
    return rng.standard_normal(shape) * gain * math.sqrt(2.0 / (fan_in + fan_out))


def _default_conv(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """PyTorch's default Conv2d weight init: Kaiming-uniform with a = sqrt(5), bound 1/sqrt(fan_in)."""
    fan_in = int(np.prod(shape[1:]))
    return rng.uniform(-1.0, 1.0, shape) / math.sqrt(fan_in)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal(n)
    return v / max(np.linalg.norm(v), 1e-12)


def _init_weights(rng: np.random.Generator, p: KernelGANParams) -> dict[str, list[np.ndarray]]:
    s, c = p.g_structure, p.g_channels
    chans = [1] + [c] * (len(s) - 1) + [1]
    g = [_xavier_normal(rng, (chans[i + 1], chans[i], k, k), 0.1) for i, k in enumerate(s)]
    dc = p.d_channels
    d_shapes = [(dc, 3, p.d_kernel, p.d_kernel)] + [(dc, dc, 1, 1)] * (p.d_layers - 2) + [(1, dc, 1, 1)]
    d_w, u, v = [], [], []
    for shape in d_shapes:  # spectral norm draws u and v when it is attached, before the weights are set
        u.append(_unit(rng, shape[0]))
        v.append(_unit(rng, int(np.prod(shape[1:]))))
    for shape in d_shapes:
        w = _default_conv(rng, shape) if p.d_init == "official" else _xavier_normal(rng, shape, 0.1)
        d_w.append(w.reshape(shape[0], -1))
    bn = [1.0 + 0.02 * rng.standard_normal(dc) for _ in range(p.d_layers - 2)]
    return {"g": g, "d": d_w, "u": u, "v": v, "bn": bn}


# ---------------------------------------------------------------------------------------------
# The batched networks (torch)


@functools.lru_cache(maxsize=None)
def _full_conv_matrix_cpu(s: int, h: int) -> torch.Tensor:
    """0/1 matrix ``(s*s*h*h, n*n)`` (n = s + h - 1) that sums the products ``a[q] * b[r]`` of an s x s
    and an h x h kernel, flattened ``q * h*h + r``, into their full convolution: entry ``[q*h*h + r, p]``
    is 1 where ``p = q + r`` (as 2-D positions)."""
    n = s + h - 1
    m = torch.zeros(s, s, h, h, n, n)
    for qy in range(s):
        for qx in range(s):
            for ry in range(h):
                for rx in range(h):
                    m[qy, qx, ry, rx, qy + ry, qx + rx] = 1.0
    return m.reshape(s * s * h * h, n * n)


@functools.lru_cache(maxsize=None)
def _full_conv_matrix(s: int, h: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return _full_conv_matrix_cpu(s, h).to(device, dtype)


#: Fewest rows of a batched matrix product whose per-image result MKL computes the same way for a
#: batch of one as for larger batches (9-row products differ on 2 threads; 12 and more do not).
_MIN_ROWS = 16


def compose_kernel(g_weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """G's correlation kernel from its stacked weights ``(B, out, in, k, k)`` per layer: ``(B, K, K)``.

    Composes from the output side: the kernel from a layer's input channels to G's output is the
    full convolution of that layer's weights with the kernel from its output channels, summed over
    them. Equals KernelGAN's impulse-response extraction (``calc_curr_k``, flip included). Each step
    is a batched matrix product over the output channels, laid out so that neither it nor its two
    gradient products has a dimension of 9 or less on the side BLAS parallelises over (MKL runs those
    4-6x slower), followed by a product with a 0/1 matrix for the full convolution (exact, and with a
    plain matrix product as gradient, unlike an indexed scatter). Per-image arithmetic does not depend
    on the batch (matrix-vector products are written as multiply + sum: BLAS gemv splits the sum by
    batch size).
    """
    acc = g_weights[-1][:, 0]  # (B, C, 1, 1): output kernel per last-layer input channel
    for w in reversed(g_weights[:-1]):
        b, c_out, c_in, s, _ = w.shape
        h = acc.shape[-1]
        wf = w.reshape(b, c_out, c_in * s * s)  # [b, i, (j, q)]
        a = acc.reshape(b, c_out, h * h)  # [b, i, r]
        if h == 1:
            acc = (wf * a).sum(dim=1).reshape(b, c_in, s, s)
            continue
        # [b, r, (j, q)] = sum_i acc[b, i, r] w[b, i, j, q]; a product with fewer than 16 rows is padded
        # with zero rows: MKL threads a 9-row product of a single image differently from a batch's
        zt = torch.bmm(F.pad(a, (0, max(0, _MIN_ROWS - h * h))).transpose(1, 2), wf)[:, :h * h]
        if s == 1:
            acc = zt.transpose(1, 2).reshape(b, c_in, h, h)
            continue
        n = s + h - 1
        z = zt.reshape(b, h * h, c_in, s * s).permute(0, 2, 3, 1).reshape(b, c_in, s * s * h * h)  # [b, j, (q, r)]
        m = _full_conv_matrix(s, h, z.device, z.dtype)
        acc = torch.bmm(z, m.expand(b, *m.shape)).reshape(b, c_in, n, n)
    return acc[:, 0]


def crop_rows(x: torch.Tensor, size: int) -> torch.Tensor:
    """Row bands of G crops ``x`` (B, 3, S, S) for a ``size``-tall kernel at stride 2:
    ``(B, 3 * n, size * S)``, band ``ky`` holding rows ``ky, ky + 2, ...`` (n = G's output size)."""
    b, c, s, _ = x.shape
    n = (s - size) // 2 + 1
    sb, sc, sy, sx = x.stride()
    # one strided copy: element [b, c, y, ky, x] is x[b, c, 2y + ky, x]
    return x.as_strided((b, c, n, size, s), (sb, sc, 2 * sy, sy, sx)).reshape(b, c * n, size * s)


@functools.lru_cache(maxsize=None)
def _band_matrix(size: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """0/1 matrix ``(size, width * n)`` taking a kernel row to its banded (Toeplitz) matrix at stride 2:
    entry ``[kx, i * n + x]`` is 1 where ``i - 2x == kx``."""
    n = (width - size) // 2 + 1
    m = torch.zeros(size, width, n)
    for x in range(n):
        m[torch.arange(size), 2 * x + torch.arange(size), x] = 1.0
    return m.reshape(size, width * n).to(device, dtype)


def g_forward_kernel(rows: torch.Tensor, k: torch.Tensor, width: int) -> torch.Tensor:
    """G(x) through its kernel: ``rows`` = :func:`crop_rows` of the crops, ``k`` (B, K, K) ->
    (B, 3, n, n), the valid correlation of every colour plane with the image's kernel, strided by 2.

    Each kernel row becomes a banded (Toeplitz) matrix (a product with a 0/1 matrix: exact, and its
    gradient is a plain matrix product, unlike an indexed scatter whose accumulation order depends on
    the batch), so the whole correlation is one batched matrix product.
    """
    b, kk = k.shape[0], k.shape[-1]
    n = (width - kk) // 2 + 1
    band = k.reshape(b * kk, kk) @ _band_matrix(kk, width, k.device, k.dtype)  # (B*K, width*n)
    return torch.bmm(rows, band.reshape(b, kk * width, n)).reshape(b, 3, n, n)


def g_forward_network(x: torch.Tensor, g_weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """G(x) layer by layer, as the official network (colour planes as the batch, one group per image)."""
    b, c, s, _ = x.shape
    h = x.transpose(0, 1)  # (3, B, S, S)
    for i, w in enumerate(g_weights):
        stride = 2 if i == len(g_weights) - 1 else 1
        h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), stride=stride, groups=b)
    return h.transpose(0, 1)


#: Per-image tensor segments are padded to a multiple of this many elements before transcendental
#: element-wise ops (sigmoid, pow): CPU kernels run whole SIMD blocks through vector code and the
#: remainder through scalar code, which rounds differently, so without it an image's numbers would
#: depend on where its segment falls in the batch.
LANES = 64


def _per_image(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` element-wise, with each image's segment padded to a multiple of :data:`LANES`."""
    b = x.shape[0]
    flat = x.reshape(b, -1)
    n = flat.shape[1]
    pad = (-n) % LANES
    if pad:
        flat = F.pad(flat, (0, pad), value=1.0)
    return fn(flat)[:, :n].reshape(x.shape)


class _Params:
    """Per-layer parameter stacks ``(B, ...)`` as leaf tensors: one fused Adam call steps them all, and
    their gradients arrive as they are (packing them into one tensor costs a copy of every gradient)."""

    def __init__(self, arrays: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> None:
        self.leaves = [torch.tensor(a, dtype=dtype, device=device).requires_grad_() for a in arrays]

    def set_grads(self, loss: torch.Tensor) -> None:
        for leaf, grad in zip(self.leaves, torch.autograd.grad(loss, self.leaves)):
            leaf.grad = grad


class _Patches(torch.autograd.Function):
    """``F.unfold(x, k)`` (B, C, S, S) -> (B, C*k*k, (S-k+1)^2) as one strided copy (im2col is 8x slower
    for these small crops on CPU); the gradient is ``F.fold``, its exact adjoint."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        b, c, s, _ = x.shape
        m = s - k + 1
        ctx.size, ctx.k = s, k
        sb, sc, sy, sx = x.stride()
        return x.as_strided((b, c, k, k, m, m), (sb, sc, sy, sx, sy, sx)).reshape(b, c * k * k, m * m)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return F.fold(grad, (ctx.size, ctx.size), ctx.k), None


class _MapBatchNormReLU(torch.autograd.Function):
    """ReLU of the train-mode batch norm of every (image, channel) map of ``h`` (B, C, M) over its M
    positions (biased variance), with per-(image, channel) weight and bias (B, C): the statistics of a
    batch of one map each, as KernelGAN's D normalises. The statistics come from the native layer norm
    (one fused pass; the native batch norm's forward is 1.6x slower for these many short channels), the
    gradient from the native batch-norm backward with those statistics."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                eps: float) -> torch.Tensor:
        xhat, mean, rstd = torch.native_layer_norm(h, (h.shape[-1],), None, None, eps)
        y = torch.addcmul(bias[:, :, None], xhat, weight[:, :, None]).clamp_min_(0.0)
        ctx.save_for_backward(h, weight, mean, rstd, y)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        h, weight, mean, rstd, y = ctx.saved_tensors
        b, c, m = h.shape
        grad = torch.ops.aten.threshold_backward(grad, y, 0.0)
        gh, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad.reshape(1, b * c, m), h.reshape(1, b * c, m), weight.reshape(-1), None, None, mean.reshape(-1),
            rstd.reshape(-1), True, ctx.eps, [True, True, True])
        return gh.reshape(b, c, m), gw.reshape(b, c), gb.reshape(b, c), None


class _Discriminators:
    """B patch discriminators with spectral norm (one power iteration per forward, as torch's
    ``spectral_norm`` in training mode) and train-mode batch norm over each image's own map."""

    def __init__(self, init: list[dict[str, list[np.ndarray]]], p: KernelGANParams, device: torch.device,
                 dtype: torch.dtype) -> None:
        b = len(init)
        n = len(init[0]["d"])
        self.n = n
        stack = lambda key, i: np.stack([w[key][i] for w in init])  # noqa: E731
        weights = [stack("d", i) for i in range(n)]
        # the last layer's single bias gets a LANES-wide slot (only column 0 is used) so that every
        # parameter segment is a whole number of SIMD blocks (see LANES)
        biases = [np.zeros((b, max(w.shape[1], LANES))) for w in weights]
        bn_w = [stack("bn", i) for i in range(n - 2)]
        bn_b = [np.zeros_like(a) for a in bn_w]
        self.params = _Params(weights + biases + bn_w + bn_b, device, dtype)
        self.u = [torch.tensor(stack("u", i), dtype=dtype, device=device) for i in range(n)]
        self.v = [torch.tensor(stack("v", i), dtype=dtype, device=device) for i in range(n)]
        self.k = p.d_kernel
        self._power_iteration(self.params.leaves[:n])  # the official D runs once in its constructor

    @torch.no_grad()
    def _power_iteration(self, weights: list[torch.Tensor]) -> None:
        # Matrix-vector products as multiply + sum: BLAS gemv splits the sum differently with the
        # batch size, and KernelGAN's training amplifies the last bit (see docs/pool.md).
        for i, w in enumerate(weights):
            self.v[i] = F.normalize((w * self.u[i][:, :, None]).sum(dim=1), dim=1, eps=1e-12)
            self.u[i] = F.normalize((w * self.v[i][:, None, :]).sum(dim=2), dim=1, eps=1e-12)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """D map of ``x`` (B, 3, s, s) in [-1, 1] -> (B, (s-6)^2) in (0, 1)."""
        leaves = self.params.leaves
        n = self.n
        weights, biases, bn_w, bn_b = leaves[:n], leaves[n:2 * n], leaves[2 * n:3 * n - 2], leaves[3 * n - 2:]
        self._power_iteration(weights)
        wn = []
        for i, w in enumerate(weights):
            sigma = (self.u[i] * (w * self.v[i][:, None, :]).sum(dim=2)).sum(dim=1)
            wn.append(w / sigma[:, None, None])
        # The first layer is linear and feeds the second directly (no normalisation or activation
        # between them), so both apply as one product with their composite (B, 64, 3*k*k) matrix: the
        # same function, a third less arithmetic in these two layers forward and backward. The bias
        # vector product is a multiply + sum (BLAS gemv splits its sum by batch size).
        w01 = torch.bmm(wn[1], wn[0])
        b01 = (wn[1] * biases[0][:, None, :]).sum(dim=2) + biases[1]
        h = _MapBatchNormReLU.apply(torch.baddbmm(b01[:, :, None], w01, _Patches.apply(x, self.k)), bn_w[0], bn_b[0],
                                    1e-5)
        for i in range(2, n - 1):
            # train-mode batch norm over each image's own 20x20 map (biased variance, eps 1e-5), ReLU
            h = _MapBatchNormReLU.apply(torch.baddbmm(biases[i][:, :, None], wn[i], h), bn_w[i - 1], bn_b[i - 1], 1e-5)
        h = torch.baddbmm(biases[-1][:, :1, None], wn[-1], h)
        return _per_image(torch.sigmoid, h[:, 0])


def _boundary_mask(k: int, device: torch.device) -> torch.Tensor:
    z = np.arange(-k // 2 + 1, k // 2 + 1)
    g = np.exp(-z ** 2 / (2.0 * k * k)) / math.sqrt(2 * math.pi * k * k)
    m = np.outer(g, g)
    m = 1.0 - m / m.max()
    margin = (k - (k // 2 + k % 2)) // 2 - 1
    m[margin:-margin, margin:-margin] = 0
    return torch.tensor(30.0 * m, device=device)


def _bicubic_targets(gx: torch.Tensor, p: KernelGANParams) -> torch.Tensor:
    """The bicubic loss's targets for G crops ``(N, 3, S, S)``: strided conv with the 8x8 bicubic
    kernel (pad 3), shaved to G's output size. ``mixed``: every channel is the sum over the input
    channels (official); ``per-channel``: each channel from itself."""
    kb = torch.tensor(bicubic_kernel(2), dtype=gx.dtype, device=gx.device)
    n, c, s, _ = gx.shape
    if p.bicubic_loss == "mixed":
        t = F.conv2d(gx.sum(dim=1, keepdim=True), kb[None, None], stride=2, padding=3).expand(n, c, -1, -1)
    else:
        t = F.conv2d(gx.reshape(n * c, 1, s, s), kb[None, None], stride=2, padding=3).reshape(n, c, s // 2, s // 2)
    sh = (t.shape[-1] - p.d_crop) // 2
    return t[:, :, sh:sh + p.d_crop, sh:sh + p.d_crop]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when present, else CPU; otherwise the named device, which must exist
    (raises :class:`~realsr.errors.UsageError`; :func:`realsr.devices.resolve_device`)."""
    return devices.resolve_device(device, auto=("cuda",))


def train_kernelgan(
    images: Sequence[np.ndarray],
    seeds: Sequence[int | Sequence[int]],
    params: KernelGANParams = KernelGANParams(),
    device: str | torch.device | None = "cpu",
    progress: Callable[[int], None] | None = None,
    chunk: int = 50,
    dtype: torch.dtype = torch.float32,
) -> list[RawEstimate]:
    """Run KernelGAN on every image at once (one batch); returns one :class:`RawEstimate` each.

    ``images``: prepared images (:func:`prepare_image`), each at least ``g_crop`` px per side;
    ``seeds``: one per image (int or sequence of ints): the image's crops, noise and initial weights
    depend on its seed only. ``progress(n)`` is called with the number of iterations just done;
    ``chunk``: iterations whose crops and noise are prepared at once (memory: about
    ``chunk * len(images) * 65`` kB); ``dtype``: float32 (the official precision) or float64.
    """
    p = params
    dev = resolve_device(device)
    if len(images) != len(seeds) or not images:
        raise ValueError("give one seed per image, and at least one image")
    for img in images:
        if min(img.shape[:2]) < p.g_crop:
            raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is smaller than the {p.g_crop}-px crops")
    jobs = [_Job(img, s, p) for img, s in zip(images, seeds)]
    init = [_init_weights(j.rng["init"], p) for j in jobs]
    b = len(jobs)
    gen = _Params([np.stack([w["g"][i] for w in init]) for i in range(len(p.g_structure))], dev, dtype)
    disc = _Discriminators(init, p, dev, dtype)
    opt_g = torch.optim.Adam(gen.leaves, lr=p.lr_g, betas=(p.beta1, 0.999), fused=True)
    opt_d = torch.optim.Adam(disc.params.leaves, lr=p.lr_d, betas=(p.beta1, 0.999), fused=True)
    mask = _boundary_mask(p.kernel_size, dev).to(dtype)
    idx = torch.arange(p.kernel_size, dtype=dtype, device=dev)
    centre = p.kernel_size // 2 + 0.5 * (2 - p.kernel_size % 2)

    # Learner state, one entry per image (kept on the device: no host sync per iteration)
    lam_bic = torch.full((b,), p.lambda_bicubic, device=dev, dtype=dtype)
    lam_cen = torch.zeros(b, device=dev, dtype=dtype)
    lam_spa = torch.zeros(b, device=dev, dtype=dtype)
    similar = torch.zeros(b, dtype=torch.bool, device=dev)
    insert = torch.ones(b, dtype=torch.bool, device=dev)
    counter = torch.zeros(b, dtype=torch.int32, device=dev)
    similar_at = torch.full((b,), -1, dtype=torch.int64, device=dev)
    constraints_at = torch.full((b,), -1, dtype=torch.int64, device=dev)
    loss_bic = torch.zeros(b, device=dev, dtype=dtype)
    kernel = torch.zeros(b, p.kernel_size, p.kernel_size, device=dev, dtype=dtype)

    def g_out(x: torch.Tensor, win: torch.Tensor | None, g_w: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        k = compose_kernel(g_w)
        return (g_forward_kernel(win, k, p.g_crop) if win is not None else g_forward_network(x, g_w)), k

    for start in range(0, p.iterations, chunk):
        stop = min(p.iterations, start + chunk)
        parts = [j.chunk(start, stop, p) for j in jobs]
        gx_all, dx_all, fake_all = (torch.from_numpy(np.stack(a, axis=1)).to(dev, dtype) for a in zip(*parts))
        n = stop - start
        tgt_all = _bicubic_targets(gx_all.reshape(n * b, *gx_all.shape[2:]), p).reshape(n, b, 3, p.d_crop, p.d_crop)
        for t in range(n):
            it = start + t
            gx, dx, fake_noise, target = gx_all[t], dx_all[t], fake_all[t], tgt_all[t]
            win = crop_rows(gx, p.kernel_size) if p.forward == "kernel" else None
            # --- G step
            g_pred, k = g_out(gx, win, gen.leaves)
            loss_gan = (disc(g_pred) - 1.0).abs().mean(dim=1)
            loss_bic = ((g_pred - target) ** 2).mean(dim=(1, 2, 3))
            ksum = k.sum(dim=(1, 2))
            loss_s2o = (1.0 - ksum).abs()
            loss_bnd = (k * mask).abs().mean(dim=(1, 2))
            # centres of mass as multiply + sum: a matrix-vector product (BLAS gemv) sums a batch's
            # rows in another order than a single image's row
            com_r = (k.sum(dim=2) * idx).sum(dim=1) / ksum
            com_c = (k.sum(dim=1) * idx).sum(dim=1) / ksum
            loss_cen = ((com_r - centre) ** 2 + (com_c - centre) ** 2) / 2.0
            loss_spa = _per_image(lambda t: t.abs() ** 0.2, k).mean(dim=(1, 2))
            total = (loss_gan + lam_bic * loss_bic + p.lambda_sum2one * loss_s2o + p.lambda_boundaries * loss_bnd
                     + lam_cen * loss_cen + lam_spa * loss_spa).sum()
            gen.set_grads(total)
            opt_g.step()
            kernel = k.detach()
            loss_bic = loss_bic.detach()
            # --- D step (G's output recomputed with the updated G, as the official code does)
            with torch.no_grad():
                fake = g_out(gx, win, gen.leaves)[0] + fake_noise
            d_real = disc(dx)
            d_fake = disc(fake)
            loss_d = (0.5 * ((d_fake.abs().mean(dim=1)) + (d_real - 1.0).abs().mean(dim=1))).sum()
            disc.params.set_grads(loss_d)
            opt_d.step()
            # --- Learner.update
            if it == 0:
                continue
            if it % p.lr_step == 0:
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] /= p.lr_decay
            was_similar = similar.clone()
            hit = loss_bic < p.bicubic_threshold
            became = ~was_similar & hit & (counter >= 2)
            counter = torch.where(~was_similar & hit & (counter < 2), counter + 1,
                                  torch.where(~was_similar & ~hit, torch.zeros_like(counter), counter))
            similar = was_similar | became
            similar_at = torch.where(became, torch.full_like(similar_at, it), similar_at)
            if it % p.lambda_update_freq == 0:
                decay = was_similar & (lam_bic > p.lambda_bicubic_min)
                lam_bic = torch.where(decay, torch.clamp(lam_bic / p.lambda_bicubic_decay, min=p.lambda_bicubic_min),
                                      lam_bic)
                switch = decay & insert & (lam_bic < 5e-3)
                lam_cen = torch.where(switch, torch.full_like(lam_cen, p.lambda_centralized), lam_cen)
                lam_spa = torch.where(switch, torch.full_like(lam_spa, p.lambda_sparse), lam_spa)
                constraints_at = torch.where(switch, torch.full_like(constraints_at, it), constraints_at)
                insert = insert & ~switch
        if progress is not None:
            progress(n)

    ks = kernel.cpu().double().numpy()
    lb = loss_bic.cpu().double().numpy()
    sa = similar_at.cpu().numpy()
    ca = constraints_at.cpu().numpy()
    return [RawEstimate(ks[i], float(lb[i]), None if sa[i] < 0 else int(sa[i]), None if ca[i] < 0 else int(ca[i]),
                        not jobs[i].has_gradients) for i in range(b)]
