"""Training losses and the VGG19 feature extractor: hand-computed values on tiny tensors, gradient
rules, and loading torchvision-format weights (random weights saved by the test itself)."""

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from realsr.errors import UsageError  # noqa: E402
from realsr.train.losses import (  # noqa: E402
    PerceptualLoss,
    discriminator_adv_loss,
    gan_loss,
    generator_adv_loss,
    gradient_difference_loss,
    gram_matrix,
    pixel_loss,
    tv_loss,
)
from realsr.train.vgg import LAYER_INDEX, NAMES19, VGGFeatures  # noqa: E402


def sp(z: float) -> float:
    """softplus = BCE-with-logits to target 0; BCE to target 1 is sp(-z)."""
    return math.log1p(math.exp(z))


def t(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


# ---------------------------------------------------------------------------------------------- pixel

PRED = [[[[0.0, 0.5], [1.0, 0.25]]]]
TARGET = [[[[0.5, 0.5], [0.0, 1.0]]]]  # differences -0.5, 0, 1, -0.75


def test_pixel_losses_by_hand():
    p, y = t(PRED), t(TARGET)
    assert pixel_loss(p, y, "l1").item() == pytest.approx((0.5 + 0 + 1 + 0.75) / 4)  # 0.5625
    assert pixel_loss(p, y, "l2").item() == pytest.approx((0.25 + 0 + 1 + 0.5625) / 4)  # 0.453125
    ch = sum(math.sqrt(d * d + 1e-6) for d in (-0.5, 0.0, 1.0, -0.75)) / 4
    assert pixel_loss(p, y, "charbonnier").item() == pytest.approx(ch, rel=1e-12)
    assert pixel_loss(p, p, "charbonnier", eps=0.01).item() == pytest.approx(0.01)
    assert pixel_loss(p, y).item() == pytest.approx(0.5625)  # l1 is the default
    with pytest.raises(UsageError, match="unknown pixel loss"):
        pixel_loss(p, y, "l3")


# ---------------------------------------------------------------------------------------------- TV

X = [[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]]  # 1x1x2x3


def test_tv_loss_by_hand():
    x = t(X)
    # vertical differences 2, 1, -1 (3 of them); horizontal 1, 2 | 0, 0 (4 of them)
    assert tv_loss(x, "l1").item() == pytest.approx(4 / 3 + 3 / 4)
    assert tv_loss(x, "l2").item() == pytest.approx((4 + 1 + 1) / 3 + (1 + 4 + 0 + 0) / 4)
    assert tv_loss(torch.full((2, 3, 4, 4), 0.7)).item() == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        tv_loss(torch.zeros(1, 1, 1, 5))
    with pytest.raises(UsageError):
        tv_loss(x, "l0")


def test_gradient_difference_loss_by_hand():
    sr = t(X)
    hr = t([[[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    # sr - hr = [[-1, 1, 3], [2, 2, 2]]: vertical 3, 1, -1 (sum 5); horizontal 2, 2, 0, 0 (sum 4);
    # SRResCGAN divides the sum by B*C*H*W = 6
    assert gradient_difference_loss(sr, hr).item() == pytest.approx(9 / 6)
    # the original's form |Dx - Dy| on separate gradients, written out
    dh = (sr[:, :, 1:] - sr[:, :, :-1]) - (hr[:, :, 1:] - hr[:, :, :-1])
    dw = (sr[..., 1:] - sr[..., :-1]) - (hr[..., 1:] - hr[..., :-1])
    assert gradient_difference_loss(sr, hr).item() == pytest.approx((dh.abs().sum() + dw.abs().sum()).item() / 6)
    assert gradient_difference_loss(sr, sr + 5.0).item() == 0.0  # blind to a constant offset
    with pytest.raises(ValueError, match="shapes differ"):
        gradient_difference_loss(sr, hr[..., :2])


# ---------------------------------------------------------------------------------------------- GAN

REAL, FAKE = [2.0, -1.0], [0.5, -0.5]  # mean(real) = 0.5, mean(fake) = 0


def test_gan_losses_by_hand():
    r, f = t(REAL), t(FAKE)
    G = {k: generator_adv_loss(k, f, r).item() for k in ("vanilla", "lsgan", "hinge", "ragan")}
    D = {k: discriminator_adv_loss(k, r, f).item() for k in ("vanilla", "lsgan", "hinge", "ragan")}
    assert G["vanilla"] == pytest.approx((sp(-0.5) + sp(0.5)) / 2)
    assert D["vanilla"] == pytest.approx((sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-0.5)) / 2)
    assert G["lsgan"] == pytest.approx((0.25 + 2.25) / 2)
    assert D["lsgan"] == pytest.approx((1.0 + 4.0) / 2 + (0.25 + 0.25) / 2)
    assert G["hinge"] == pytest.approx(0.0)
    assert D["hinge"] == pytest.approx((0.0 + 2.0) / 2 + (1.5 + 0.5) / 2)
    # ragan G: (BCE(real - 0, 0) + BCE(fake - 0.5, 1)) / 2
    assert G["ragan"] == pytest.approx(((sp(2.0) + sp(-1.0)) / 2 + (sp(-0.0) + sp(1.0)) / 2) / 2)
    # ragan D: (BCE(real - 0, 1) + BCE(fake - 0.5, 0)) / 2
    assert D["ragan"] == pytest.approx(((sp(-2.0) + sp(1.0)) / 2 + (sp(0.0) + sp(-1.0)) / 2) / 2)
    assert discriminator_adv_loss("ragan", r, f, detach_means=True).item() == pytest.approx(D["ragan"])
    # single terms (BasicSR GANLoss)
    assert gan_loss("vanilla", r, True).item() == pytest.approx((sp(-2.0) + sp(1.0)) / 2)
    assert gan_loss("hinge", f, False, for_discriminator=True).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        gan_loss("hinge", f, False)
    with pytest.raises(ValueError, match="real_logits"):
        generator_adv_loss("ragan", f)
    with pytest.raises(UsageError, match="unknown GAN loss"):
        generator_adv_loss("wgan", f)


def test_ragan_gradient_directions():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(4, 1, 3, 3, generator=g, requires_grad=True)
    fake = torch.randn(4, 1, 3, 3, generator=g, requires_grad=True)
    lg = generator_adv_loss("ragan", fake, real)
    lg.backward()
    assert real.grad is None  # real logits are detached in the generator step
    assert (fake.grad < 0).all()  # raising any fake logit lowers the G loss
    with torch.no_grad():
        assert generator_adv_loss("ragan", fake + 0.5, real) < lg
        assert generator_adv_loss("ragan", fake, real + 0.5) > lg  # real pulled further ahead
        ld = discriminator_adv_loss("ragan", real, fake)
        assert discriminator_adv_loss("ragan", real + 0.5, fake) < ld
        assert discriminator_adv_loss("ragan", real, fake + 0.5) > ld


def test_ragan_discriminator_detach_rules_match_basicsr():
    """detach_means=True gives BasicSR's gradient (two half-backwards); False, the mmsr one-shot one."""
    torch.manual_seed(0)
    d = torch.nn.Conv2d(3, 1, 3)
    hr, out = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6, requires_grad=True)

    def grads(fn):
        d.zero_grad()
        fn()
        return [p.grad.clone() for p in d.parameters()]

    def basicsr():  # ESRGANModel.optimize_parameters, D part
        fake_d_pred = d(out).detach()
        real_d_pred = d(hr)
        l_real = F.binary_cross_entropy_with_logits(real_d_pred - fake_d_pred.mean(), torch.ones_like(real_d_pred)) * 0.5
        l_real.backward()
        fake_d_pred = d(out.detach())
        l_fake = F.binary_cross_entropy_with_logits(fake_d_pred - real_d_pred.detach().mean(),
                                                    torch.zeros_like(fake_d_pred)) * 0.5
        l_fake.backward()
        basicsr.total = (l_real + l_fake).item()

    ref = grads(basicsr)
    ours = {}
    for detach in (True, False):
        def step():
            loss = discriminator_adv_loss("ragan", d(hr), d(out.detach()), detach_means=detach)
            loss.backward()
            ours[detach] = loss.item()
        g = grads(step)
        same = all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g, ref))
        assert same == detach
    assert ours[True] == pytest.approx(basicsr.total) and ours[False] == pytest.approx(basicsr.total)
    assert out.grad is None  # nothing flowed into the generator output


# ---------------------------------------------------------------------------------------------- VGG


def test_vgg_layer_index_mapping():
    assert LAYER_INDEX["conv5_4"] == 34 and LAYER_INDEX["relu5_4"] == 35
    assert LAYER_INDEX["relu2_2"] == 8 and LAYER_INDEX["conv3_4"] == 16
    assert LAYER_INDEX["conv1_1"] == 0 and LAYER_INDEX["pool1"] == 4 and LAYER_INDEX["pool5"] == 36
    assert LAYER_INDEX["conv2_2"] == 7 and LAYER_INDEX["conv4_1"] == 19
    assert len(NAMES19) == 37 and len(LAYER_INDEX) == 37
    m = VGGFeatures(["conv3_4"], "random")
    assert len(m.features) == 17  # built only up to the deepest requested layer
    assert isinstance(m.features[16], torch.nn.Conv2d) and isinstance(m.features[15], torch.nn.ReLU)
    assert [type(m.features[i]).__name__ for i in (4, 9)] == ["MaxPool2d", "MaxPool2d"]


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-format vgg19 state dict from a random instance, with classifier keys to ignore."""
    torch.manual_seed(0)
    src = VGGFeatures(["conv5_4"], "random")
    sd = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    assert "features.34.weight" in sd and sd["features.34.weight"].shape == (512, 512, 3, 3)
    sd["classifier.0.weight"] = torch.zeros(4, 4)
    sd["classifier.0.bias"] = torch.zeros(4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-test.pth"
    torch.save(sd, path)
    return path, src, sd


def test_vgg_loads_torchvision_state_dict(vgg_file, tmp_path):
    path, src, sd = vgg_file
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    m = VGGFeatures(["relu1_1", "conv2_2", "relu2_2", "conv5_4"], path)
    assert set(m.state_dict()) == {k for k in sd if k.startswith("features.")}  # torchvision's keys
    out = m(x)
    assert list(out) == ["relu1_1", "conv2_2", "relu2_2", "conv5_4"]
    assert out["conv5_4"].shape == (2, 512, 2, 2)
    assert torch.equal(out["conv5_4"], src(x)["conv5_4"])
    # an independent functional reference for the shallow layers
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def conv(z, i):
        return F.conv2d(z, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)

    r11 = F.relu(conv((x - mean) / std, 0))
    c22 = conv(F.relu(conv(F.max_pool2d(F.relu(conv(r11, 2)), 2), 5)), 7)
    assert torch.allclose(out["relu1_1"], r11, atol=1e-5)
    assert torch.allclose(out["conv2_2"], c22, atol=1e-4)
    assert (out["conv2_2"] < 0).any()  # pre-activation: the in-place-ReLU trap is avoided
    assert torch.equal(out["relu2_2"], F.relu(out["conv2_2"]))
    # the same weights from a .safetensors file, and a shallow extractor from the full file
    from realsr.train.weights import write_safetensors
    st = tmp_path / "vgg19.safetensors"
    write_safetensors(st, {k: v for k, v in sd.items() if k.startswith("features.")}, {})
    assert torch.equal(VGGFeatures(["conv5_4"], st)(x)["conv5_4"], out["conv5_4"])
    assert torch.equal(VGGFeatures(["relu1_1"], path)(x)["relu1_1"], out["relu1_1"])
    # range_norm maps [-1, 1] to [0, 1] first
    mr = VGGFeatures(["relu1_1"], path, range_norm=True)
    assert torch.allclose(mr(2 * x - 1)["relu1_1"], out["relu1_1"], atol=1e-6)


def test_vgg_bad_weights(vgg_file, tmp_path):
    path, _, sd = vgg_file
    missing = tmp_path / "nope.pth"
    with pytest.raises(UsageError, match="not found") as e:
        VGGFeatures(["conv5_4"], missing)
    assert str(missing) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="not found"):
        VGGFeatures(["conv5_4"], tmp_path / "nope.safetensors")
    with pytest.raises(UsageError, match="weights are required"):
        VGGFeatures(["conv5_4"], None)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(UsageError, match="not torchvision VGG19") as e:
        VGGFeatures(["conv1_1"], wrong)
    assert str(wrong) in str(e.value) and "\n" not in str(e.value)
    shallow = tmp_path / "shallow.pth"  # only block 1: fine for relu1_2, not for conv2_1
    torch.save({k: v for k, v in sd.items() if k.split(".")[1] in {"0", "2"}}, shallow)
    VGGFeatures(["relu1_2"], shallow)
    with pytest.raises(UsageError, match="not torchvision VGG19"):
        VGGFeatures(["conv2_1"], shallow)
    with pytest.raises(UsageError, match="unknown VGG19 layer"):
        VGGFeatures(["conv6_1"], "random")


def test_vgg_frozen_gradients_reach_input(vgg_file):
    path, _, _ = vgg_file
    m = VGGFeatures(["conv2_2"], path)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    torch.nn.Sequential(m).train()
    assert not m.training  # a parent's train() leaves the frozen extractor in eval mode
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    m(x)["conv2_2"].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.parameters())


# ---------------------------------------------------------------------------------------------- perceptual


def test_perceptual_loss(vgg_file):
    path, _, _ = vgg_file
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 32, 32, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    lw = {"relu1_2": 0.5, "conv2_2": 2.0}
    loss = PerceptualLoss(lw, path)
    assert loss(x, x).item() == 0.0
    v = loss(x, y)
    assert v.item() > 0
    f = VGGFeatures(list(lw), path)
    fx, fy = f(x), f(y)
    manual = 0.5 * F.l1_loss(fx["relu1_2"], fy["relu1_2"]) + 2.0 * F.l1_loss(fx["conv2_2"], fy["conv2_2"])
    assert torch.allclose(v, manual, rtol=1e-6)
    l2 = PerceptualLoss(lw, path, criterion="l2")(x, y)
    manual2 = 0.5 * F.mse_loss(fx["relu1_2"], fy["relu1_2"]) + 2.0 * F.mse_loss(fx["conv2_2"], fy["conv2_2"])
    assert torch.allclose(l2, manual2, rtol=1e-6)
    fro = PerceptualLoss({"conv2_2": 1.0}, path, criterion="fro")(x, y)
    assert torch.allclose(fro, (fx["conv2_2"] - fy["conv2_2"]).pow(2).sum().sqrt(), rtol=1e-5)
    # style (Gram) term, BasicSR normalisation F F^T / (C H W)
    a = torch.arange(8.0).view(1, 2, 2, 2)
    assert torch.allclose(gram_matrix(a), t([[[0 + 1 + 4 + 9, 0 + 5 + 12 + 21], [0 + 5 + 12 + 21, 16 + 25 + 36 + 49]]],
                                            dtype=torch.float32) / 8)
    ps = PerceptualLoss({"conv2_2": 1.0}, path, perceptual_weight=0.0, style_weight=3.0)
    terms = ps.terms(x, y)
    assert list(terms) == ["style"]
    assert torch.allclose(terms["style"], 3.0 * F.l1_loss(gram_matrix(fx["conv2_2"]), gram_matrix(fy["conv2_2"])),
                          rtol=1e-6)
    with pytest.raises(UsageError, match="perceptual criterion"):
        PerceptualLoss(lw, path, criterion="cos")
    with pytest.raises(UsageError, match="weights are required"):
        PerceptualLoss(lw, None)


def test_perceptual_gradients(vgg_file):
    path, _, _ = vgg_file
    loss = PerceptualLoss({"conv2_2": 1.0}, path)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None  # the target is detached
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


def test_high_pass_is_srrescgan_filter_high():
    from realsr.train.losses import high_pass

    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 81.0  # an impulse: the 9x9 box mean is 1 over the whole window at the centre
    y = high_pass(x)
    assert y[0, 0, 4, 4].item() == pytest.approx(0.5 + 0.5 * (81 - 1))
    assert y[0, 0, 0, 0].item() == pytest.approx(0.5 + 0.5 * (0 - 1))  # corner: zero padding counted
    assert torch.allclose(high_pass(torch.full((1, 3, 12, 12), 7.0))[..., 4:8, 4:8], torch.full((1, 3, 4, 4), 0.5))


# ------------------------------------------------------------------------------------ SSIM, MS-SSIM
# The SRResCycGAN AIM 2020 variant's terms: 1 - SSIM and 1 - MS-SSIM (Wang et al. 2004 / 2003).


def _ref_ssim_cs(a, b, window: int, data_range: float = 1.0):
    """Independent NumPy/OpenCV SSIM and CS means of one 2-D channel (float64), valid filtering."""
    import cv2
    import numpy as np

    g = cv2.getGaussianKernel(window, 1.5)
    w = g @ g.T
    r = window // 2

    def f(x):
        y = cv2.filter2D(x, -1, w, borderType=cv2.BORDER_REFLECT)
        return y[r:y.shape[0] - r, r:y.shape[1] - r]

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    m1, m2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - m1 ** 2, f(b * b) - m2 ** 2, f(a * b) - m1 * m2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return float(np.mean((2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1) * cs)), float(np.mean(cs))


def _ref_ms_ssim(a, b, weights, window: int = 11):
    """Independent MS-SSIM of (H, W, C) float64 arrays: per channel, 2x2 means with the last
    row / column repeated for odd sides, the window cut to the largest odd side that fits."""
    import numpy as np

    out = []
    for ch in range(a.shape[2]):
        x, y, val = a[..., ch], b[..., ch], 1.0
        for j, wj in enumerate(weights):
            if j:
                x, y = (np.pad(z, ((0, z.shape[0] % 2), (0, z.shape[1] % 2)), mode="edge") for z in (x, y))
                x, y = (z.reshape(z.shape[0] // 2, 2, z.shape[1] // 2, 2).mean(axis=(1, 3)) for z in (x, y))
            s = min(x.shape)
            win = window if s >= window else (s if s % 2 else s - 1)
            full, cs = _ref_ssim_cs(x, y, win)
            val *= max(full if j == len(weights) - 1 else cs, 0.0) ** wj
        out.append(val)
    return float(np.mean(out))


def _pair(h: int, w: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.random((h, w, 3))
    a = (a + np.roll(a, 1, 0) + np.roll(a, 1, 1)) / 3  # some spatial correlation
    b = np.clip(a + 0.08 * rng.standard_normal(a.shape), 0, 1)
    ta, tb = (torch.from_numpy(z).permute(2, 0, 1)[None].clone() for z in (a, b))
    return a, b, ta, tb


def test_ssim_loss_is_one_minus_the_benchmark_ssim():
    """On 8-bit levels (the benchmark SSIM quantises first) and RGB, 1 - ssim_loss equals
    realsr.train.metrics.ssim (OpenCV filtering, C on the 0-255 scale) to float64 precision, on
    either value scale."""
    import numpy as np

    from realsr.train.losses import ssim_index, ssim_loss
    from realsr.train.metrics import ssim as bench_ssim

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (24, 19, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    ta, tb = (torch.from_numpy(z).permute(2, 0, 1)[None].double() / 255 for z in (a, b))
    ref = bench_ssim(a, b, y_channel=False)
    assert 0.5 < ref < 0.999
    assert ssim_loss(ta, tb).item() == pytest.approx(1 - ref, abs=1e-12)
    assert ssim_loss(ta * 255, tb * 255, data_range=255).item() == pytest.approx(1 - ref, abs=1e-12)
    # per image, and the batch mean
    batch = ssim_index(torch.cat([ta, ta]), torch.cat([tb, ta]))
    assert batch.tolist() == pytest.approx([ref, 1.0], abs=1e-12)
    assert ssim_loss(torch.cat([ta, ta]), torch.cat([tb, ta])).item() == pytest.approx((1 - ref) / 2, abs=1e-12)


def test_ssim_by_hand_on_tiny_tensors():
    """A 1-px window has no variance: CS = C2 / C2 = 1 and SSIM is the mean luminance term
    (2 x y + C1) / (x^2 + y^2 + C1); a constant pair gives that value with any window."""
    from realsr.train.losses import ssim_loss

    c1 = 0.01 ** 2
    x = t([[[[0.5, 0.5], [0.5, 0.5]]]])
    y = t([[[[0.25, 0.5], [0.5, 0.0]]]])
    lum = [(2 * 0.5 * v + c1) / (0.25 + v * v + c1) for v in (0.25, 0.5, 0.5, 0.0)]
    assert ssim_loss(x, y, window=1).item() == pytest.approx(1 - sum(lum) / 4, rel=1e-12)
    const_a, const_b = torch.full((1, 2, 5, 5), 0.8, dtype=torch.float64), torch.full((1, 2, 5, 5), 0.2, dtype=torch.float64)
    want = 1 - (2 * 0.8 * 0.2 + c1) / (0.64 + 0.04 + c1)
    assert ssim_loss(const_a, const_b, window=3).item() == pytest.approx(want, rel=1e-12)
    assert ssim_loss(const_a, const_b, window=5).item() == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_loss(const_a, const_b)
    with pytest.raises(ValueError, match="odd and positive"):
        ssim_loss(const_a, const_b, window=4)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_loss(const_a, const_b[..., :4])


def test_ssim_and_ms_ssim_are_zero_for_identical_inputs_and_carry_gradients():
    from realsr.train.losses import ms_ssim_loss, ssim_loss

    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(4))
    assert ssim_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert ms_ssim_loss(x, x.clone(), small="shrink_window").item() == pytest.approx(0.0, abs=1e-6)
    assert ms_ssim_loss(x * 255, x * 255, data_range=255, weights=(0.5, 0.5)).item() == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(5)
    target = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)  # related to x, as HR is to SR
    for loss in (lambda a: ssim_loss(a, target), lambda a: ms_ssim_loss(a, target, small="shrink_window")):
        p = x.clone().requires_grad_(True)
        first = loss(p)
        first.backward()
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
        with torch.no_grad():  # a few descent steps make the images more similar
            for _ in range(5):
                p.grad = None
                with torch.enable_grad():
                    loss(p).backward()
                p -= 20.0 * p.grad
        assert loss(p).item() < first.item()
    # anti-correlated structure: CS < 0 is set to 0 (no NaN from a fractional power; no gradient either)
    a = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    v = ms_ssim_loss(a, 1 - a.detach(), weights=(0.5, 0.5))
    v.backward()
    assert v.item() == pytest.approx(1.0) and torch.isfinite(a.grad).all()


def test_ms_ssim_against_an_independent_computation():
    """The standard 5 scales (Wang et al. 2003 weights, 11-px window, sigma 1.5) on odd-sized images
    (the 2x2 mean repeats the last row / column), and a single scale is plain SSIM."""
    from realsr.train.losses import MS_SSIM_WEIGHTS, ms_ssim_loss, ssim_loss

    assert MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    a, b, ta, tb = _pair(163, 170)
    ref = _ref_ms_ssim(a, b, MS_SSIM_WEIGHTS)
    assert 0.3 < ref < 0.999
    assert ms_ssim_loss(ta, tb).item() == pytest.approx(1 - ref, abs=1e-10)
    assert ms_ssim_loss(ta * 255, tb * 255, data_range=255).item() == pytest.approx(1 - ref, abs=1e-10)
    assert ms_ssim_loss(ta, tb, weights=(1.0,)).item() == pytest.approx(ssim_loss(ta, tb).item(), abs=1e-12)
    assert ms_ssim_loss(ta, tb, weights=(0.2, 0.8)).item() == pytest.approx(1 - _ref_ms_ssim(a, b, (0.2, 0.8)), abs=1e-10)


def test_ms_ssim_by_hand_with_a_one_pixel_window():
    """Window 1: CS = 1 at the fine scale, so MS-SSIM = (luminance term of the 2x2 means) ^ w_2."""
    from realsr.train.losses import ms_ssim_loss

    c1 = 0.01 ** 2
    x = t([[[[0.5, 0.5], [0.5, 0.5]]]])
    y = t([[[[0.0, 0.5], [0.5, 0.0]]]])  # 2x2 mean 0.25
    want = ((2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)) ** 0.7
    assert ms_ssim_loss(x, y, window=1, weights=(0.3, 0.7)).item() == pytest.approx(1 - want, rel=1e-12)


def test_ms_ssim_small_images_error_or_shrink_the_window():
    """5 scales of an 11-px window need 161 px (161 -> 81 -> 41 -> 21 -> 11); smaller images are
    refused unless small='shrink_window', which uses a 7-px window at the 8-px 5th scale of a 128-px
    patch (checked against the independent computation)."""
    from realsr.train.losses import ms_ssim_loss, ms_ssim_sides

    assert ms_ssim_sides(161, 5) == [161, 81, 41, 21, 11] and ms_ssim_sides(128, 5)[-1] == 8
    a, b, ta, tb = _pair(128, 128, seed=2)
    with pytest.raises(ValueError, match="at least 161x161 pixels, got 128x128"):
        ms_ssim_loss(ta, tb)
    v = ms_ssim_loss(ta, tb, small="shrink_window").item()
    assert v == pytest.approx(1 - _ref_ms_ssim(a, b, (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)), abs=1e-10)
    _, _, sa, sb = _pair(161, 161, seed=3)
    assert ms_ssim_loss(sa, sb).item() == pytest.approx(ms_ssim_loss(sa, sb, small="shrink_window").item(), abs=1e-15)
    with pytest.raises(UsageError, match="small-image rule"):
        ms_ssim_loss(ta, tb, small="pad")
    with pytest.raises(ValueError, match="at least one scale weight"):
        ms_ssim_loss(ta, tb, weights=())


def test_ssim_losses_ignore_autocast_and_promote_16_bit_inputs():
    """The local variances E[x^2] - mu^2 cancel in bfloat16: the losses run in float32 regardless."""
    from realsr.train.losses import ms_ssim_loss, ssim_loss

    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 3, 48, 48, generator=g)
    want_s, want_m = ssim_loss(x, y), ms_ssim_loss(x, y, weights=(0.5, 0.5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_s, got_m = ssim_loss(x, y), ms_ssim_loss(x, y, weights=(0.5, 0.5))
    assert got_s.dtype == torch.float32 and got_s.item() == pytest.approx(want_s.item(), rel=1e-6)
    assert got_m.item() == pytest.approx(want_m.item(), rel=1e-6)
    xb, yb = x.bfloat16(), y.bfloat16()
    assert ssim_loss(xb, yb).item() == pytest.approx(ssim_loss(xb.float(), yb.float()).item(), rel=1e-6)
