"""Tiled inference (blended tiles == whole image), self-ensemble, precision, OOM back-off."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realsr.errors import UsageError  # noqa: E402
from realsr.resize import imresize  # noqa: E402
from realsr.synthetic import synthetic_scene  # noqa: E402
from realsr.train import models  # noqa: E402
from realsr.train.infer import (InferOptions, from_tensor, tile_grid, tile_weights, to_tensor,  # noqa: E402
                                upscale_tensor)
from realsr.train.metrics import psnr  # noqa: E402
from realsr.train.models import SRNet  # noqa: E402


def _psnr_f(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.mark.parametrize("length,tile,overlap", [(100, 40, 8), (41, 40, 8), (40, 40, 8), (257, 64, 16), (10, 64, 16),
                                                 (300, 33, 16), (129, 64, 0), (1010, 512, 16), (4000, 512, 16)])
def test_tiles_cover_evenly_with_the_overlap_and_weights_never_vanish(length, tile, overlap):
    size, starts = tile_grid(length, tile, overlap)
    assert size <= max(tile, 1) or len(starts) == 1
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # overlap at least `overlap`
    if len(starts) > 1:  # the fewest tiles, and no bigger than needed
        assert len(starts) == -(-(length - overlap) // (tile - overlap))
        assert len(starts) * size - (len(starts) - 1) * overlap < length + len(starts)
    for scale in (1, 3):
        total = np.zeros(length * scale)
        for s in starts:
            w = tile_weights(s, size, length, overlap, scale)
            assert w.min() >= 0 and w.max() <= 1
            total[s * scale:(s + size) * scale] += w
        assert total.min() > 0


@pytest.fixture(scope="module")
def lr_image() -> np.ndarray:
    return synthetic_scene(70, 90, seed=3)


def test_tiled_equals_untiled_for_srrescgan_including_the_global_projection(lr_image):
    torch.manual_seed(0)
    m = models.build("srrescgan")  # receptive radius 5 LR px: the overlap is raised to 15
    x = to_tensor(lr_image)
    whole = upscale_tensor(m, x, InferOptions(tile=0))
    tiled = upscale_tensor(m, x, InferOptions(tile=40, overlap=4, batch=3))
    assert (whole - tiled).abs().max() < 1e-4
    hr = synthetic_scene(280, 360, seed=3)
    assert abs(psnr(from_tensor(whole), hr, 4) - psnr(from_tensor(tiled), hr, 4)) < 0.01


def test_tiled_is_within_0p01_db_for_a_network_with_a_large_receptive_field(lr_image):
    torch.manual_seed(0)
    m = models.build("rrdbnet", nb=3, nf=16, gc=8)
    with torch.no_grad():  # keep the random network near identity so the output is an image
        m.conv_last.weight.mul_(0.05)
    x = to_tensor(lr_image)
    whole = upscale_tensor(m, x, InferOptions(tile=0))
    tiled = upscale_tensor(m, x, InferOptions(tile=48, overlap=16, batch=2))
    assert _psnr_f(whole, tiled) > 60
    ref = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic")
    assert abs(_psnr_f(whole, ref) - _psnr_f(tiled, ref)) < 0.01


def test_ensemble_of_an_equivariant_model_is_the_model(lr_image):
    m = models.build("bicubic", scale=2)
    x = to_tensor(lr_image[:41, :57])  # odd sizes: rotations change which axis is which
    plain = upscale_tensor(m, x, InferOptions(tile=0))
    ens = upscale_tensor(m, x, InferOptions(tile=24, overlap=8, ensemble=True))
    assert (plain - ens).abs().max() < 1e-5
    ref = np.clip(imresize(lr_image[:41, :57].astype(np.float64) / 255, 2), 0, 1)
    assert np.abs(plain[0].permute(1, 2, 0).numpy() - ref).max() < 1e-5


class _Shift(SRNet):
    """A non-equivariant toy model: nearest x2 upsampling plus a ramp that depends on the column."""

    arch = "_shift_test"
    scales = (2,)

    def __init__(self):
        super().__init__(2)

    def forward(self, x):
        y = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return y + 0.01 * torch.arange(y.shape[-1], dtype=y.dtype) / y.shape[-1]


def test_ensemble_averages_the_back_transformed_outputs():
    m = _Shift()
    x = torch.rand(1, 3, 6, 8)
    got = upscale_tensor(m, x, InferOptions(tile=0, ensemble=True))
    outs = []
    for k in range(4):
        for flip in (False, True):
            t = torch.rot90(x.flip(3) if flip else x, k, (2, 3))
            y = torch.rot90(m(t), -k, (2, 3))
            outs.append(y.flip(3) if flip else y)
    assert torch.allclose(got, torch.stack(outs).mean(0).clamp(0, 1), atol=1e-6)


class _OOMWhenBig(SRNet):
    """Raises the device's out-of-memory error for tiles over ``limit`` pixels or batches over 1."""

    arch = "_oom_test"
    scales = (2,)

    def __init__(self, limit: int):
        super().__init__(2)
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > 1 or max(x.shape[-2:]) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def test_out_of_memory_backs_off_to_smaller_batches_and_tiles():
    x = torch.rand(1, 3, 50, 60)
    seen = []
    got = upscale_tensor(_OOMWhenBig(20), x, InferOptions(tile=64, overlap=4, batch=4),
                         on_backoff=lambda t, b: seen.append((t, b)))
    assert torch.allclose(got, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    assert seen == [(64, 2), (64, 1), (32, 1), (16, 1)]
    with pytest.raises(UsageError, match="out of memory even with"):
        upscale_tensor(_OOMWhenBig(20), x, InferOptions(tile=64, overlap=12, batch=1))


def test_other_errors_are_not_swallowed():
    class Broken(_OOMWhenBig):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        upscale_tensor(Broken(8), torch.rand(1, 3, 8, 8), InferOptions(tile=0))


def test_bf16_on_cpu_and_option_checks(lr_image):
    m = models.build("bicubic", scale=2)
    x = to_tensor(lr_image)
    full = upscale_tensor(m, x, InferOptions(tile=0))
    half = upscale_tensor(m, x, InferOptions(tile=32, overlap=8, precision="bf16"))
    assert half.dtype == torch.float32 and (full - half).abs().max() < 0.02
    for bad in ({"overlap": 16, "tile": 32}, {"batch": 0}, {"precision": "fp8"}):
        with pytest.raises(UsageError):
            InferOptions(**bad)
    with pytest.raises(UsageError):
        upscale_tensor(m, x, InferOptions(device="nonsense"))


def test_16_bit_round_trip():
    img = np.random.default_rng(0).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    assert np.array_equal(from_tensor(to_tensor(img), np.uint16), img)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_matches_cpu(lr_image):
    torch.manual_seed(0)
    m = models.build("srrescgan")
    x = to_tensor(lr_image)
    cpu = upscale_tensor(m, x, InferOptions(tile=0, device="cpu"))
    gpu = upscale_tensor(m, x, InferOptions(tile=32, overlap=12, device="cuda"))
    half = upscale_tensor(m, x, InferOptions(tile=32, overlap=12, device="cuda", precision="half"))
    assert (cpu - gpu).abs().max() < 1e-3 and _psnr_f(cpu, half) > 35


def test_the_model_keeps_its_dtype_and_mode_after_inference():
    m = models.build("srrescgan", depth=1).train()
    upscale_tensor(m, torch.rand(1, 3, 12, 12), InferOptions(tile=0, precision="bf16"))
    assert m.training and all(p.dtype == torch.float32 for p in m.parameters())


def test_upscale_image_takes_gray_and_float_arrays_and_refuses_bad_ones(lr_image):
    from realsr.train.infer import upscale_image

    m = models.build("bicubic", scale=2)
    rgb = upscale_image(m, lr_image)
    gray = upscale_image(m, lr_image[..., 1])  # used to crash in the transpose
    assert gray.shape == rgb.shape and np.allclose(gray[..., 0], rgb[..., 1], atol=1e-6)
    assert np.allclose(upscale_image(m, lr_image / 255.0), rgb, atol=1e-6)
    with pytest.raises(ValueError, match="float images are taken in"):
        upscale_image(m, lr_image.astype(np.float32))


def test_fp32_inference_turns_tf32_off_and_restores_the_flags(lr_image, monkeypatch):
    """PyTorch lets cuDNN run fp32 convolutions in TF32 by default (a 10-bit mantissa on an H100):
    fp32 inference runs under full_fp32, bf16 does not; the global flags come back as they were."""
    m = models.build("bicubic", scale=2)
    seen = []
    real = type(m).forward

    def spy(self, x):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return real(self, x)

    monkeypatch.setattr(type(m), "forward", spy)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    x = to_tensor(lr_image)
    upscale_tensor(m, x, InferOptions(tile=0))
    assert seen[-1] == (False, False) and torch.backends.cudnn.allow_tf32
    upscale_tensor(m, x, InferOptions(tile=0, precision="bf16"))
    assert seen[-1][0] is True
