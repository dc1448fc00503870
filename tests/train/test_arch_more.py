"""EDSR, RCAN (official-name key maps, parameter counts, shapes) and the GAN discriminators.

Parameter-count sources: EDSR-baseline / EDSR and RCAN counted from the official layer lists
(sanghyun-son/EDSR-PyTorch ``model/edsr.py``, ``model/rcan.py``; the official 15,592,379 of RCAN x4
includes the 24 MeanShift values this module leaves out); vgg128 = BasicSR ``VGGStyleDiscriminator``
(bias-free convs before BN; the ESRGAN-era ``Discriminator_VGG_128`` with conv biases has 14,502,281);
patchgan = CycleGAN ``NLayerDiscriminator`` (its log prints 2.765 M); unet = Real-ESRGAN
``UNetDiscriminatorSN``.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from realsr.errors import UsageError  # noqa: E402
from realsr.train import models  # noqa: E402
from realsr.train.model_files import load_model, recognise  # noqa: E402
from realsr.train.models.discriminators import build_discriminator, discriminator_names  # noqa: E402
from realsr.train.models.edsr import DIV2K_MEAN  # noqa: E402

SMALL_EDSR = {"num_feat": 16, "num_block": 2}
SMALL_RCAN = {"num_feat": 16, "num_group": 2, "num_block": 2, "reduction": 4}


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _meta_build(name: str, **args):
    with torch.device("meta"):  # shapes only: no memory, no init time
        return models.build(name, **args)


# ---------------------------------------------------------------- official names (inverse maps)

def _mean_shifts() -> dict:
    eye = torch.eye(3).view(3, 3, 1, 1)
    mean = 255 * torch.tensor(DIV2K_MEAN)
    return {"sub_mean.weight": eye, "sub_mean.bias": -mean, "add_mean.weight": eye.clone(), "add_mean.bias": mean}


def _official_edsr(state: dict, num_block: int) -> dict:
    """BasicSR EDSR names -> EDSR-PyTorch names, plus the frozen MeanShift convs."""
    def old(k: str) -> str:
        k = re.sub(r"^body\.(\d+)\.conv([12])\.", lambda m: f"body.{m[1]}.body.{2 * int(m[2]) - 2}.", k)
        k = k.replace("conv_first.", "head.0.").replace("conv_after_body.", f"body.{num_block}.")
        return k.replace("upsample.", "tail.0.").replace("conv_last.", "tail.1.")
    return {**{old(k): v for k, v in state.items()}, **_mean_shifts()}


def _official_rcan(state: dict, num_group: int, num_block: int) -> dict:
    """BasicSR RCAN names -> official RCAN names, plus the frozen MeanShift convs."""
    def old(k: str) -> str:
        k = re.sub(r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.", r"body.\1.body.\2.body.", k)
        k = k.replace(".attention.1.", ".conv_du.0.").replace(".attention.3.", ".conv_du.2.")
        k = re.sub(r"^body\.(\d+)\.conv\.", rf"body.\1.body.{num_block}.", k)
        k = k.replace("conv_first.", "head.0.").replace("conv_after_body.", f"body.{num_group}.")
        return k.replace("upsample.", "tail.0.").replace("conv_last.", "tail.1.")
    return {**{old(k): v for k, v in state.items()}, **_mean_shifts()}


# ---------------------------------------------------------------- official forward passes (for parity)

def _conv(st: dict, name: str, x):
    w = st[f"{name}.weight"]
    return F.conv2d(x, w, st[f"{name}.bias"], padding=w.shape[-1] // 2)


def _official_tail(st: dict, feat, scale: int):
    i = 0
    while f"tail.0.{i}.weight" in st:
        feat = F.pixel_shuffle(_conv(st, f"tail.0.{i}", feat), 3 if scale == 3 else 2)
        i += 2
    return _conv(st, "add_mean", _conv(st, "tail.1", feat)) / 255


def _official_edsr_forward(st: dict, x, num_block: int, scale: int, res_scale: float = 1.0):
    """EDSR-PyTorch's forward at rgb_range 255, written from its layer list."""
    h = _conv(st, "head.0", _conv(st, "sub_mean", 255 * x))
    r = h
    for n in range(num_block):
        r = r + res_scale * _conv(st, f"body.{n}.body.2", F.relu(_conv(st, f"body.{n}.body.0", r)))
    return _official_tail(st, _conv(st, f"body.{num_block}", r) + h, scale)


