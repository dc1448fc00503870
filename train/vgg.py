"""VGG19 feature extractor for perceptual losses, written with plain torch (no torchvision here).

The convolutional part is torchvision's ``vgg19().features`` module for module (indices 0 ... 36), so a
torchvision state dict (``vgg19-dcbb9e9d.pth`` and the like, keys ``features.<i>.weight/bias``) loads
as it is; classifier keys in the file are ignored. Layers are named as in BasicSR, each block being
``conv{b}_1, relu{b}_1, ..., conv{b}_n, relu{b}_n, pool{b}`` (n = 2, 2, 4, 4, 4):

- block 1: conv1_1 = 0 ... relu1_2 = 3, pool1 = 4
- block 2: conv2_1 = 5, conv2_2 = 7, relu2_2 = 8, pool2 = 9
- block 3: conv3_1 = 10, conv3_4 = 16, relu3_4 = 17, pool3 = 18
- block 4: conv4_1 = 19, conv4_4 = 25, relu4_4 = 26, pool4 = 27
- block 5: conv5_1 = 28, conv5_4 = 34, relu5_4 = 35, pool5 = 36

(:data:`LAYER_INDEX` is the exact table.) ESRGAN's ``features[:35]`` is ``conv5_4`` (index 34, before
its ReLU); DDNSR's Keras ``block3_conv4`` / ``block2_conv2`` (pre-activation) are ``conv3_4`` (16) /
``conv2_2`` (7) by name only: DDNSR used Keras ImageNet weights (caffe BGR preprocessing) and fed
raw [0, 1] RGB (METHODS.md 4.6), which torchvision weights do not reproduce. The ReLUs are not
in-place, so a tapped convolution output stays pre-activation.

Weights come only from a local file (``.pth`` read with ``torch.load(weights_only=True)`` through
:func:`realsr.train.weights.load_state`, or ``.safetensors``); nothing is ever downloaded.
``weights="random"`` must be asked for explicitly (tests, plumbing): the features then mean nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from realsr.errors import UsageError
from realsr.train.weights import load_state, read_safetensors

#: torchvision's VGG19 configuration ("E"): output channels of each conv, "M" = 2x2 max pool
CFG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

#: BasicSR layer names of vgg19, in ``features`` order
NAMES19 = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)
#: layer name -> index in torchvision's ``vgg19().features``
LAYER_INDEX = {name: i for i, name in enumerate(NAMES19)}

#: ImageNet normalisation of torchvision's pretrained weights (RGB in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the explicit value of ``weights`` that asks for a random (untrained) network
RANDOM = "random"


def vgg19_features(depth: int = len(NAMES19)) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's ``vgg19().features`` (same indices and shapes;
    ReLUs not in-place), initialised as torchvision does (Kaiming-normal fan-out, zero bias)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in CFG19:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(c_in, int(v), kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=False)]
            c_in = int(v)
        if len(layers) >= depth:
            break
    return nn.Sequential(*layers[:depth])


def _read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        sd, _ = read_safetensors(p, "VGG19 weights")
    else:
        sd = load_state(p, "VGG19 weights")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    return feats or sd  # a bare ``features`` state dict (keys "0.weight", ...) is accepted too


class VGGFeatures(nn.Module):
    """VGG19 features at the named layers (BasicSR names, see :data:`LAYER_INDEX`).

    ``weights``: a local torchvision-format VGG19 state dict (``.pth`` / ``.safetensors``), or the
    string ``"random"`` for an untrained network (tests only). There is no default and ``None`` is
    refused, so pretrained weights cannot be forgotten silently. Only the modules up to the deepest
    requested layer are built; the file's deeper layers and its classifier are ignored.

    ``forward(x)``: ``x`` is an RGB batch (B, 3, H, W) in [0, 1] (or in [-1, 1] with
    ``range_norm=True``, mapped to [0, 1] first); with ``use_input_norm`` it is then normalised with
    the ImageNet mean/std. Returns ``{name: feature}`` in the order of ``layers``.

    With ``requires_grad=False`` (the default) the parameters are frozen and the module is in eval
    mode; gradients still flow to the input. The mean/std buffers are not persistent, so
    ``state_dict()`` has exactly torchvision's ``features.<i>.weight/bias`` keys.
    """

    def __init__(self, layers: list[str] | tuple[str, ...], weights: str | os.PathLike | None, *,
                 use_input_norm: bool = True, range_norm: bool = False, requires_grad: bool = False):
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise UsageError("VGGFeatures needs at least one layer name")
        unknown = [n for n in layers if n not in LAYER_INDEX]
        if unknown:
            raise UsageError(f"unknown VGG19 layer(s) {', '.join(map(repr, unknown))}; "
                             f"names are conv1_1 ... relu5_4, pool1 ... pool5")
        if len(set(layers)) != len(layers):
            raise UsageError(f"repeated VGG19 layer name in {list(layers)}")
        self.layers = list(layers)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self._taps = {LAYER_INDEX[n]: n for n in self.layers}
        depth = max(self._taps) + 1
        self.features = vgg19_features(depth)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        if weights is None:
            raise UsageError("VGG19 weights are required: give a local torchvision vgg19 state dict "
                             "(e.g. vgg19-dcbb9e9d.pth; nothing is downloaded), or weights='random' "
                             "for an untrained network")
        if isinstance(weights, str) and weights == RANDOM:
            self.weights_path = None
        else:
            self.weights_path = os.fspath(weights)
            sd = _read_weights(weights)
            keep = {}
            for k, v in sd.items():
                idx = k.split(".", 1)[0]
                if idx.isdigit() and int(idx) < depth:
                    keep[k] = v
            try:
                self.features.load_state_dict(keep, strict=True)
            except RuntimeError as e:
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                detail = " ".join(lines[1:2] or lines[:1])[:300]
                raise UsageError(f"not torchvision VGG19 weights ({detail})", weights) from None
        self.trainable = requires_grad
        self.requires_grad_(requires_grad)
        self.train(requires_grad)

    def train(self, mode: bool = True) -> VGGFeatures:
        """A frozen extractor stays in eval mode even when a parent module is put in train mode."""
        return super().train(mode and self.trainable)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out[self._taps[i]] = x
        return {name: out[name] for name in self.layers}
