"""Batched torch versions of the degradation operators, for the GPU (on-the-fly degradation in
training) and for fast offline runs. Tensors are (B, C, H, W) float in [0, 1] on any device.

The deterministic operators equal the NumPy path (:mod:`realsr.degrade.pipeline`) to float
tolerance: :func:`blur` (correlation, origin ``K // 2``, reflect borders), :func:`subsample`,
:func:`blur_downsample`, :func:`resize` (MATLAB ``imresize`` with the same weight matrices),
:func:`quantize`. :func:`apply_steps` replays recorded steps exactly (its noise fields come from the
steps' seeds through NumPy, as offline). The ``random_*`` functions draw fresh degradations for a
whole batch on the device (noise from a torch generator, so not the NumPy draws of offline runs).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from realsr.devices import full_fp32, to_device
from realsr.resize import check_scale, resize_matrix

from .jpeg import jpeg_torch
from .kernel_family import make_kernel
from .pipeline import gaussian_field, poisson_noise, tile_noise
from .recipes import ClassicParams, HighOrderParams, random_kernel_spec, sample_classic

Tensor = torch.Tensor
# BT.601 luma weights of realsr.color.rgb_to_gray
_GRAY = (0.299, 0.587, 0.114)


def _mirror(n: int, before: int, after: int, device: torch.device) -> Tensor:
    """Indices of a symmetric (edge-repeating) extension of ``n`` samples by ``before``/``after``."""
    i = torch.arange(-before, n + after, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def pad_reflect(x: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Pad (..., H, W) with scipy's ``reflect`` / cv2 ``BORDER_REFLECT`` (edge pixel repeated, any width)."""
    h, w = x.shape[-2:]
    x = x.index_select(-2, _mirror(h, top, bottom, x.device))
    return x.index_select(-1, _mirror(w, left, right, x.device))


def _images(x: Any) -> tuple[int, int, int, int]:
    """(B, C, H, W) of a batch the operators take: a 4-D floating-point tensor; ValueError otherwise
    (uint8 tensors would be blurred with kernels cast to integers and clipped to {0, 1})."""
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        what = f"a {x.ndim}-D {x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a (B, C, H, W) float tensor in [0, 1], got {what}")
    b, c, h, w = x.shape
    return b, c, h, w


def _hr_batch(hr: Any, scale: Any) -> tuple[int, int, int, int, int]:
    """(B, C, H, W, scale) of an HR batch for the ``random_*`` functions: H and W multiples of scale."""
    b, c, h, w = _images(hr)
    s = check_scale(scale)
    if h < s or w < s or h % s or w % s:
        raise ValueError(f"HR sides must be positive multiples of the scale x{s}, got {w}x{h} (mod-crop first)")
    if b == 0:
        raise ValueError("the HR batch is empty")
    return b, c, h, w, s


