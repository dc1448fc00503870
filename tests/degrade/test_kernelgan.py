"""KernelGAN: the kernel reparametrisation is exact, batches do not change an image's result."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from realsr.degrade.kernelgan import (
    KernelGANParams, _init_weights, _streams, compose_kernel, crop_rows, g_forward_kernel, g_forward_network,
    prepare_image, train_kernelgan,
)
from realsr.degrade.sampling import box_same, crop_corners, gradient_map, probability_map, sampling_maps


def _g_weights(n, dtype=torch.float64):
    p = KernelGANParams()
    init = [_init_weights(_streams(i)["init"], p) for i in range(n)]
    return [torch.tensor(np.stack([w["g"][i] for w in init]), dtype=dtype) for i in range(len(p.g_structure))]


def test_composed_kernel_is_the_official_impulse_response():
    g = _g_weights(3)
    k = compose_kernel(g)
    assert k.shape == (3, 13, 13)
    for b in range(3):
        # KernelGAN's calc_curr_k: an impulse through the layers (first padded by K-1), then flipped
        d = torch.ones(1, 1, 1, 1, dtype=torch.float64)
        for i, w in enumerate(t[b] for t in g):
            d = F.conv2d(d, w, padding=12) if i == 0 else F.conv2d(d, w)
        ref = d[0, 0].flip([0, 1])
        assert torch.allclose(k[b], ref, rtol=1e-9, atol=ref.abs().max().item() * 1e-10)


def test_g_through_its_kernel_equals_the_layered_network():
    g = _g_weights(2)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    a = g_forward_kernel(crop_rows(x, 13), compose_kernel(g), 64)
    b = g_forward_network(x, g)
    assert a.shape == b.shape == (2, 3, 26, 26)
    assert torch.allclose(a, b, rtol=1e-9, atol=b.abs().max().item() * 1e-10)


def _image(seed=0, shape=(150, 170)):
    rng = np.random.default_rng(seed)
    from scipy import ndimage
    return np.clip(ndimage.gaussian_filter(rng.random(shape + (3,)), (1.5, 1.5, 0)) * 1.4 - 0.2, 0, 1)


def test_training_with_kernel_forward_follows_the_network_forward():
    p = dict(iterations=6, edge_shave=0)
    img = _image()
    a = train_kernelgan([img], [3], KernelGANParams(**p), dtype=torch.float64)[0].kernel
    b = train_kernelgan([img], [3], KernelGANParams(forward="network", **p), dtype=torch.float64)[0].kernel
    assert np.allclose(a, b, rtol=0, atol=np.abs(b).max() * 1e-6)


@pytest.mark.parametrize("schedule", ["official", "early constraints"])
def test_batched_results_are_bit_identical_to_one_at_a_time(schedule):
    p = KernelGANParams(iterations=40, edge_shave=0)
    if schedule == "early constraints":
        # the centralised and sparsity terms switch on by iteration 20 (at 400 or later with the
        # official schedule), and the learning rate steps at 30: every loss term is exercised
        p = KernelGANParams(iterations=40, edge_shave=0, bicubic_threshold=1e9, lambda_update_freq=10, lr_step=30)
    a, b = _image(0), _image(1, (130, 200))
    alone = train_kernelgan([a], [7], p)[0]
    batch = train_kernelgan([b, a, a, b], [1, 7, 7, 2], p)
    for r in (batch[1], batch[2]):
        assert np.array_equal(r.kernel, alone.kernel)
        assert r.loss_bicubic == alone.loss_bicubic
    assert not np.array_equal(batch[0].kernel, batch[3].kernel)  # other seeds, other runs
    if schedule == "early constraints":
        assert all(r.constraints_at is not None and r.constraints_at <= 20 for r in batch + [alone])


def test_prepare_image_shaves_and_makes_even():
    img = np.zeros((101, 87, 3), np.uint8)
    out = prepare_image(img, KernelGANParams())
    assert out.shape == (80, 66, 3) and out.dtype == np.float64
    assert prepare_image(np.zeros((50, 50), np.uint16), KernelGANParams(edge_shave=0)).shape == (50, 50, 3)


def test_box_same_is_convolve2d_same():
    x = np.random.default_rng(0).random((23, 31))
    for size in (5, 13, 32):
        ref = convolve2d(x, np.ones((size, size)), "same") / size ** 2
        assert np.allclose(box_same(x, size), ref, atol=1e-12)


def test_crops_follow_gradients_and_stay_inside():
    img = np.zeros((200, 200, 3))
    img[:, 140:] = 1.0  # one vertical edge at x = 140
    g = gradient_map(img)
    assert g[:, 135:145].sum() > 0.9 * g.sum()
    prob = probability_map(g, 26)
    corners = crop_corners(prob, (200, 200), 26, 500, np.random.default_rng(0))
    assert (corners % 2 == 0).all() and corners.min() >= 0 and corners.max() <= 200 - 26
    assert np.all(np.abs(corners[:, 1] + 13 - 140) <= 20)
    _, _, has = sampling_maps(np.full((100, 100, 3), 0.5), 64, 26)
    assert not has


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_batches_on_cuda():
    """Over 2 iterations (before KernelGAN's chaotic amplification of rounding, see docs/pool.md) the
    CUDA path follows the CPU path, and a CUDA batch follows a single CUDA run."""
    p = KernelGANParams(iterations=2, edge_shave=0)
    a, b = _image(0), _image(1, (130, 200))
    cpu = train_kernelgan([a], [7], p, "cpu")[0].kernel
    single = train_kernelgan([a], [7], p, "cuda")[0].kernel
    batch = train_kernelgan([b, a, b], [1, 7, 2], p, "cuda")[1].kernel
    scale = np.abs(cpu).max()
    assert np.abs(single - cpu).max() < 1e-3 * scale
    assert np.abs(batch - single).max() < 1e-3 * scale


def test_bicubic_loss_targets_mixed_and_per_channel():
    from realsr.degrade.kernelgan import _bicubic_targets
    from realsr.degrade.kernels import bicubic_kernel

    x = torch.zeros(1, 3, 64, 64)
    x[0, 0] = torch.randn(64, 64)  # only the red channel has content
    kb = torch.tensor(bicubic_kernel(2), dtype=torch.float32)[None, None]
    red = F.conv2d(x[:, :1], kb, stride=2, padding=3)[:, :, 3:29, 3:29]
    mixed = _bicubic_targets(x, KernelGANParams())
    per = _bicubic_targets(x, KernelGANParams(bicubic_loss="per-channel"))
    assert mixed.shape == per.shape == (1, 3, 26, 26)
    for c in range(3):  # official: every channel's target is the downscaled sum of all channels
        assert torch.allclose(mixed[:, c], red[:, 0], atol=1e-6)
    assert torch.allclose(per[:, 0], red[:, 0], atol=1e-6) and per[:, 1:].abs().max() == 0


def test_discriminator_init_official_and_xavier():
    def first_layer(d_init):
        w = _init_weights(_streams(5)["init"], KernelGANParams(d_init=d_init))["d"][1]  # a 64x64 1x1 conv
        return w

    official, xavier = first_layer("official"), first_layer("xavier")
    # PyTorch's default conv init (what the official D keeps): uniform in +-1/sqrt(fan_in)
    assert np.abs(official).max() <= 1 / 8 and np.std(official) == pytest.approx(1 / 8 / np.sqrt(3), rel=0.05)
    assert np.std(xavier) == pytest.approx(0.1 * np.sqrt(2 / 128), rel=0.05)


def test_lambda_bicubic_changes_the_run():
    img = _image()
    a = train_kernelgan([img], [0], KernelGANParams(iterations=5, edge_shave=0))[0].kernel
    b = train_kernelgan([img], [0], KernelGANParams(iterations=5, edge_shave=0, lambda_bicubic=20))[0].kernel
    assert not np.array_equal(a, b)


def _official_discriminator(init, p, dtype):
    """KernelGAN's D as the official code builds it from torch modules (spectral-norm convolutions with
    biases, train-mode BatchNorm2d, ReLU, sigmoid), loaded with one image's initial weights."""
    from torch import nn
    from torch.nn.utils import spectral_norm

    c, k = p.d_channels, p.d_kernel
    convs = [nn.Conv2d(3, c, k, dtype=dtype)] + [nn.Conv2d(c, c, 1, dtype=dtype) for _ in range(p.d_layers - 2)]
    convs.append(nn.Conv2d(c, 1, 1, dtype=dtype))
    bns = [nn.BatchNorm2d(c, dtype=dtype) for _ in range(p.d_layers - 2)]
    with torch.no_grad():
        for conv, w in zip(convs, init["d"]):
            conv.weight.copy_(torch.tensor(w).reshape(conv.weight.shape))
            conv.bias.zero_()
        for bn, g in zip(bns, init["bn"]):
            bn.weight.copy_(torch.tensor(g))
    convs = [spectral_norm(m) for m in convs]
    with torch.no_grad():
        for conv, u, v in zip(convs, init["u"], init["v"]):
            conv.weight_u.copy_(torch.tensor(u))
            conv.weight_v.copy_(torch.tensor(v))
    layers = [convs[0]]
    for conv, bn in zip(convs[1:-1], bns):
        layers += [conv, bn, nn.ReLU()]
    return nn.Sequential(*layers, convs[-1], nn.Sigmoid()).train()


