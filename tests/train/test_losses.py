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
