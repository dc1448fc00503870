"""GAN discriminators (not :class:`SRNet` s): ``build_discriminator(name, **args)``,
``discriminator_names()``. Each takes an RGB batch ``(B, 3, H, W)``, nominally in [0, 1] (other
ranges pass through unclamped), and returns raw logits (no sigmoid). Parameter names follow the
published code so its checkpoints load with ``load_state_dict``.

- ``vgg128``: ESRGAN's ``Discriminator_VGG_128`` = BasicSR's ``VGGStyleDiscriminator``, one logit
  per image ``(B, 1)``; the input must be ``input_size`` square (128, or 256 with two more convs).
  14,499,401 parameters (num_feat 64, 128 input; 21,055,049 at 256), counted from BasicSR's
  ``VGGStyleDiscriminator`` (the bias-free convs before each BN). The often quoted 14,502,281 is
  the ESRGAN-era BasicSR ``Discriminator_VGG_128`` (``features.N`` / ``classifier.N`` names),
  whose ``conv_block`` convs all carry a bias (+2,880); those checkpoints do not fit this layout.
- ``patchgan``: pix2pix/CycleGAN's ``NLayerDiscriminator`` (``model.N`` names), a 1-channel logit
  map; 70x70 receptive field with n_layers 3. 2,765,633 parameters with BatchNorm (CycleGAN
  prints 2.765 M), 2,764,737 with instance norm (affine-free, so the convs get biases, as in
  CycleGAN) and 2,763,841 with none (CycleGAN then leaves the inner convs without bias too).
- ``ddnsr_vgg``: DDNSR's ``discriminator_vggstyle(num_feat, stages)`` (Keras), one logit per
  image; ``(128, 3)`` on 32x32 LR patches is its D_down, ``(64, 5)`` on 128x128 HR its Track-1 D_up.
- ``ddnsr_patchgan``: DDNSR's Track-2 D_up (Keras ``discriminator_patchgan``), a logit map at 1/8;
  the stride-1 4x4 convolutions pad like TF ``'same'`` (top/left 1, bottom/right 2).
- ``unet``: Real-ESRGAN's ``UNetDiscriminatorSN`` (spectral norm as ``weight_orig`` /
  ``weight_u`` / ``weight_v``), a per-pixel logit map ``(B, 1, H, W)``; H and W must be multiples
  of 8. 4,376,897 parameters (num_feat 64; counted from Real-ESRGAN's layer list).
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from realsr.errors import UsageError

_REGISTRY: dict[str, type[Discriminator]] = {}


class Discriminator(nn.Module):
    """Base: registry ``name`` and the ``arch_args`` it was built with."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.arch_args: dict[str, Any] = {}


def _register(cls: type[Discriminator]) -> type[Discriminator]:
    _REGISTRY[cls.name] = cls
    return cls


def discriminator_names() -> list[str]:
    """Registered discriminator names, sorted."""
    return sorted(_REGISTRY)


