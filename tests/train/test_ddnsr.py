"""DDNSR (issue 7): the degradation network and discriminators against the official layer list, the
step's losses and gradient isolation, resume, config errors, and ``realsr degrade --mode network``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from realsr.cli.main import main
from realsr.degrade.degrade_pair import degrade_pair, regenerate
from realsr.degrade.learned import LearnedSpec, load_degrader
from realsr.errors import UsageError
from realsr.images import read_image, to_float, write_png
from realsr.resize import imresize
from realsr.synthetic import synthetic_scene
from realsr.train.config import from_dict
from realsr.train.ddnsr import DEGRADATION_FILE, wmad_sigma
from realsr.train.models.ddnsr import DegradationNet, load_degradation, save_degradation
from realsr.train.models.discriminators import build_discriminator
from realsr.train.trainer import Trainer


def _n(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_and_shapes_of_the_official_layers():
    # counted by hand from method/networks.py: HR branch 1,829,440; source branch 1,550,976;
    # fuse 331,840; 8 blocks 590,848; body_out 36,928; out 1,731
    net = DegradationNet()
    assert _n(net) == 4_341_763
    assert net(torch.rand(1, 3, 64, 48), torch.rand(1, 3, 16, 12)).shape == (1, 3, 16, 12)
    # D_down vggstyle(128, 3) on 32x32: trainable 7,805,897 (Keras adds 3,328 moving statistics)
    d = build_discriminator("ddnsr_vgg")
    assert _n(d) == 7_805_897 and d(torch.rand(2, 3, 32, 32)).shape == (2, 1)
    up = build_discriminator("ddnsr_vgg", num_feat=64, stages=5, input_size=128)
    assert up(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    patch = build_discriminator("ddnsr_patchgan")
    assert _n(patch) == 2_765_633 and patch(torch.rand(1, 3, 64, 96)).shape == (1, 1, 8, 12)
    with pytest.raises(ValueError, match="32x32"):
        d(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="source LR must be"):
        net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 15, 16))
    with pytest.raises(UsageError, match="power-of-2"):
        DegradationNet(scale=3)


def test_single_input_ignores_the_source_and_dual_uses_it():
    torch.manual_seed(0)
    hr, a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    single = DegradationNet(nf=8, blocks=1, input_type="single")
    dual = DegradationNet(nf=8, blocks=1)
    dual.load_state_dict(single.state_dict())  # same parameters, only the source input differs
    assert torch.equal(single(hr, a), single(hr, b))
    assert not torch.allclose(dual(hr, a), dual(hr, b))


def test_tf_same_padding_of_the_stride_one_4x4_layers():
    """The PatchGAN tail pads top/left 1, bottom/right 2: a logit depends on input rows y-1 .. y+2."""
    d = build_discriminator("ddnsr_patchgan", num_feat=4).eval()
    x = torch.zeros(1, 3, 64, 64, requires_grad=True)
    d(x)[0, 0, 0, 0].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    # four stride-2/1 stages seen from output (0, 0): input rows 0 .. 2^3 * (1+2+2) + ... > 0, and
    # never the bottom rows; what matters is that it is not symmetric padding: compare with pad 1
    assert rows.min() == 0 and rows.max() < 64


def test_wmad_sigma_reads_gaussian_noise():
    g = torch.Generator().manual_seed(0)
    x = 0.5 + torch.randn(4, 3, 64, 64, generator=g) * (10 / 255)
    assert abs(wmad_sigma(x).item() - 10) < 0.4
    assert wmad_sigma(torch.full((1, 3, 16, 16), 0.3)).item() == 0


def test_batch_norm_modes():
    x = torch.randn(4, 3, 32, 32)
    inf = build_discriminator("ddnsr_vgg", num_feat=8, input_size=32, batch_norm="inference").train()
    inf(x)
    bn = [m for m in inf.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in bn)  # never updated
    with pytest.raises(UsageError, match="batch_norm"):
        build_discriminator("ddnsr_vgg", batch_norm="group")


# --------------------------------------------------------------------------------------------------
# the training step


def _unpaired(root: Path, sigma: float = 10.0, size: int = 96, n: int = 3) -> tuple[Path, Path]:
    """Clean HR photos (size px) and real LR photos: other photos of 2 x size px downscaled x4 with
    Gaussian noise of ``sigma`` (0-255) added."""
    hr, src = root / "hr", root / "src"
    if not hr.exists():
        hr.mkdir(parents=True)
        src.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(n):
            write_png(hr / f"h{i}.png", synthetic_scene(size, size, seed=10 + i))
            clean = imresize(synthetic_scene(2 * size, 2 * size, seed=20 + i).astype(np.float32) / 255, scale=0.25)
            write_png(src / f"s{i}.png", np.clip(np.round(clean * 255 + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8))
    return hr, src


def _cfg(hr: Path, src: Path, **over) -> dict:
    tree = {"name": "d", "scale": 4, "seed": 2, "method": "ddnsr",
            "model": {"arch": "rrdbnet", "args": {"nf": 8, "nb": 1, "gc": 4}},
            "data": {"train": str(hr), "patch_size": 32, "batch_size": 4, "workers": 0, "rotate": False},
            "losses": {"pixel": {"weight": 1.0, "kind": "l2"}},
            "ddnsr": {"source": str(src), "features": "pixel", "network": {"nf": 8, "blocks": 1},
                      "discriminator_args": {"num_feat": 8}},
            "optim": {"iterations": 6, "ema": 0, "schedule": {"milestones": [3], "gamma": 0.5}},
            "log": {"every": 1, "val_every": 0, "save_every": 3, "progress": False, "tensorboard": False}}
    for k, v in over.items():
        tree[k].update(v) if isinstance(v, dict) else tree.__setitem__(k, v)
    return tree


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory) -> tuple[Path, Path]:
    return _unpaired(tmp_path_factory.mktemp("ddnsr"))


def test_losses_by_hand_and_each_loss_trains_only_its_own_network(tmp_path, unpaired, monkeypatch):
    """The recorded gradients of Dn and R equal autograd of L_down w.r.t. Dn and L_up w.r.t. R,
    computed here from the formulas (pixel features: content 0.1 MSE(avgpool4(HR), Dn(HR, x)),
    cycle 10 MSE(x, Dn(R(x), x)), adversarial BCE(D_down(Dn(HR, x)), 1))."""
    hr_dir, src_dir = unpaired
    tr = Trainer(from_dict(_cfg(hr_dir, src_dir)), tmp_path / "r")
    step = tr.method
    batch = next(iter(tr.batches(0)))
    hr, src = batch["hr"], batch["src"]
    net, R, D = step.net, tr.G, step.D
    saved = {"net": {k: v.clone() for k, v in net.state_dict().items()},
             "R": {k: v.clone() for k, v in R.state_dict().items()},
             "D": {k: v.clone() for k, v in D.state_dict().items()}}
    grads: dict[int, torch.Tensor] = {}

    def record(opt, params):
        for p in params:
            grads[id(p)] = p.grad.clone()

    monkeypatch.setattr(tr, "_step", record)
    terms = step.step([batch])
    # the same forward by hand, from the saved weights
    net.load_state_dict(saved["net"])
    R.load_state_dict(saved["R"])
    D.load_state_dict(saved["D"])
    fake = net(hr, src)
    with torch.no_grad():
        sr_src = R(src)
    cyc = net(sr_src, src)
    content = 0.1 * F.mse_loss(fake, F.avg_pool2d(hr, 4))
    cycle = 10 * F.mse_loss(cyc, src)
    adv = F.binary_cross_entropy_with_logits(D(fake), torch.ones(hr.shape[0], 1))
    assert terms["content_down"].item() == pytest.approx(content.item(), rel=1e-5)
    assert terms["cycle_down"].item() == pytest.approx(cycle.item(), rel=1e-5)
    assert terms["adv_down"].item() == pytest.approx(adv.item(), rel=1e-4)
    g_net = torch.autograd.grad(content + cycle + adv, list(net.parameters()))
    for p, g in zip(net.parameters(), g_net):
        assert torch.allclose(grads[id(p)], g, rtol=1e-4, atol=1e-7)
    up = F.mse_loss(R(fake.detach()), hr)
    assert terms["pixel"].item() == pytest.approx(up.item(), rel=1e-5)
    for p, g in zip(R.parameters(), torch.autograd.grad(up, list(R.parameters()))):
        assert torch.allclose(grads[id(p)], g, rtol=1e-4, atol=1e-7)
    assert {"noise_fake", "noise_source", "d_down"} <= set(terms)


def test_trains_saves_the_degradation_network_and_resumes_exactly(tmp_path, unpaired, kit):
    hr_dir, src_dir = unpaired
    cfg = from_dict(_cfg(hr_dir, src_dir))
    Trainer(cfg, tmp_path / "a").run()
    kit.run_killed_at(Trainer(cfg, tmp_path / "b"), 4)
    Trainer(cfg, tmp_path / "b", resume=True).run()

    def losses(run):
        return [json.loads(x)["losses"] for x in (run / "log.jsonl").read_text().splitlines() if "losses" in x]

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) == 6 and a[-3:] == b[-3:]
    na, nb = (load_degradation(tmp_path / r / DEGRADATION_FILE) for r in "ab")
    for (k, v), w in zip(na.state_dict().items(), nb.state_dict().values()):
        assert torch.equal(v, w), k


def test_optimiser_moments_are_cleared_at_each_milestone(tmp_path, unpaired):
    hr_dir, src_dir = unpaired
    tr = Trainer(from_dict(_cfg(hr_dir, src_dir, optim={"iterations": 4, "ema": 0,
                                                        "schedule": {"milestones": [2], "gamma": 0.5}})), tmp_path / "m")
    stream = tr.batches(0)
    for _ in range(2):
        tr.train_step([next(stream)])
    steps = lambda: max(int(s["step"]) for s in tr.method.opt_net.state.values())  # noqa: E731
    assert steps() == 2
    tr.train_step([next(stream)])
    assert steps() == 1  # a fresh Adam at iteration 2, as the official code's new optimiser per phase
    keep = _cfg(hr_dir, src_dir, optim={"iterations": 4, "ema": 0, "schedule": {"milestones": [2], "gamma": 0.5}})
    keep["ddnsr"]["reset_optimizers"] = False
    tr = Trainer(from_dict(keep), tmp_path / "k")
    stream = tr.batches(0)
    for _ in range(3):
        tr.train_step([next(stream)])
    assert steps() == 3  # reset_optimizers: false keeps the moments across the milestone


@pytest.mark.parametrize("over, msg", [
    ({"ddnsr": {"source": None}}, "ddnsr.source"),
    ({"scale": 3, "data": {"patch_size": 36}}, "power-of-2"),
    ({"ddnsr": {"features": "vgg"}}, "VGG19 file"),
    ({"ddnsr": {"content_layer": "conv9_9"}}, "unknown VGG19 layer"),
    ({"data": {"noise_pool": "x"}}, "learns its own degradation"),
])
def test_bad_config(unpaired, over, msg):
    hr_dir, src_dir = unpaired
    tree = _cfg(hr_dir, src_dir)
    for k, v in over.items():
        tree[k] = {**tree[k], **v} if isinstance(v, dict) else v
    with pytest.raises(UsageError, match=msg):
        from_dict(tree)


def test_missing_source_folder_and_wrong_discriminator_size(tmp_path, unpaired):
    hr_dir, _ = unpaired
    with pytest.raises(UsageError, match="real LR photos not found"):
        Trainer(from_dict(_cfg(hr_dir, tmp_path / "nowhere")), tmp_path / "x")
    bad = _cfg(hr_dir, unpaired[1], ddnsr={"discriminator_args": {"num_feat": 8, "input_size": 16}})
    bad["ddnsr"]["source"] = str(unpaired[1])
    with pytest.raises(UsageError, match="input_size"):
        Trainer(from_dict(bad), tmp_path / "y")


# --------------------------------------------------------------------------------------------------
# realsr degrade --mode network


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    net = DegradationNet(nf=8, blocks=2)
    path = tmp_path_factory.mktemp("net") / DEGRADATION_FILE
    save_degradation(path, net)
    return path


def test_network_degrader_is_replayable_and_tiles_change_nothing(network_file, unpaired, tmp_path):
    _, src = unpaired
    deg = load_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 0, source=str(src)))
    hr = synthetic_scene(160, 200, seed=5)
    h, lr, rec = degrade_pair(hr, "network", 4, seed=1, learned=deg)
    assert lr.shape == (40, 50, 3) and h.shape == (160, 200, 3)
    assert np.array_equal(regenerate(h, rec, learned=deg), lr)
    assert not np.array_equal(degrade_pair(hr, "network", 4, seed=2, learned=deg)[1], lr)  # another source patch
    step = next(s for s in rec["steps"] if s["op"] == "learned")
    assert step["model"] == "network" and len(step["source_sha256"]) == 64
    tiled = load_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 12, source=str(src)))
    x = to_float(h)
    assert np.abs(tiled.degrade(x, 7) - deg.degrade(x, 7)).max() < 1e-5
    # sources smaller than the LR are mirror-tiled
    assert deg.source_patch(100, 90, 0).shape == (100, 90, 3)
    # replay with another source folder is refused
    other = tmp_path / "other"
    other.mkdir()
    write_png(other / "a.png", read_image(next(src.iterdir())))
    moved = load_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 0, source=str(other)))
    with pytest.raises(UsageError, match="not by"):
        regenerate(h, rec, learned=moved)


def test_network_mode_cli_and_its_errors(network_file, unpaired, tmp_path, capsys):
    hr_dir, src = unpaired
    out = tmp_path / "pairs"
    assert main(["-q", "degrade", str(hr_dir), "-o", str(out), "--mode", "network", "--weights", str(network_file),
                 "--source", str(src), "--device", "cpu"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["mode_params"]["source_sha256"] and len(man["pairs"]) == 3
    assert read_image(out / "LR" / "h0.png").shape == (24, 24, 3)
    assert main(["-q", "degrade", str(hr_dir), "-o", str(tmp_path / "p2"), "--mode", "network",
                 "--weights", str(network_file)]) == 2
    assert "--source" in capsys.readouterr().err
    wrong = tmp_path / "w.safetensors"
    save_degradation(wrong, DegradationNet(scale=2, nf=4, blocks=0))
    assert main(["-q", "degrade", str(hr_dir), "-o", str(tmp_path / "p3"), "--mode", "network",
                 "--weights", str(wrong), "--source", str(src)]) == 2
    assert "x2, not x4" in capsys.readouterr().err
    not_a_net = tmp_path / "junk.safetensors"
    not_a_net.write_bytes(b"garbage")
    assert main(["-q", "degrade", str(hr_dir), "-o", str(tmp_path / "p4"), "--mode", "network",
                 "--weights", str(not_a_net), "--source", str(src)]) == 2


# --------------------------------------------------------------------------------------------------
# what the dual input is for (issue 7): the source's noise level reaches the synthetic LR


@pytest.fixture(scope="module")
def noise_runs(tmp_path_factory) -> dict:
    """Dual and single-input DDNSR trained 1200 iterations on clean HR and real LR with Gaussian noise
    of sigma 12 (0-255), by two ``realsr train`` processes side by side, one thread each (about 1.5
    minutes on 2 cores; one after the other on 2 threads took 2.3). Content and cycle on pixels (no
    VGG19 weights here) with content weight 1: on pixels the official 0.1 (meant for VGG features)
    let the network copy the source photo into its output (13 dB from the HR's 4x4 average in
    trials). D_down's BN as the official step computes it (``inference``): with batch statistics
    this tiny GAN destabilised the cycle in trials."""
    root = tmp_path_factory.mktemp("noise")
    hr, src = _unpaired(root, sigma=12.0, size=256, n=4)
    procs = {}
    for inp in ("dual", "single"):
        tree = _cfg(hr, src, data={"patch_size": 32, "batch_size": 8},
                    optim={"iterations": 1200, "ema": 0, "generator": {"lr": 2e-3, "betas": [0.9, 0.999]},
                           "discriminator": {"lr": 2e-3, "betas": [0.9, 0.999]}},
                    log={"every": 100, "val_every": 0, "save_every": 1200, "progress": False, "tensorboard": False})
        tree["ddnsr"].update(input=inp, network={"nf": 16, "blocks": 2}, content_weight=1.0,
                             discriminator_args={"num_feat": 16, "batch_norm": "inference"})
        tree["seed"] = 1
        cfg = root / f"{inp}.yaml"
        cfg.write_text(yaml.safe_dump(tree), encoding="utf-8")
        procs[inp] = subprocess.Popen(
            [sys.executable, "-m", "realsr.cli", "-q", "train", str(cfg), "-o", str(root / inp)],
            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    try:
        for inp, proc in procs.items():
            log, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, log
            out[inp] = load_degradation(root / inp / DEGRADATION_FILE)
    finally:
        for proc in procs.values():
            proc.kill()
    out["sources"] = [to_float(read_image(p)) for p in sorted(src.iterdir())]
    return out


def test_dual_input_reproduces_the_source_noise_level_and_single_does_not(noise_runs):
    from realsr.degrade.realism import noise_sigma

    rng = np.random.default_rng(0)
    src_sigma = float(np.mean([np.mean(noise_sigma(s)) for s in noise_runs["sources"]]))
    figures = {}
    for inp in ("dual", "single"):
        sig, fid, cop = [], [], []
        for k in range(3):
            hr = to_float(synthetic_scene(256, 256, seed=40 + k))  # held out
            s = noise_runs["sources"][k]
            y, x = rng.integers(0, s.shape[0] - 64 + 1, 2)
            with torch.no_grad():
                lr = noise_runs[inp](torch.from_numpy(hr).permute(2, 0, 1)[None],
                                     torch.from_numpy(np.ascontiguousarray(s[y:y + 64, x:x + 64])).permute(2, 0, 1)[None])
            lr = np.clip(lr[0].permute(1, 2, 0).numpy(), 0, 1)
            sig.append(np.mean(noise_sigma(lr)))
            ref = F.avg_pool2d(torch.from_numpy(hr).permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0).numpy()
            fid.append(10 * np.log10(1 / np.mean((lr - ref) ** 2)))
            cop.append(10 * np.log10(1 / np.mean((lr - s[y:y + 64, x:x + 64]) ** 2)))
        figures[inp] = (float(np.mean(sig)), float(np.mean(fid)), float(np.mean(cop)))
    dual, single = figures["dual"][0], figures["single"][0]
    print(f"source sigma {src_sigma:.2f}; dual {figures['dual']}; single {figures['single']}")
    assert abs(dual / src_sigma - 1) < 0.2, figures
    assert abs(single / src_sigma - 1) > 0.2, figures
    # the dual output follows the HR's content (its 4x4 average), not the source photo's
    assert figures["dual"][1] > 17 and figures["dual"][1] > figures["dual"][2] + 5, figures


def test_vgg_features_take_the_named_layers_and_the_input_norm_option(tmp_path, unpaired):
    """features: vgg computes content on conv3_4 and cycle on conv2_2 of a VGG19 file (a stand-in
    with random weights; nothing is downloaded); vgg_input_norm changes what the features see."""
    from realsr.train.vgg import VGGFeatures, vgg19_features

    hr_dir, src_dir = unpaired
    torch.manual_seed(0)
    vgg = tmp_path / "vgg.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features(17).state_dict().items()}, vgg)
    values = {}
    for norm in (False, True):
        tree = _cfg(hr_dir, src_dir)
        tree["ddnsr"].update(features="vgg", vgg_weights=str(vgg), vgg_input_norm=norm)
        tr = Trainer(from_dict(tree), tmp_path / f"v{norm}")
        step = tr.method
        assert sorted(step.features.layers) == ["conv2_2", "conv3_4"]
        hr, src = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 8, 8)
        fake, cyc = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
        terms = step.down_terms(hr, src, fake, cyc)
        ref = VGGFeatures(["conv2_2", "conv3_4"], vgg, use_input_norm=norm)
        want = 0.1 * F.mse_loss(ref(fake)["conv3_4"], ref(F.avg_pool2d(hr, 4))["conv3_4"])
        assert terms["content_down"].item() == pytest.approx(want.item(), rel=1e-5)
        want = 10 * F.mse_loss(ref(cyc)["conv2_2"], ref(src)["conv2_2"])
        assert terms["cycle_down"].item() == pytest.approx(want.item(), rel=1e-5)
        values[norm] = terms["content_down"].item()
    assert values[False] != pytest.approx(values[True])


def test_network_mode_skips_unreadable_source_photos(network_file, unpaired, tmp_path):
    hr_dir, src = unpaired
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in sorted(src.iterdir()):
        (mixed / p.name).write_bytes(p.read_bytes())
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    deg = load_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 0, source=str(mixed)))
    assert [p.name for p in deg.sources] == sorted(p.name for p in src.iterdir())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match="none of the 1 files"):
        load_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 0, source=str(bad)))


def test_reconstruction_network_sees_its_own_pixel_range(tmp_path, unpaired, monkeypatch):
    """R runs on [0, pixel_range] (255 for SRResCGAN) in both of its DDNSR calls, as in the standard
    step and in inference."""
    hr_dir, src_dir = unpaired
    tr = Trainer(from_dict(_cfg(hr_dir, src_dir)), tmp_path / "pr")
    seen = []
    forward = type(tr.G).forward

    def scaled(self, x):
        seen.append(float(x.max()))
        return forward(self, x / 255) * 255

    monkeypatch.setattr(type(tr.G), "forward", scaled)
    monkeypatch.setattr(tr.G, "pixel_range", 255.0, raising=False)
    terms = tr.method.step([next(iter(tr.batches(0)))])
    assert len(seen) == 2 and min(seen) > 2  # [0, 1] inputs would have a max <= 1
    assert terms["pixel"].item() < 1  # the loss is still computed on [0, 1] images


def test_cli_paths_are_literal_and_overwrite_clears_the_degradation_file(tmp_path, unpaired):
    hr_dir, src_dir = unpaired
    odd = tmp_path / "real #2"
    odd.mkdir()
    for p in src_dir.iterdir():
        (odd / p.name).write_bytes(p.read_bytes())
    cfg = tmp_path / "c.yaml"
    import yaml

    tree = _cfg(hr_dir, src_dir, optim={"iterations": 2, "ema": 0}, log={"every": 1, "val_every": 0, "save_every": 2,
                                                                        "progress": False, "tensorboard": False})
    tree["ddnsr"]["source"] = "UNSET"
    cfg.write_text(yaml.safe_dump(tree))
    run = tmp_path / "run"
    assert main(["-q", "train", str(cfg), "-o", str(run), "--source-data", str(odd)]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["ddnsr"]["source"] == str(odd)
    assert (run / DEGRADATION_FILE).is_file()
    assert main(["-q", "train", str(cfg), "-o", str(run), "--source-data", str(odd), "--overwrite",
                 "ddnsr.input=bogus"]) == 2  # refused before anything is touched
    assert (run / DEGRADATION_FILE).is_file()
    # a standard run over the DDNSR run folder leaves no stale degradation network behind
    assert main(["-q", "train", str(cfg), "-o", str(run), "--overwrite", "method=standard",
                 "data.degradation={mode: bicubic}"]) == 0
    assert not (run / DEGRADATION_FILE).exists() and (run / "model.safetensors").is_file()


@pytest.mark.parametrize("over, msg", [
    ({"network": {"scale": 2}}, "unknown key 'scale'"),
    ({"network": {"blocks": 1.5}}, "must be an integer"),
    ({"content_weight": 0, "adv_weight": 0, "cycle_weight": 0}, "learns nothing"),
])
def test_bad_ddnsr_section(unpaired, over, msg):
    tree = _cfg(*unpaired)
    tree["ddnsr"].update(over)
    with pytest.raises(UsageError, match=msg):
        from_dict(tree)


def test_discriminator_argument_of_the_wrong_type_is_a_usage_error():
    with pytest.raises(UsageError, match="bad arguments for discriminator 'ddnsr_vgg'"):
        build_discriminator("ddnsr_vgg", input_size="32")


def test_channels_last_gives_the_same_losses(tmp_path, unpaired):
    hr_dir, src_dir = unpaired
    runs = {}
    for cl in ("off", "on"):
        tree = _cfg(hr_dir, src_dir, optim={"iterations": 2, "ema": 0})
        tree["engine"] = {"channels_last": cl}
        tr = Trainer(from_dict(tree), tmp_path / cl)
        tr.run()
        runs[cl] = [json.loads(x)["losses"] for x in (tmp_path / cl / "log.jsonl").read_text().splitlines() if "losses" in x]
    for a, b in zip(runs["off"], runs["on"]):
        for k in ("pixel", "content_down", "cycle_down", "adv_down"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k


def test_workers_reuse_the_source_list_the_first_load_found(network_file, unpaired, monkeypatch):
    """degrade_dataset hands the readable source photos and their digest to the workers' spec: a
    worker's load then reads and hashes nothing in the folder, and describes the same degrader."""
    import realsr.degrade.learned as learned

    _, src = unpaired
    first = learned.load_network_degrader(LearnedSpec("network", str(network_file), 4, "cpu", 0, source=str(src)))

    def no_reading(*a, **k):
        raise AssertionError("the source folder was read again")

    monkeypatch.setattr(learned, "usable_sources", no_reading)
    monkeypatch.setattr(learned, "source_digest", no_reading)
    again = learned.load_network_degrader(LearnedSpec(
        "network", str(network_file), 4, "cpu", 0, source=str(src),
        source_files=tuple(str(f) for f in first.sources), source_sha256=first.sources_sha256))
    assert again.describe() == first.describe() and again.sources == first.sources