def _kernels(kernels: Tensor | np.ndarray, b: int, x: Tensor) -> Tensor:
    """``kernels`` (K, K) or (B, K, K) on x's device; host kernels must be finite (a kernel already on
    a GPU is taken as given: checking it would wait for the device)."""
    if isinstance(kernels, Tensor):
        if kernels.dtype == torch.bool or kernels.is_complex():
            raise ValueError(f"kernels must be real numbers, got {kernels.dtype}")
        if kernels.device.type == "cpu" and not bool(torch.isfinite(kernels).all()):
            raise ValueError("a blur kernel holds NaN or infinity")
    else:
        a = np.asarray(kernels)
        if a.dtype.kind not in "fiu":
            raise ValueError(f"kernels must be real numbers, got {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError("a blur kernel holds NaN or infinity")
    k = to_device(kernels, x.device, x.dtype)
    if k.ndim == 2:
        k = k.expand(b, *k.shape)
    if k.ndim != 3 or k.shape[0] != b or k.shape[1] != k.shape[2]:
        raise ValueError(f"kernels must be (K, K) or (B, K, K) with B = {b}, got {tuple(k.shape)}")
    return k


def blur_downsample(x: Tensor, kernels: Tensor | np.ndarray, scale: int = 1) -> Tensor:
    """Correlate every image of ``x`` with its kernel (``kernels`` (K, K) or (B, K, K), origin at
    ``K // 2``, reflect borders) and keep every ``scale``-th pixel from 0 (only those are computed):
    ``ceil(H / scale) x ceil(W / scale)``."""
    b, c, h, w = _images(x)
    scale = check_scale(scale)
    k = _kernels(kernels, b, x)
    if b == 0:  # an empty batch stays empty (conv2d takes no zero groups)
        return x.new_zeros((0, c, -(-h // scale), -(-w // scale)))
    size = k.shape[-1]
    lo, hi = size // 2, size - 1 - size // 2
    xp = pad_reflect(x, lo, hi, lo, hi).reshape(1, b * c, h + size - 1, w + size - 1)
    weight = k.repeat_interleave(c, dim=0).unsqueeze(1)
    with full_fp32() if x.is_cuda else contextlib.nullcontext():  # TF32 would break "equals NumPy"
        out = F.conv2d(xp, weight, stride=scale, groups=b * c)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def blur(x: Tensor, kernels: Tensor | np.ndarray) -> Tensor:
    """Correlate every image with its kernel (origin ``K // 2``, reflect borders); same size."""
    return blur_downsample(x, kernels, 1)


def subsample(x: Tensor, scale: int) -> Tensor:
    """Every ``scale``-th row and column from 0."""
    s = check_scale(scale)
    return x[..., ::s, ::s]


@functools.lru_cache(maxsize=128)
def _matrix(n_in: int, n_out: int, method: str, antialias: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The dense resize matrix on ``device``, built once (no host-to-device copy per call in training)."""
    m = resize_matrix(n_in, n_out, n_out / n_in, antialias, method).toarray()
    with torch.inference_mode(False):  # cached: must serve autograd even when first built under inference_mode
        return to_device(m, device, dtype)


def resize(x: Tensor, size: Sequence[int], method: str = "bicubic", antialias: bool = True,
           round_passes: int | None = None) -> Tensor:
    """MATLAB ``imresize`` of every image to ``size`` (rows, cols) with kernel ``method``
    (:data:`realsr.resize.METHODS`): the same weight matrices as the NumPy path, applied as two
    matrix products (the axis with the smaller scale first, rows on a tie). ``round_passes``
    (255 or 65535): round to that many levels after each pass, as MATLAB on integer images."""
    _, _, h, w = _images(x)
    oh, ow = int(size[0]), int(size[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"resize needs a size of at least 1x1, got {ow}x{oh}")
    if (oh, ow) == (h, w):
        return x
    mh = _matrix(h, oh, method, antialias, x.dtype, x.device)
    mw = _matrix(w, ow, method, antialias, x.dtype, x.device)

    def r(t: Tensor) -> Tensor:
        return t if not round_passes else torch.floor(t.clamp(0, 1) * round_passes + 0.5) / round_passes

    if oh / h <= ow / w:
        return r(torch.matmul(r(torch.matmul(mh, x)), mw.T))
    return r(torch.matmul(mh, r(torch.matmul(x, mw.T))))


def quantize(x: Tensor) -> Tensor:
    """Clip to [0, 1] and round to 8-bit levels (half up, as :func:`realsr.images.from_float`)."""
    _images(x)
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def _per_image(v: Any, b: int, x: Tensor) -> Tensor:
    """``v`` (a scalar or one value per image, host or device) as a (b,) tensor on x's device, uploaded
    without a GPU sync."""
    t = to_device(v, x.device, x.dtype)
    return t.reshape(-1).expand(b) if t.ndim == 0 else t.reshape(b)


def _any_host(flags: Any) -> bool:
    """Whether any of ``flags`` (bool, sequence, array or tensor) is set, decided without reading a
    GPU tensor: True for flags already on a device, whose callers then compute both branches."""
    if isinstance(flags, Tensor) and flags.device.type != "cpu":
        return True
    return bool(np.any(np.asarray(flags.cpu() if isinstance(flags, Tensor) else flags)))


def to_gray(x: Tensor) -> Tensor:
    """BT.601 gray (B, 1, H, W) of RGB ``x``."""
    r, g, bl = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * bl


def gaussian_noise(x: Tensor, sigma: Any, gray: Any = False, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian noise for ``x``: std ``sigma`` (DN on 0-255; scalar or per image), the same field on
    all channels where ``gray`` (bool or per image)."""
    b, c, h, w = _images(x)
    s = _per_image(sigma, b, x).view(b, 1, 1, 1) / 255
    n = torch.randn((b, c, h, w), generator=generator, device=x.device, dtype=x.dtype)
    g = to_device(gray, x.device, torch.bool).reshape(-1).expand(b).view(b, 1, 1, 1)
    n = torch.where(g, n[:, :1].expand_as(n), n)
    return n * s


def poisson_noise_t(x: Tensor, peak: Any, gray: Any = False, generator: torch.Generator | None = None) -> Tensor:
    """Poisson noise ``Poisson(peak x) / peak - x`` of ``x`` clipped and rounded to 8-bit levels (on its gray image where
    ``gray``); ``peak`` scalar or per image. ``gray`` flags already on a GPU are not read (that would
    wait for the device): the gray field is then drawn for every image and picked per image, so the
    random stream differs from host flags', and with non-RGB images they are ignored."""
    b = _images(x)[0]
    p = _per_image(peak, b, x).view(b, 1, 1, 1)
    base = quantize(x)
    noise = torch.poisson(base * p, generator=generator) / p - base
    on_host = not (isinstance(gray, Tensor) and gray.device.type != "cpu")
    if x.shape[1] != 3:  # gray noise needs RGB; flags on a device cannot be read without a sync: ignored
        if on_host and _any_host(gray):
            raise ValueError(f"gray Poisson noise needs RGB images, got {x.shape[1]} channels")
        return noise
    if _any_host(gray):  # one draw on the gray image, the same on every channel
        g = to_device(gray, x.device, torch.bool).reshape(-1).expand(b)
        gb = to_gray(base)
        gn = (torch.poisson(gb * p, generator=generator) / p - gb).expand_as(noise)
        noise = torch.where(g.view(b, 1, 1, 1), gn, noise)
    return noise


def apply_steps(x: Tensor, steps: list[dict[str, Any]], pool: Any = None, jpeg_backend: str = "codec") -> Tensor:
    """Replay recorded ``steps`` (:mod:`realsr.degrade.pipeline`) on every image of ``x``; equals
    the NumPy path to float tolerance (noise fields from the steps' seeds; JPEG through the codec
    unless ``jpeg_backend="simulated"``). Not rounded. On a GPU the host-made noise fields and
    kernels go up asynchronously; a Poisson step reads the images back (its noise is drawn on the
    host, as recorded) and so waits for the device."""
    for st in steps:
        op = st["op"]
        if op == "blur":
            x = blur(x, make_kernel(st["kernel"], pool))
        elif op == "subsample":
            x = subsample(x, int(st["scale"]))
        elif op == "resize":
            x = resize(x, st["size"], st["method"], bool(st.get("antialias", True)), st.get("round_passes"))
        elif op in ("gaussian_noise", "poisson_noise", "pool_noise"):
            h, w = x.shape[-2:]
            if op == "gaussian_noise":
                n = gaussian_field((h, w), 1 if st["gray"] else x.shape[1], int(st["seed"])) * np.float32(st["sigma"] / 255)
            elif op == "pool_noise":
                n = tile_noise(st["tiles"], (h, w), pool)
            else:
                xs = x.detach().cpu().permute(0, 2, 3, 1).numpy()
                n = np.stack([poisson_noise(im, float(st["peak"]), int(st["seed"]), bool(st["gray"])) for im in xs])
                n = n * np.float32(st.get("scale", 1.0))
            t = to_device(np.ascontiguousarray(n), x.device, x.dtype)  # noise fields are made on the host
            t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t.permute(2, 0, 1).unsqueeze(0)
            if t.shape[1] not in (1, x.shape[1]):
                raise ValueError(f"{op} is RGB noise; the images have {x.shape[1]} channels")
            x = x + t
        elif op == "jpeg":
            x = jpeg_torch(x.clamp(0, 1), int(st["quality"]), backend=jpeg_backend)
        elif op == "clip":
            x = x.clamp(0, 1)
        else:
            raise ValueError(f"unknown degradation step {op!r}")
    return x


class NoiseBank:
    """The noise patches of a pool on a device, for noise injection in training (Real-SR's
    ``noiseDataset``: a random patch, a random crop of the LR size, made zero-mean per channel)."""

    def __init__(self, pool: Any, device: torch.device | str = "cpu"):
        if not pool.noise:
            from realsr.errors import UsageError

            raise UsageError("the pool has no noise patches", pool.record)
        from realsr.images import to_float

        self.patches = [torch.from_numpy(np.ascontiguousarray(to_float(pool.noise_patch(i)).transpose(2, 0, 1))).to(device)
                        for i in range(len(pool.noise))]
        self.min_size = min(min(p.shape[-2:]) for p in self.patches)

    def sample(self, b: int, h: int, w: int, generator: torch.Generator | None = None) -> Tensor:
        """(b, 3, h, w) zero-mean noise crops (h, w at most the smallest patch side). The crop positions
        are drawn on the CPU: ``generator`` must be a CPU generator (one GPU draw per crop would
        stall the device)."""
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"NoiseBank draws crop positions on the CPU: give a CPU generator, not one on "
                             f"{generator.device}")
        if max(h, w) > self.min_size:
            raise ValueError(f"noise crops of {w}x{h} are larger than the smallest pool patch ({self.min_size} px)")
        if b == 0:
            return self.patches[0].new_zeros((0, self.patches[0].shape[0], h, w))
        idx = torch.randint(len(self.patches), (b,), generator=generator).tolist()
        out = []
        for i in idx:
            p = self.patches[i]
            y = int(torch.randint(p.shape[-2] - h + 1, (1,), generator=generator))
            x = int(torch.randint(p.shape[-1] - w + 1, (1,), generator=generator))
            out.append(p[:, y:y + h, x:x + w])
        crops = torch.stack(out)
        return crops - crops.mean(dim=(2, 3), keepdim=True)

    def inject(self, lr: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``clamp(lr + noise, 0, 1)`` with one random zero-mean crop per image; ``lr`` has the
        patches' channels (3: RGB)."""
        b, c, h, w = _images(lr)
        if c != self.patches[0].shape[0]:
            raise ValueError(f"the pool's noise patches have {self.patches[0].shape[0]} channels, the images {c} "
                             "(convert gray images to RGB first)")
        return (lr + self.sample(b, h, w, generator).to(lr.dtype)).clamp(0, 1)


def _pad_kernels(ks: list[np.ndarray]) -> np.ndarray:
    size = max(k.shape[0] for k in ks)
    out = np.zeros((len(ks), size, size))
    for i, k in enumerate(ks):
        o = (size - k.shape[0]) // 2
        out[i, o:o + k.shape[0], o:o + k.shape[0]] = k
    return out


def random_pool(hr: Tensor, scale: int, pool: Any, bank: NoiseBank | None, rng: np.random.Generator,
                generator: torch.Generator | None = None) -> Tensor:
    """Impressionism degradation of a batch: a pool kernel per image (drawn with ``rng``), blur and
    keep every ``scale``-th pixel, then (with a ``bank``) one zero-mean pool-noise crop per image
    (positions drawn with ``generator``, a CPU generator, by :meth:`NoiseBank.sample`); not rounded."""
    b, _, _, _ = _images(hr)
    scale = check_scale(scale)
    if pool.scale != scale:
        from realsr.errors import UsageError

        raise UsageError(f"the pool was built for x{pool.scale}, not x{scale}", pool.record)
    if b == 0:
        raise ValueError("the HR batch is empty")
    ks = [pool.random_kernel(rng)[0].astype(np.float64) for _ in range(b)]
    lr = blur_downsample(hr, _pad_kernels(ks), scale)
    if bank is not None:
        lr = lr + bank.sample(lr.shape[0], lr.shape[-2], lr.shape[-1], generator).to(lr.dtype)
    return lr


def random_classic(hr: Tensor, scale: int, params: ClassicParams, rng: np.random.Generator,
                   generator: torch.Generator | None = None, jpeg_backend: str = "simulated") -> Tensor:
    """Classic degradation of a batch (HR sides multiples of ``scale``): per image the parameters of
    :func:`realsr.degrade.recipes.sample_classic` (drawn with ``rng``), executed batched; noise drawn
    on the device with ``generator``. Not rounded."""
    b, _, h, w, scale = _hr_batch(hr, scale)
    specs = [sample_classic(rng, (h, w), scale, params) for _ in range(b)]
    x = blur(hr, _pad_kernels([make_kernel(s[0]["kernel"]) for s in specs]))
    lr = torch.empty((b, hr.shape[1], h // scale, w // scale), dtype=hr.dtype, device=hr.device)
    methods = [s[1]["method"] for s in specs]
    for m in sorted(set(methods)):
        idx = to_device([i for i, mm in enumerate(methods) if mm == m], hr.device)
        lr[idx] = resize(x[idx], (h // scale, w // scale), m, params.antialias)
    sig = [next((st["sigma"] for st in s if st["op"] == "gaussian_noise"), 0.0) for s in specs]
    peak = [next((st["peak"] for st in s if st["op"] == "poisson_noise"), 0.0) for s in specs]
    lr = lr + gaussian_noise(lr, sig, False, generator)
    if any(p > 0 for p in peak):
        use = to_device([p > 0 for p in peak], hr.device).view(b, 1, 1, 1)
        pn = poisson_noise_t(lr, [p if p > 0 else 1.0 for p in peak], False, generator)
        lr = lr + torch.where(use, pn, torch.zeros_like(pn))
    q = [next((st["quality"] for st in s if st["op"] == "jpeg"), 0) for s in specs]
    if any(q):
        idx = to_device([i for i, v in enumerate(q) if v], hr.device)
        lr[idx] = jpeg_torch(lr[idx].clamp(0, 1), [v for v in q if v], backend=jpeg_backend)
    return lr


def random_highorder(hr: Tensor, scale: int, params: HighOrderParams, rng: np.random.Generator,
                     generator: torch.Generator | None = None, jpeg_backend: str = "simulated") -> Tensor:
    """Real-ESRGAN's second-order degradation of a batch, batched as Real-ESRGAN does it: kernels,
    noise strength, gray noise and JPEG quality per image; whether to blur in the second stage, the
    resize factor and method, the noise kind and the final order per batch. Not rounded."""
    b, _, h, w, scale = _hr_batch(hr, scale)
    lr_size = (h // scale, w // scale)
    x = hr

    def stage(x: Tensor, st: Any, base: tuple[int, int], first: bool) -> Tensor:
        if first or rng.random() < st.blur_prob:
            x = blur(x, _pad_kernels([make_kernel(random_kernel_spec(rng, st)) for _ in range(b)]))
        kind = int(rng.choice(3, p=np.asarray(st.resize_probs)))
        f = (rng.uniform(1.0, st.resize_range[1]) if kind == 0 else rng.uniform(st.resize_range[0], 1.0) if kind == 1 else 1.0)
        size = (max(1, int(base[0] * f)), max(1, int(base[1] * f)))
        x = resize(x, size, params.methods[int(rng.integers(len(params.methods)))])
        gray = rng.random(b) < st.gray_noise_prob  # host flags: no GPU read to find the gray ones
        if rng.random() < st.gaussian_noise_prob:
            x = x + gaussian_noise(x, rng.uniform(*st.noise_sigma, size=b), gray, generator)
        else:
            sc = _per_image(rng.uniform(*st.poisson_scale, size=b), b, x).view(b, 1, 1, 1)
            x = x + poisson_noise_t(x, params.poisson_peak, gray, generator) * sc
        q = rng.integers(st.jpeg_quality[0], st.jpeg_quality[1] + 1, size=b).tolist()
        return jpeg_torch(x.clamp(0, 1), q, backend=jpeg_backend)

    x = stage(x, params.first, (h, w), True)
    if rng.random() < params.second_stage_prob:
        x = stage(x, params.second, lr_size, False)
    sizes = params.second.kernel_sizes
    sinc = [make_kernel({"type": "sinc", "size": int(sizes[int(rng.integers(len(sizes)))]),
                         "cutoff": float(rng.uniform(math.pi / 3, math.pi))})
            if rng.random() < params.final_sinc_prob else np.ones((1, 1)) for _ in range(b)]
    method = params.methods[int(rng.integers(len(params.methods)))]
    q = rng.integers(params.second.jpeg_quality[0], params.second.jpeg_quality[1] + 1, size=b).tolist()
    if rng.random() < 0.5:
        x = blur(resize(x, lr_size, method), _pad_kernels(sinc))
        x = jpeg_torch(x.clamp(0, 1), q, backend=jpeg_backend)
    else:
        x = jpeg_torch(x.clamp(0, 1), q, backend=jpeg_backend)
        x = blur(resize(x, lr_size, method), _pad_kernels(sinc))
    return x
