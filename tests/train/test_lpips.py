"""LPIPS-Alex v0.1 plumbing with the official calibration weights and a random AlexNet backbone."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realsr.errors import UsageError  # noqa: E402
from realsr.train.lpips import LPIPS, alexnet_features  # noqa: E402


@pytest.fixture
def lin(shared):
    return shared("weights", "lpips", "v0.1", "alex.pth")


@pytest.fixture
def backbone(tmp_path):
    """A torchvision-format AlexNet state dict (random weights), with a classifier entry to ignore."""
    torch.manual_seed(0)
    sd = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    sd["classifier.1.weight"] = torch.zeros(2, 2)
    path = tmp_path / "alexnet.pth"
    torch.save(sd, path)
    return path


def _reference(model, x, y):
    """LPIPS written out layer by layer with functional calls (independent of the module's loop)."""
    import torch.nn.functional as F

    f = model.features
    sh = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    sc = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(z):
        z = (2 * z - 1 - sh) / sc
        r1 = F.relu(F.conv2d(z, f[0].weight, f[0].bias, stride=4, padding=2))
        r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), f[3].weight, f[3].bias, padding=2))
        r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), f[6].weight, f[6].bias, padding=1))
        r4 = F.relu(F.conv2d(r3, f[8].weight, f[8].bias, padding=1))
        r5 = F.relu(F.conv2d(r4, f[10].weight, f[10].bias, padding=1))
        return [r1, r2, r3, r4, r5]

    out = 0
    for a, b, lin in zip(feats(x), feats(y), model.lins):
        na = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        nb = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        out = out + (((na - nb) ** 2) * lin.weight.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    return out


def test_lpips_plumbing(lin, backbone):
    m = LPIPS(lin, backbone)
    sd = torch.load(lin, weights_only=True, map_location="cpu")
    assert torch.equal(m.lins[2].weight, sd["lin2.model.1.weight"])
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 80, generator=g)
    y = (x + 0.1 * torch.randn(3, 3, 64, 80, generator=g)).clamp(0, 1)
    d = m(x, y)
    assert d.shape == (3,) and (d > 0).all()
    assert torch.allclose(d, _reference(m, x, y), rtol=1e-5, atol=1e-7)
    assert torch.allclose(m(x, x), torch.zeros(3), atol=1e-7)
    assert torch.allclose(m(y, x), d, rtol=1e-5)  # symmetric
    assert torch.allclose(m(x[1:2], y[1:2]), d[1:2], rtol=1e-5)  # batch = alone
    noisier = (x + 0.3 * torch.randn(3, 3, 64, 80, generator=g)).clamp(0, 1)
    assert (m(x, noisier) > d).all()  # more distortion, larger distance
    assert torch.allclose(m(2 * x - 1, 2 * y - 1, normalize=False), d)


def test_missing_and_unsafe_files(lin, backbone, tmp_path):
    with pytest.raises(UsageError, match="needs AlexNet weights"):
        LPIPS(lin)
    with pytest.raises(UsageError, match="not found"):
        LPIPS(lin, tmp_path / "nope.pth")
    with pytest.raises(UsageError, match="not found"):
        LPIPS(tmp_path / "nolin.pth", backbone)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(UsageError, match="weights_only"):
        LPIPS(lin, bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UsageError, match="not torchvision AlexNet"):
        LPIPS(lin, wrong)
    assert np.isfinite(float(LPIPS(lin, random_backbone=True)(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))[0]))
