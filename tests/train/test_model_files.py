"""Model files (safetensors + arch metadata) and official checkpoints (weights_only, key maps)."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")

from realsr.errors import UsageError  # noqa: E402
from realsr.train import models  # noqa: E402
from realsr.train.model_files import load_model, save_model  # noqa: E402
from realsr.train.weights import read_safetensors  # noqa: E402


def _same_output(a, b, size=(9, 10)) -> bool:
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * a.pixel_range
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _esrgan_names(state: dict) -> dict:
    """BasicSR RRDBNet names -> ESRGAN's original names (what old official checkpoints use)."""
    def old(k: str) -> str:
        k = k.replace("conv_body", "trunk_conv").replace("conv_up", "upconv").replace("conv_hr", "HRconv")
        return re.sub(r"^body\.(\d+)\.rdb", r"RRDB_trunk.\1.RDB", k)
    return {old(k): v for k, v in state.items()}


def test_safetensors_round_trip_keeps_arch_and_scale(tmp_path):
    m = models.build("srrescgan", scale=2, depth=2)
    torch.nn.init.normal_(m.alpha)
    path = tmp_path / "m.safetensors"
    save_model(path, m, extra={"iteration": 7})
    _, meta = read_safetensors(path)
    assert meta["arch"] == "srrescgan" and meta["scale"] == "2"
    assert json.loads(meta["arch_args"])["depth"] == 2 and json.loads(meta["extra"]) == {"iteration": 7}
    back = load_model(path)
    assert back.arch_args == m.arch_args and _same_output(m, back)
    with pytest.raises(UsageError, match="x2, but x4"):
        load_model(path, scale=4)
    with pytest.raises(UsageError, match="holds architecture 'srrescgan', not 'rrdbnet'"):
        load_model(path, arch="rrdbnet")


def test_official_rrdbnet_names_load_through_the_key_map(tmp_path):
    m = models.build("rrdbnet", nb=2, nf=16, gc=8)
    old = _esrgan_names(m.state_dict())
    assert "RRDB_trunk.1.RDB3.conv5.weight" in old and "trunk_conv.weight" in old
    p = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(old, p)
    back = load_model(p)  # recognised: architecture and nb/nf/gc read off the shapes
    assert back.arch == "rrdbnet" and back.arch_args["nb"] == 2 and back.arch_args["nf"] == 16
    assert _same_output(m, back)
    assert load_model(p, arch="rrdbnet").arch_args == back.arch_args
    with pytest.raises(UsageError, match="x4 'rrdbnet' model, but x2"):
        load_model(p, scale=2)


def test_wrappers_and_dataparallel_prefix_are_unwrapped(tmp_path):
    m = models.build("rrdbnet", scale=2, nb=1, nf=8, gc=4)
    p = tmp_path / "net_g.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in m.state_dict().items()}, "params": {}}, p)
    back = load_model(p)
    assert back.scale == 2 and _same_output(m, back, (8, 8))


def test_bad_files_are_refused_with_clear_messages(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    torch.save({"w": Payload()}, evil)
    with pytest.raises(UsageError, match="full unpickling is refused"):
        load_model(evil)
    good = tmp_path / "g.pth"
    torch.save(models.build("srrescgan", depth=1).state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(UsageError, match="cannot read model checkpoint"):
        load_model(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(UsageError, match="cannot read model file"):
        load_model(junk)
    odd = tmp_path / "odd.pth"
    torch.save({"foo.weight": torch.zeros(3, 3)}, odd)
    with pytest.raises(UsageError, match="cannot tell the architecture.*--arch"):
        load_model(odd)
    with pytest.raises(UsageError, match="do not fit architecture 'srrescgan'.*missing"):
        load_model(odd, arch="srrescgan")
    with pytest.raises(UsageError, match="unknown architecture 'nope'"):
        load_model(good, arch="nope")
    with pytest.raises(UsageError, match="not found"):
        load_model(tmp_path / "missing.pth")
    assert load_model("bicubic", scale=3).scale == 3
    with pytest.raises(UsageError, match="not 0"):  # was taken for "no scale given": x4
        load_model("bicubic", scale=0)
    from safetensors.torch import save_file

    save_file({}, tmp_path / "empty.safetensors")  # used to load as the bicubic model
    with pytest.raises(UsageError, match="holds no weights"):
        load_model(tmp_path / "empty.safetensors")
    save_model(tmp_path / "bic.safetensors", models.build("bicubic", scale=3))  # bicubic's file says so
    assert load_model(tmp_path / "bic.safetensors").scale == 3


def test_architecture_arguments_take_their_defaults_types():
    """NumPy numbers and integral floats are converted (scale 4.0 used to write a model file that
    did not load, np.int64 one that did not save); NaN, strings and fractions are refused by name."""
    import numpy as np

    m = models.build("edsr", scale=4.0, num_feat=np.int64(8), num_block=1, res_scale=np.float32(0.5))
    assert m.arch_args == {"scale": 4, "num_feat": 8, "num_block": 1, "res_scale": 0.5}
    assert all(type(v) in (int, float) for v in m.arch_args.values())
    for args, msg in (({"res_scale": float("nan")}, "res_scale must be a finite number"),
                      ({"res_scale": "1"}, "res_scale must be a finite number"),
                      ({"scale": 4.5}, "scale must be an int, got 4.5"),
                      ({"num_feat": True}, "num_feat must be an int")):
        with pytest.raises(UsageError, match=msg):
            models.build("edsr", **args)
    with pytest.raises(UsageError, match="node must be a str, got 5"):  # the str-typed arguments too
        models.build("d2csr", node=5)
    with pytest.raises(UsageError, match="reduction 0 must be between 1 and num_feat"):
        models.build("rcan", reduction=0)
    with pytest.raises(UsageError, match="bad arguments for architecture 'd2csr'"):  # a ZeroDivisionError inside
        models.build("d2csr", reduction=0)


@pytest.mark.realdata
def test_official_srrescgan_checkpoint_is_recognised(shared):
    m = load_model(shared("weights", "srrescgan", "srrescgan_x4.pth"))
    assert m.arch == "srrescgan" and m.scale == 4
    assert m.arch_args == {"scale": 4, "depth": 5, "features": 64, "channels": 3}
    assert abs(m.alpha.item() - 9.0566) < 1e-3  # the trained projection scale, not the ln 2 init