def test_discriminators_match_the_official_modules_with_gradients():
    """The batched D (composite first two layers, layer-norm statistics, fused ReLU, strided patches)
    computes the official network: outputs and the gradients for the input and every parameter."""
    from realsr.degrade.kernelgan import _Discriminators

    p = KernelGANParams()
    dt = torch.float64
    init = [_init_weights(_streams(i)["init"], p) for i in (4, 9)]
    refs = []
    for w in init:
        ref = _official_discriminator(w, p, dt)
        ref(torch.zeros(1, 3, 26, 26, dtype=dt))  # the official D runs once in its constructor
        refs.append(ref)
    disc = _Discriminators(init, p, torch.device("cpu"), dt)
    x = (torch.rand(2, 3, 26, 26, dtype=dt) * 2 - 1).requires_grad_()
    for _ in range(2):  # two calls: the power iteration's vectors carry over between them
        out = disc(x)
        assert out.shape == (2, 400)
        weights = torch.rand(2, 400, dtype=dt)
        grads = torch.autograd.grad((out * weights).sum(), [x] + disc.params.leaves)
        n = p.d_layers
        for b, ref in enumerate(refs):
            ref.zero_grad()
            xb = x[b:b + 1].detach().requires_grad_()
            o = ref(xb)[0, 0].reshape(-1)
            assert torch.allclose(out[b], o, rtol=1e-10, atol=1e-12)
            (o * weights[b]).sum().backward()
            assert torch.allclose(grads[0][b], xb.grad[0], rtol=1e-8, atol=1e-12)
            convs = [m for m in ref if isinstance(m, torch.nn.Conv2d)]
            bns = [m for m in ref if isinstance(m, torch.nn.BatchNorm2d)]
            for i, conv in enumerate(convs):
                g_w = conv.weight_orig.grad.reshape(conv.weight_orig.shape[0], -1)
                assert torch.allclose(grads[1 + i][b], g_w, rtol=1e-7, atol=1e-10 * g_w.abs().max().item())
            assert torch.allclose(grads[1 + n][b], convs[0].bias.grad, rtol=1e-7, atol=1e-12)
            for i in range(1, n - 1):  # biases followed by batch norm: zero gradient up to rounding
                assert grads[1 + n + i][b].abs().max() < 1e-12 and convs[i].bias.grad.abs().max() < 1e-12
            assert torch.allclose(grads[2 * n][b, :1], convs[-1].bias.grad, rtol=1e-7, atol=1e-12)
            for i, bn in enumerate(bns):
                assert torch.allclose(grads[1 + 2 * n + i][b], bn.weight.grad, rtol=1e-7, atol=1e-12)
                assert torch.allclose(grads[1 + 3 * n - 2 + i][b], bn.bias.grad, rtol=1e-7, atol=1e-12)


def test_strided_patches_equal_unfold_with_gradient():
    from realsr.degrade.kernelgan import _Patches

    x = torch.randn(3, 3, 26, 26, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 147, 400, dtype=torch.float64)
    a = _Patches.apply(x, 7)
    b = F.unfold(x, 7)
    assert torch.equal(a, b)
    assert torch.allclose(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0], rtol=1e-12)