def _official_rcan_forward(st: dict, x, num_group: int, num_block: int, scale: int):
    """Official RCAN forward at rgb_range 255 (res_scale unused, as there)."""
    h = _conv(st, "head.0", _conv(st, "sub_mean", 255 * x))
    r = h
    for g in range(num_group):
        g_in = r
        for b in range(num_block):
            p = f"body.{g}.body.{b}.body"
            t = _conv(st, f"{p}.2", F.relu(_conv(st, f"{p}.0", r)))
            pooled = t.mean((2, 3), keepdim=True)
            r = r + t * torch.sigmoid(_conv(st, f"{p}.3.conv_du.2", F.relu(_conv(st, f"{p}.3.conv_du.0", pooled))))
        r = _conv(st, f"body.{g}.body.{num_block}", r) + g_in
    return _official_tail(st, _conv(st, f"body.{num_group}", r) + h, scale)


def _x(size=(7, 9), batch=1):
    return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(3))


# ---------------------------------------------------------------- SR networks

def test_registered_and_bad_arguments():
    assert {"edsr", "rcan", "rrdbnet"} <= set(models.names())
    with pytest.raises(UsageError, match="scales"):
        models.build("edsr", scale=8)
    with pytest.raises(UsageError, match="reduction"):
        models.build("rcan", num_feat=8, reduction=16)
    assert models.build("edsr", **SMALL_EDSR).arch_args == {"scale": 4, "num_feat": 16, "num_block": 2, "res_scale": 1.0}


def test_parameter_counts():
    # EDSR-baseline (nf 64, 16 blocks); official state dicts hold 24 more (sub_mean/add_mean)
    assert [n_params(_meta_build("edsr", scale=s)) for s in (2, 3, 4)] == [1_369_859, 1_554_499, 1_517_571]
    large = _meta_build("edsr", num_feat=256, num_block=32, res_scale=0.1)
    assert n_params(large) == 43_089_923  # the paper's EDSR x4
    assert models.edsr.EDSR.args_from_state(large.state_dict()) == \
        {"num_block": 32, "num_feat": 256, "scale": 4, "res_scale": 0.1}
    rcan = _meta_build("rcan")
    assert n_params(rcan) == 15_592_355 == 15_592_379 - 2 * 12  # official count minus the MeanShifts
    assert models.rcan.RCAN.args_from_state(rcan.state_dict()) == \
        {"num_group": 10, "num_block": 20, "num_feat": 64, "reduction": 16, "scale": 4}
    assert "mean" not in rcan.state_dict()  # non-persistent: BasicSR / official files fit exactly


@pytest.mark.parametrize("name,scale", [("edsr", 2), ("edsr", 3), ("edsr", 4),
                                        ("rcan", 2), ("rcan", 3), ("rcan", 4), ("rcan", 8)])
def test_output_shapes(name, scale):
    m = models.build(name, scale=scale, **(SMALL_EDSR if name == "edsr" else SMALL_RCAN)).eval()
    x = _x(batch=2)
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale)
    assert models.arch_class(name).args_from_state(m.state_dict())["scale"] == scale


def test_mean_shift_frame_follows_the_module_dtype():
    m = models.build("edsr", **SMALL_EDSR).double().eval()
    with torch.no_grad():
        assert m(_x().double()).dtype == torch.float64


@pytest.mark.parametrize("scale", [3, 4])
def test_official_edsr_names_load_and_match_the_official_forward(tmp_path, scale):
    m = models.build("edsr", scale=scale, res_scale=1.0, **SMALL_EDSR).eval()
    official = _official_edsr(m.state_dict(), 2)
    assert {"head.0.weight", "body.0.body.2.bias", "body.2.weight", "tail.0.0.weight", "tail.1.bias",
            "sub_mean.bias"} <= official.keys()
    assert models.edsr.EDSR.map_state(official).keys() == m.state_dict().keys()
    x = _x()
    with torch.no_grad():
        y = m(x)
        assert torch.allclose(y, _official_edsr_forward(official, x, 2, scale), atol=1e-5)
    p = tmp_path / f"edsr_baseline_x{scale}.pt"
    torch.save(official, p)
    back = load_model(p)  # recognised from names and shapes
    assert back.arch == "edsr" and back.arch_args == m.arch_args
    with torch.no_grad():
        assert torch.equal(back(x), y)
    with pytest.raises(UsageError, match=f"x{scale} 'edsr' model, but x2"):
        load_model(p, scale=2)