def build_discriminator(name: str, **args: Any) -> Discriminator:
    """A fresh discriminator ``name`` built with ``args`` (defaults fill the rest, kept in
    ``arch_args``); :class:`UsageError` for an unknown name or bad arguments."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown discriminator {name!r} (known: {', '.join(discriminator_names())})") from None
    try:
        bound = inspect.signature(cls.__init__).bind(None, **args)
    except TypeError as e:
        raise UsageError(f"bad arguments for discriminator {name!r}: {e}") from None
    bound.apply_defaults()
    full = {k: v for k, v in bound.arguments.items() if k != "self"}
    try:
        model = cls(**full)
    except (ValueError, TypeError) as e:
        raise UsageError(f"bad arguments for discriminator {name!r}: {e}") from None
    model.arch_args = json.loads(json.dumps(full))
    return model


@_register
class VGGStyleDiscriminator(Discriminator):
    """ESRGAN/BasicSR VGG-style D: (conv3x3 [+BN], conv4x4 s2 + BN) x 5 stages (nf, 2nf, 4nf, 8nf,
    8nf; the first 3x3 conv has a bias and no BN), LeakyReLU 0.2, linear 8nf*4*4 -> 100, LReLU,
    linear 100 -> 1. ``input_size`` 256 adds a sixth stage (conv5_0/conv5_1)."""

    name = "vgg128"

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128):
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f"input_size must be 128 or 256, not {input_size}")
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        widths += [num_feat * 8] if input_size == 256 else []
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        for i in range(1, len(widths)):
            setattr(self, f"conv{i}_0", nn.Conv2d(widths[i - 1], widths[i], 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(widths[i]))
            setattr(self, f"conv{i}_1", nn.Conv2d(widths[i], widths[i], 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(widths[i]))
        self.stages = len(widths)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, s, s)`` with s = ``input_size`` -> logits ``(B, 1)``; ValueError for other sizes."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"the vgg128 discriminator takes {self.input_size}x{self.input_size} inputs "
                             f"(input_size={self.input_size}), got {x.shape[-2]}x{x.shape[-1]}")
        feat = F.leaky_relu(self.conv0_0(x), 0.2)
        feat = F.leaky_relu(self.bn0_1(self.conv0_1(feat)), 0.2)
        for i in range(1, self.stages):
            feat = F.leaky_relu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)), 0.2)
            feat = F.leaky_relu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)), 0.2)
        return self.linear2(F.leaky_relu(self.linear1(feat.flatten(1)), 0.2))


@_register
class NLayerDiscriminator(Discriminator):
    """PatchGAN: conv4x4 s2 (bias) + LReLU, then ``n_layers - 1`` x (conv4x4 s2, norm, LReLU) and
    one conv4x4 s1, norm, LReLU (widths ndf * min(2^n, 8)), then conv4x4 s1 -> 1; padding 1.
    ``norm``: ``batch`` (affine, running stats), ``instance`` (no affine, no running stats) or
    ``none`` (identity); as in CycleGAN the inner convs have a bias only with instance norm."""

    name = "patchgan"

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', not {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, not {n_layers}")

        def norm_layer(c: int) -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm2d(c)
            return nn.InstanceNorm2d(c) if norm == "instance" else nn.Identity()

        bias = norm == "instance"
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=bias),
                    norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> logit map ``(B, 1, H', W')`` (30x30 for 256 input at n_layers 3)."""
        return self.model(x)


