"""Architecture registry, SRResCGAN (METHODS.md 3.1) and RRDBNet shapes, and official-weight parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realsr.errors import UsageError  # noqa: E402
from realsr.images import read_image  # noqa: E402
from realsr.train import models  # noqa: E402
from realsr.train.infer import InferOptions, from_tensor, to_tensor, upscale_tensor  # noqa: E402
from realsr.train.metrics import psnr  # noqa: E402
from realsr.train.model_files import load_model  # noqa: E402
from realsr.train.models.srrescgan import l2_project, wmad_sigma  # noqa: E402


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registry_names_and_errors():
    assert {"bicubic", "rrdbnet", "srrescgan"} <= set(models.names())
    with pytest.raises(UsageError, match="unknown architecture 'edsrr'.*srrescgan"):
        models.build("edsrr")
    with pytest.raises(UsageError, match="bad arguments"):
        models.build("srrescgan", depht=5)
    with pytest.raises(UsageError, match="scales"):
        models.build("rrdbnet", scale=3)
    m = models.build("srrescgan", depth=3)
    assert m.arch_args == {"scale": 4, "depth": 3, "features": 64, "channels": 3}


def test_parameter_counts():
    assert n_params(models.build("srrescgan")) == 380_356  # METHODS.md 3.1
    assert n_params(models.build("rrdbnet")) == 16_697_987  # ESRGAN x4, nf 64, nb 23, gc 32
    assert n_params(models.build("bicubic")) == 0


@pytest.mark.parametrize("name,scale,size", [("srrescgan", 4, (17, 23)), ("srrescgan", 2, (16, 20)),
                                             ("rrdbnet", 4, (9, 11)), ("rrdbnet", 2, (9, 11)), ("rrdbnet", 1, (10, 14)),
                                             ("bicubic", 3, (7, 9)), ("bicubic", 7, (5, 6)), ("bicubic", 16, (3, 4))])
def test_output_shapes(name, scale, size):
    args = {"nb": 1} if name == "rrdbnet" else {}
    m = models.build(name, scale=scale, **args).eval()
    x = torch.rand(2, 3, *size) * m.pixel_range
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    with torch.no_grad():  # local_forward + finish is the same function
        assert torch.allclose(m.finish(m.local_forward(x)), y, atol=1e-4 * m.pixel_range)


def test_wmad_estimates_white_noise_sigma():
    g = torch.Generator().manual_seed(0)
    for sigma in (5.0, 15.0):
        x = 128 + sigma * torch.randn(2, 3, 256, 256, generator=g)
        est = wmad_sigma(x)
        assert est.shape == (2,)
        assert torch.allclose(est, torch.full((2,), sigma), rtol=0.05)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as inside a bf16 training step
            assert torch.equal(wmad_sigma(x), est)


def test_l2_projection_clips_norm_only_outside_the_ball():
    z = torch.randn(2, 3, 8, 8)
    sigma = torch.tensor([1e-3, 10.0])
    alpha = torch.tensor([math.log(2.0)])
    p = l2_project(z, sigma, alpha)
    eps = 2 * sigma * math.sqrt(3 * 64 - 1)
    assert torch.allclose(p[0].norm(), eps[0], rtol=1e-5)  # projected onto the sphere
    assert torch.allclose(p[1], z[1])  # inside: unchanged


def test_srrescgan_trains_alpha_and_weights():
    m = models.build("srrescgan", depth=2)
    x = torch.rand(1, 3, 12, 12) * 255
    m(x).mean().backward()
    assert m.model.conv1.weight_g.grad is not None and m.model.conv1.weight_g.grad.abs().sum() > 0


@pytest.mark.realdata
def test_srrescgan_official_weights_reproduce_the_official_demo(shared):
    """The official demo outputs are SRResCGAN+ (x8 self-ensemble: test_srrescgan_plus.py writes the
    same folder), so parity is checked with --ensemble. On CPU a 72x72 LR crop of each demo image
    (whole-image CUDA runs when a GPU is present): PSNR >= 50 dB against the official pixels."""
    model = load_model(shared("weights", "srrescgan", "srrescgan_x4.pth"))
    demo = shared("weights", "srrescgan", "demo")
    cuda = torch.cuda.is_available()
    for name in ("0815", "0829"):
        lr = read_image(demo / f"LR__{name}.png")
        ref = read_image(demo / f"sr_results_x4__{name}.png")
        if not cuda:
            y0, x0, n = 120, 200, 72
            lr, ref = lr[y0:y0 + n, x0:x0 + n], ref[4 * y0:4 * (y0 + n), 4 * x0:4 * (x0 + n)]
        opts = InferOptions(tile=0 if not cuda else 256, ensemble=True, device="cuda" if cuda else "cpu")
        sr = from_tensor(upscale_tensor(model, to_tensor(lr), opts))
        b = 0 if cuda else 32  # a crop's own border sees reflect padding instead of the neighbours
        got = psnr(sr[b:sr.shape[0] - b, b:sr.shape[1] - b], ref[b:ref.shape[0] - b, b:ref.shape[1] - b], 0, y_channel=False)
        assert got >= 50.0, (name, got)
        assert np.mean(sr[b:-b or None, b:-b or None] == ref[b:-b or None, b:-b or None]) > 0.999