@pytest.mark.parametrize("scale", [2, 8])
def test_official_rcan_names_load_and_match_the_official_forward(tmp_path, scale):
    m = models.build("rcan", scale=scale, **SMALL_RCAN).eval()
    official = _official_rcan(m.state_dict(), 2, 2)
    assert {"body.1.body.1.body.3.conv_du.2.weight", "body.1.body.2.weight", "body.2.bias",
            "tail.0.0.weight"} <= official.keys()
    assert models.rcan.RCAN.map_state(official).keys() == m.state_dict().keys()
    x = _x()
    with torch.no_grad():
        y = m(x)
        assert torch.allclose(y, _official_rcan_forward(official, x, 2, 2, scale), atol=1e-5)
    p = tmp_path / f"RCAN_BIX{scale}.pt"
    torch.save(official, p)
    back = load_model(p, arch="rcan")
    assert back.arch_args == m.arch_args
    with torch.no_grad():
        assert torch.equal(back(x), y)
    assert load_model(p).arch == "rcan"


def test_recognise_tells_the_architectures_apart():
    nets = {"edsr": models.build("edsr", scale=3, **SMALL_EDSR),
            "rcan": models.build("rcan", **SMALL_RCAN),
            "rrdbnet": models.build("rrdbnet", nb=1, nf=16, gc=8)}
    for name, m in nets.items():
        found = recognise(m.state_dict())
        assert found is not None and found[0] == name, (name, found)
        assert models.build(name, **found[1]).arch_args == m.arch_args
    assert recognise(_official_edsr(nets["edsr"].state_dict(), 2))[0] == "edsr"


# ---------------------------------------------------------------- discriminators

def test_discriminator_registry_and_errors():
    assert discriminator_names() == ["ddnsr_patchgan", "ddnsr_vgg", "patchgan", "unet", "vgg128"]
    with pytest.raises(UsageError, match="unknown discriminator 'vgg'.*patchgan, unet, vgg128"):
        build_discriminator("vgg")
    with pytest.raises(UsageError, match="bad arguments"):
        build_discriminator("patchgan", nlayers=3)
    with pytest.raises(UsageError, match="input_size must be 128 or 256"):
        build_discriminator("vgg128", input_size=192)
    with pytest.raises(UsageError, match="norm must be"):
        build_discriminator("patchgan", norm="group")
    assert build_discriminator("patchgan", norm="instance").arch_args == \
        {"input_nc": 3, "ndf": 64, "n_layers": 3, "norm": "instance"}


@pytest.mark.parametrize("name,args,count", [("vgg128", {}, 14_499_401), ("vgg128", {"input_size": 256}, 21_055_049),
                                             ("patchgan", {}, 2_765_633), ("patchgan", {"norm": "instance"}, 2_764_737),
                                             ("patchgan", {"norm": "none"}, 2_763_841), ("unet", {}, 4_376_897)])
def test_discriminator_parameter_counts(name, args, count):
    assert n_params(build_discriminator(name, **args)) == count


def test_discriminator_parameter_names_follow_the_published_code():
    assert {"conv0_0.bias", "bn0_1.running_mean", "conv4_1.weight", "linear1.weight", "linear2.bias"} <= \
        build_discriminator("vgg128").state_dict().keys()
    assert "conv0_1.bias" not in build_discriminator("vgg128").state_dict()
    assert "conv5_1.weight" in build_discriminator("vgg128", input_size=256).state_dict()
    patch = build_discriminator("patchgan").state_dict()
    assert {"model.0.bias", "model.2.weight", "model.3.running_var", "model.9.weight", "model.11.bias"} <= patch.keys()
    assert "model.2.bias" not in patch
    unet = build_discriminator("unet").state_dict()
    assert {"conv0.bias", "conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= unet.keys()


def test_discriminator_outputs_and_input_checks():
    vgg = build_discriminator("vgg128", num_feat=8).eval()
    patch = build_discriminator("patchgan", ndf=8).eval()
    unet = build_discriminator("unet", num_feat=8).eval()
    with torch.no_grad():
        assert vgg(torch.rand(2, 3, 128, 128)).shape == (2, 1)
        assert build_discriminator("vgg128", num_feat=8, input_size=256).eval()(torch.rand(1, 3, 256, 256)).shape == (1, 1)
        assert patch(torch.rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)
        assert unet(torch.rand(2, 3, 32, 48)).shape == (2, 1, 32, 48)
        x = torch.rand(1, 3, 32, 32) * 3 - 1  # other ranges are not clamped
        assert not torch.equal(unet(x), unet(x.clamp(0, 1)))
    with pytest.raises(ValueError, match=r"takes 128x128 inputs .*got 96x128"):
        vgg(torch.rand(1, 3, 96, 128))
    with pytest.raises(ValueError, match="divisible by 8"):
        unet(torch.rand(1, 3, 30, 32))


def test_unet_discriminator_trains_through_spectral_norm():
    d = build_discriminator("unet", num_feat=8).train()
    d(torch.rand(2, 3, 16, 16)).mean().backward()
    assert d.conv1.weight_orig.grad is not None and d.conv1.weight_orig.grad.abs().sum() > 0