@_register
class UNetDiscriminatorSN(Discriminator):
    """Real-ESRGAN's U-Net D: conv3x3 (no SN), three SN conv4x4 s2 downs (nf -> 2nf -> 4nf -> 8nf),
    three (bilinear x2, SN conv3x3) ups with skip additions, two SN conv3x3, conv3x3 -> 1. LReLU 0.2
    after every conv but the last; the SN convs have no bias."""

    name = "unet"

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        sn = nn.utils.spectral_norm
        nf = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        self.conv1 = sn(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = sn(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)``, H and W multiples of 8 -> per-pixel logits ``(B, 1, H, W)``."""
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"the unet discriminator needs H and W divisible by 8, got {x.shape[-2]}x{x.shape[-1]}")

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        x4 = x4 + x2 if self.skip_connection else x4
        x5 = act(self.conv5(up(x4)))
        x5 = x5 + x1 if self.skip_connection else x5
        x6 = act(self.conv6(up(x5)))
        x6 = x6 + x0 if self.skip_connection else x6
        return self.conv9(act(self.conv8(act(self.conv7(x6)))))


BN_MODES = ("inference", "batch")


class _KerasBN(nn.BatchNorm2d):
    """Keras ``BatchNormalization()`` (epsilon 1e-3, moving-average momentum 0.99).

    ``mode="inference"`` reproduces what DDNSR's official training actually computes: its custom
    step calls the Keras models without ``training=True``, so BN runs in inference mode on the
    initial moving statistics (mean 0, variance 1), never updated: a per-channel affine
    ``gamma * x / sqrt(1 + 1e-3) + beta`` with trainable gamma and beta [INFERENCE from the Keras
    calling convention; METHODS.md does not list it]. ``mode="batch"`` normalises with the batch
    statistics (what the layer list suggests). With real and fake passed as separate batches, batch
    statistics hide a batch-wide noise level from the discriminator."""

    def __init__(self, c: int, mode: str = "inference"):
        super().__init__(c, eps=1e-3, momentum=0.01)
        if mode not in BN_MODES:
            raise ValueError(f"batch_norm must be one of {', '.join(BN_MODES)}, not {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "batch":
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


@_register
class DDNSRVGGDiscriminator(Discriminator):
    """DDNSR ``discriminator_vggstyle(num_feat, stages)`` (official ``method/networks.py``): conv3x3
    ``num_feat`` (bias) + LReLU; per stage ``i``: [conv3x3 ``num_feat * 2^i`` (not in stage 0)] and
    conv4x4 s2 ``num_feat * 2^i``, each bias-free + BN + LReLU; flatten; dense 100 + LReLU; dense 1.
    The input must be ``input_size`` square, a multiple of ``2^stages`` (the dense layer fixes it).
    D_down: ``num_feat=128, stages=3, input_size=32``; Track-1 D_up: ``64, 5, 128``.
    ``batch_norm``: ``inference`` (what the official step computes) or ``batch`` (:class:`_KerasBN`)."""

    name = "ddnsr_vgg"

    def __init__(self, num_in_ch: int = 3, num_feat: int = 128, stages: int = 3, input_size: int = 32,
                 batch_norm: str = "batch"):
        super().__init__()
        if stages < 1 or input_size % (2 ** stages) or input_size < 2 ** stages:
            raise ValueError(f"input_size ({input_size}) must be a positive multiple of 2^stages ({2 ** stages})")
        self.input_size = input_size
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2)]
        c = num_feat
        for i in range(stages):
            for k, st in ((3, 1), (4, 2)):
                if i == 0 and k == 3:
                    continue
                layers += [nn.Conv2d(c, num_feat << i, k, st, 1, bias=False), _KerasBN(num_feat << i, batch_norm), nn.LeakyReLU(0.2)]
                c = num_feat << i
        self.features = nn.Sequential(*layers)
        side = input_size >> stages
        self.dense1 = nn.Linear(c * side * side, 100)
        self.dense2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, s, s)`` with s = ``input_size`` -> logits ``(B, 1)``; ValueError for other sizes.
        Flattened channels-last, as Keras' ``Flatten`` of NHWC (so Keras dense weights map by a
        transpose only)."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"the ddnsr_vgg discriminator takes {self.input_size}x{self.input_size} inputs "
                             f"(input_size={self.input_size}), got {x.shape[-2]}x{x.shape[-1]}")
        f = self.features(x).permute(0, 2, 3, 1).flatten(1)
        return self.dense2(F.leaky_relu(self.dense1(f), 0.2))


class _PadSame4(nn.Module):
    """TF ``'same'`` padding of a stride-1 4x4 convolution: top/left 1, bottom/right 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 2, 1, 2))


@_register
class DDNSRPatchDiscriminator(Discriminator):
    """DDNSR ``discriminator_patchgan`` (Track-2 D_up): conv4x4 s2 64 (bias) + LReLU; conv4x4 s2 128,
    s2 256, s1 512, each bias-free + BN + LReLU; conv4x4 s1 -> 1 (bias). Stride-2 layers pad 1
    (TF 'same' on even inputs), stride-1 layers pad (1, 2) like TF. H and W multiples of 8.
    ``batch_norm`` as :class:`DDNSRVGGDiscriminator`."""

    name = "ddnsr_patchgan"

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, batch_norm: str = "batch"):
        super().__init__()
        nf = num_feat

        def _keras_bn(c: int) -> nn.BatchNorm2d:
            return _KerasBN(c, batch_norm)

        self.model = nn.Sequential(
            nn.Conv2d(num_in_ch, nf, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False), _keras_bn(nf * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False), _keras_bn(nf * 4), nn.LeakyReLU(0.2),
            _PadSame4(), nn.Conv2d(nf * 4, nf * 8, 4, 1, 0, bias=False), _keras_bn(nf * 8), nn.LeakyReLU(0.2),
            _PadSame4(), nn.Conv2d(nf * 8, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)``, H and W multiples of 8 -> logit map ``(B, 1, H/8, W/8)``."""
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"the ddnsr_patchgan discriminator needs H and W divisible by 8, got {x.shape[-2]}x{x.shape[-1]}")
        return self.model(x)
