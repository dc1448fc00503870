"""The training engine: data order, EMA, schedules, resume equality, NaN stop, full disk, bad input."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from realsr.errors import UsageError
from realsr.images import write_png
from realsr.train import checkpoint as ckpt
from realsr.train.config import from_dict
from realsr.train.data import CropDataset, SampleOrder, load_items
from realsr.train.trainer import Trainer, TrainingError, ema_update, lr_factor
from realsr.train.weights import read_safetensors


# ------------------------------------------------------------------------------------- data
def test_sample_order_splits_the_same_samples_over_processes():
    one = SampleOrder(8, 2, 0, 1, start_iteration=5)
    it1 = iter(one)
    single = [next(it1) for _ in range(4)]  # iterations 5 and 6, two micro-batches each
    assert single[0] == list(range(40, 44)) and single[2] == list(range(48, 52))
    ranks = [iter(SampleOrder(8, 2, r, 2, start_iteration=5)) for r in range(2)]
    per = [[next(r) for _ in range(4)] for r in ranks]
    for k in range(4):
        assert sorted(per[0][k] + per[1][k]) == single[k]
    with pytest.raises(UsageError, match="multiple of optim.accumulate x processes"):
        SampleOrder(6, 2, 0, 2)


def test_crops_are_aligned_and_deterministic(pairs):
    items = load_items(pairs, 4, 32, paired=True, in_memory=True)
    ds = CropDataset(items, 4, 32, seed=1)
    seen = set()
    for g in range(40):
        s = ds[g]
        assert s["hr"].shape == (3, 32, 32) and s["lr"].shape == (3, 8, 8) and s["hr"].dtype == torch.float32
        assert torch.equal(s["lr"], s["hr"][:, ::4, ::4])
        assert torch.equal(ds[g]["hr"], s["hr"])  # same g, same sample
        seen.add(ds.image_index(g))
    assert seen == {0, 1, 2}
    # every epoch visits every image once
    assert sorted(ds.image_index(g) for g in range(3, 6)) == [0, 1, 2]
    lazy = CropDataset(load_items(pairs, 4, 32, paired=True, in_memory=False), 4, 32, seed=1)
    assert torch.equal(lazy[7]["hr"], ds[7]["hr"])


def test_bad_training_data(tmp_path, pairs, kit):
    with pytest.raises(UsageError, match="training data folder not found"):
        load_items(tmp_path / "missing", 4, 32, True, True)
    with pytest.raises(UsageError, match=r"scale mismatch: the training data is x4 .* scale is 2"):
        load_items(pairs, 2, 32, True, True)
    with pytest.raises(UsageError, match="needs HR/ and LR/"):
        load_items(pairs / "HR", 4, 32, True, True)
    # wrong-size pair without a manifest
    bad = kit.block_pairs(tmp_path / "bad", n=1)
    (bad / "manifest.json").unlink()
    write_png(bad / "HR" / "p0.png", np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(UsageError, match="scale mismatch in pair p0"):
        load_items(bad, 4, 32, True, True)
    # unreadable and too-small images are skipped, the rest used
    mixed = kit.block_pairs(tmp_path / "mixed", n=2)
    (mixed / "LR" / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_png(mixed / "LR" / "tiny.png", np.zeros((4, 4, 3), np.uint8))
    write_png(mixed / "HR" / "tiny.png", np.zeros((16, 16, 3), np.uint8))
    assert [i.name for i in load_items(mixed, 4, 32, True, True)] == ["p0"]
    with pytest.raises(UsageError, match="no usable training images"):
        load_items(mixed, 4, 512, True, True)


# ------------------------------------------------------------------------------ small pieces
def test_ema_update_rule():
    torch.manual_seed(0)
    model, ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in ema.parameters()]
    ema_update(ema, model, 0.9)
    for b, p, e in zip(before, model.parameters(), ema.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p.detach(), atol=1e-7)


def test_lr_schedules():
    c = from_dict({"optim": {"iterations": 100, "schedule": {"type": "multistep", "milestones": [10, 20], "gamma": 0.5, "warmup": 4}}})
    assert [lr_factor(i, c) for i in (0, 3, 4, 9, 10, 19, 20, 99)] == [0.25, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    c = from_dict({"optim": {"iterations": 100, "schedule": {"type": "cosine", "eta_min": 0.1}}})
    assert lr_factor(0, c) == pytest.approx(1.0) and lr_factor(100, c) == pytest.approx(0.1)
    assert lr_factor(50, c) == pytest.approx(0.1 + 0.9 * 0.5)


# ------------------------------------------------------------------------------- the engine
def _vgg_file(tmp: Path) -> Path:
    from realsr.train.vgg import vgg19_features

    torch.manual_seed(0)
    path = tmp / "vgg19_random.pth"
    torch.save({f"features.{k}": v for k, v in vgg19_features(9).state_dict().items()}, path)
    return path


def test_resume_after_a_kill_continues_exactly(tmp_path, pairs, kit):
    """GAN + perceptual + EMA + multistep: a run killed in iteration 5 and resumed from its
    iteration-3 checkpoint logs the same losses and ends with the same weights as one that never stopped."""
    vgg = _vgg_file(tmp_path)
    tree = kit.tiny(pairs, discriminator={"arch": "patchgan", "args": {"ndf": 8, "n_layers": 2}},
                losses={"pixel": {"weight": 0.5}, "perceptual": {"weight": 0.1, "layers": {"relu2_2": 1.0}, "vgg_weights": str(vgg)},
                        "gan": {"weight": 0.01, "kind": "ragan"}, "tv": {"weight": 0.01}})
    cfg = from_dict(tree)
    Trainer(cfg, tmp_path / "a").run()

    kit.run_killed_at(Trainer(cfg, tmp_path / "b"), 4)
    assert [i for i, _ in ckpt.list_checkpoints(tmp_path / "b" / "checkpoints")] == [3]
    with pytest.raises(UsageError, match="already holds a run"):
        Trainer(cfg, tmp_path / "b")
    Trainer(cfg, tmp_path / "b", resume=True).run()

    a, b = kit.losses_of(tmp_path / "a"), kit.losses_of(tmp_path / "b")
    assert [i for i, _ in b] == [1, 2, 3, 4, 5, 6]
    assert a == b
    assert set(a[0][1]) >= {"pixel", "perceptual", "gan", "tv", "d", "d_real", "d_fake"}
    wa, _ = read_safetensors(tmp_path / "a" / "model.safetensors")
    wb, meta = read_safetensors(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads(meta["extra"])["iteration"] == 6 and meta["arch"] == "rrdbnet"
    # the checkpoint holds everything a resume needs and loads with weights_only
    st = ckpt.read_checkpoint(ckpt.list_checkpoints(tmp_path / "b" / "checkpoints")[-1][1])
    assert {"generator", "ema", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d", "scaler", "rng"} <= set(st)
    assert (tmp_path / "b" / "curves.png").is_file()


def test_nan_stops_with_the_term_and_iteration(tmp_path, pairs, monkeypatch, kit):
    import realsr.train.trainer as tr

    real = tr.pixel_loss
    calls = {"n": 0}

    def sometimes_nan(a, b, kind="l1"):
        calls["n"] += 1
        v = real(a, b, kind)
        return v * float("nan") if calls["n"] == 2 else v

    monkeypatch.setattr(tr, "pixel_loss", sometimes_nan)
    cfg = from_dict(kit.tiny(pairs, log={"every": 4, "save_every": 100}))
    with pytest.raises(TrainingError, match=r"loss term 'pixel' is nan at iteration 2"):
        Trainer(cfg, tmp_path / "run").run()
    assert not ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")  # nothing non-finite saved


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, pairs, monkeypatch, kit):
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    cfg = from_dict(kit.tiny(pairs))
    with pytest.raises(OSError, match="No space left"):
        Trainer(cfg, tmp_path / "run").run()
    folder = tmp_path / "run" / "checkpoints"
    assert [i for i, _ in ckpt.list_checkpoints(folder)] == [3]
    assert ckpt.read_checkpoint(folder / "iter_00000003.pt")["iteration"] == 3
    assert not [p for p in folder.iterdir() if p.name.startswith(".realsr-tmp-")]
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    assert Trainer(cfg, tmp_path / "run", resume=True).run()["iteration"] == 6


def test_damaged_newest_checkpoint_falls_back(tmp_path, pairs, kit):
    cfg = from_dict(kit.tiny(pairs, log={"keep": 3}))
    Trainer(cfg, tmp_path / "run").run()
    (tmp_path / "run" / "checkpoints" / "iter_00000006.pt").write_bytes(b"truncated")
    t = Trainer(cfg, tmp_path / "run", resume=True)
    assert t.iteration == 3


def test_missing_data_and_nothing_to_resume(tmp_path, pairs, kit):
    with pytest.raises(UsageError, match="training data folder not found"):
        Trainer(from_dict(kit.tiny(tmp_path / "nowhere")), tmp_path / "r1")
    with pytest.raises(UsageError, match="nothing to resume"):
        Trainer(from_dict(kit.tiny(pairs)), tmp_path / "r2", resume=True)
    with pytest.raises(UsageError, match="no training data"):
        Trainer(from_dict(kit.tiny(pairs, data={"train": None})), tmp_path / "r3")


def test_accumulation_equals_the_whole_batch(tmp_path, pairs, kit):
    """Two micro-batches of 2 give the gradient of one batch of 4 (same samples)."""
    grads = []
    for acc in (1, 2):
        t = Trainer(from_dict(kit.tiny(pairs, optim={"accumulate": acc})), tmp_path / f"acc{acc}")
        stream = t.batches(0)
        for a in range(acc):
            t.forward_backward(next(stream), 0, a)
        grads.append({n: p.grad.clone() for n, p in t.G.named_parameters()})
    for n in grads[0]:
        a, b = grads[0][n], grads[1][n]
        assert (a - b).abs().max() <= 1e-4 * a.abs().max(), n  # float32 summation order only


def test_cosine_restarts_like_basicsr():
    c = from_dict({"optim": {"iterations": 40, "schedule": {"type": "cosine", "eta_min": 0.0, "periods": [10, 30],
                                                             "restart_weights": [1.0, 0.5]}}})
    assert lr_factor(0, c) == pytest.approx(1.0) and lr_factor(5, c) == pytest.approx(0.5)
    assert lr_factor(10, c) == pytest.approx(0.5)  # restart at half height
    assert lr_factor(25, c) == pytest.approx(0.25) and lr_factor(40, c) == pytest.approx(0.0)
    with pytest.raises(UsageError, match="one weight per period"):
        from_dict({"optim": {"schedule": {"type": "cosine", "periods": [5, 5], "restart_weights": [1]}}})


def test_noise_added_twice_is_refused():
    with pytest.raises(UsageError, match="added twice"):
        from_dict({"data": {"noise_pool": "P", "degradation": {"mode": "pool", "pool": "P"}}})


def test_init_from_another_scale_needs_non_strict(tmp_path, pairs, kit):
    from realsr.train.model_files import save_model
    from realsr.train.models import build

    torch.manual_seed(5)
    x2 = build("rrdbnet", scale=2, nf=8, nb=1, gc=4)
    save_model(tmp_path / "x2.safetensors", x2)
    with pytest.raises(UsageError, match="x2"):
        Trainer(from_dict(kit.tiny(pairs, model={"init": str(tmp_path / "x2.safetensors")})), tmp_path / "strict")
    t = Trainer(from_dict(kit.tiny(pairs, model={"init": str(tmp_path / "x2.safetensors"), "init_strict": False})),
                tmp_path / "loose")
    own, src = t.G.state_dict(), x2.state_dict()
    assert torch.equal(own["conv_body.weight"], src["conv_body.weight"])
    assert own["conv_first.weight"].shape != src["conv_first.weight"].shape  # x2 unshuffles its input
    # and a training checkpoint initialises a new run with its EMA weights
    cfg = from_dict(kit.tiny(pairs, optim={"iterations": 3}))
    Trainer(cfg, tmp_path / "first").run()
    c = ckpt.list_checkpoints(tmp_path / "first" / "checkpoints")[-1][1]
    t2 = Trainer(from_dict(kit.tiny(pairs, model={"init": str(c)})), tmp_path / "second")
    ema = ckpt.read_checkpoint(c)["ema"]
    assert all(torch.equal(t2.G.state_dict()[k], ema[k]) for k in ema)


def test_validation_keeps_best_and_writes_samples(tmp_path, pairs, kit):
    cfg = from_dict(kit.tiny(pairs, data={"val": str(pairs), "val_crop": 48}, log={"val_every": 3, "samples": 2}))
    res = Trainer(cfg, tmp_path / "run").run()
    recs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    vals = [r for r in recs if "val" in r]
    assert [r["iteration"] for r in vals] == [3, 6]
    v = vals[-1]["val"]
    assert v["images"] == 3 and 0 < v["ssim"] <= 1 and math.isfinite(v["psnr"]) and math.isfinite(v["psnr_bicubic"])
    assert res["best"]["psnr"] == max(r["val"]["psnr"] for r in vals)
    assert (tmp_path / "run" / "model_best.safetensors").is_file()
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert samples == ["00000003_p0.png", "00000003_p1.png", "00000006_p0.png", "00000006_p1.png"]
    from realsr.images import read_image

    assert read_image(tmp_path / "run" / "samples" / samples[0]).shape == (48, 3 * 48, 3)  # bicubic | SR | HR


def test_subimages_cut_aligned_pairs_and_train_from_disk(tmp_path, pairs, kit):
    from realsr.images import read_image
    from realsr.train.subimages import crop_positions, extract_subimages

    assert crop_positions(100, 48, 24) == [0, 24, 48, 52]
    assert crop_positions(100, 48, 24, min_rest=4) == [0, 24, 48]
    assert crop_positions(40, 48, 24) == []
    (pairs_bad := kit.block_pairs(tmp_path / "src", n=2))
    (pairs_bad / "LR" / "p1.png").write_bytes(b"garbage")
    man = extract_subimages(pairs_bad, tmp_path / "sub", 4, crop=48, step=24)
    ok = [e for e in man.pairs.values() if e["status"] == "ok"]
    assert len(ok) == 9 and man.pairs["p1"]["status"] == "failed"  # p0: 96x96 HR -> 3x3 crops
    for e in ok:
        hr = read_image(tmp_path / "sub" / "HR" / f"{e['name']}.png")
        lr = read_image(tmp_path / "sub" / "LR" / f"{e['name']}.png")
        assert hr.shape == (48, 48, 3) and (lr == hr[::4, ::4]).all()
    again = extract_subimages(pairs_bad, tmp_path / "sub", 4, crop=48, step=24)  # resumes, same result
    assert again.pairs.keys() == man.pairs.keys()
    with pytest.raises(UsageError, match="other settings"):
        extract_subimages(pairs_bad, tmp_path / "sub", 4, crop=48, step=48)
    cfg = from_dict(kit.tiny(tmp_path / "sub", data={"in_memory": False}, optim={"iterations": 2}))
    assert Trainer(cfg, tmp_path / "run").run()["iteration"] == 2


def test_on_the_fly_degradation_and_noise_injection(tmp_path, pairs, kit):
    """HR-only training data degraded on the device: bicubic equals MATLAB imresize of the crop;
    the pool mode blurs with the pool kernel and adds its zero-mean noise; draws repeat per key."""
    from realsr.degrade import ops
    from realsr.degrade.kernels import gaussian_kernel, shift_to_convention
    from realsr.degrade.pool import write_synthetic_pool
    from realsr.train.data import NoiseInjection, OnlineDegradation

    pool = tmp_path / "pool"
    k = shift_to_convention(gaussian_kernel(13, 1.5), 4)
    write_synthetic_pool(pool, k, n_noise=2, noise_size=64, sigma=4.0)
    hr = torch.rand(3, 3, 32, 32)
    bic = OnlineDegradation("bicubic", 4, 0, torch.device("cpu"), quantize=False)(hr, (0, 0, 0))
    assert torch.allclose(bic, ops.resize(hr, (8, 8), "bicubic", True).clamp(0, 1))
    deg = OnlineDegradation("pool", 4, 0, torch.device("cpu"), pool=str(pool), quantize=False)
    a, b, c = deg(hr, (1, 0, 0)), deg(hr, (1, 0, 0)), deg(hr, (2, 0, 0))
    assert torch.equal(a, b) and not torch.equal(a, c)
    clean = ops.blur_downsample(hr, np.stack([k] * 3).astype(np.float64), 4)
    noise = (a - clean)[:, :, 1:-1, 1:-1]  # away from the clamp at 0/1 only by chance; check the spread
    assert 2.0 / 255 < float(noise.std()) < 6.0 / 255
    assert float(noise.mean(dim=(2, 3)).abs().max()) < 1.5 / 255
    noisy = NoiseInjection(str(pool), 0, torch.device("cpu"))(torch.full((2, 3, 8, 8), 0.5), (0, 0, 0))
    assert torch.allclose(noisy.mean(dim=(2, 3)), torch.full((2, 3), 0.5), atol=1e-6)  # zero-mean per channel
    with pytest.raises(UsageError, match="scale mismatch: the pool is x4"):
        OnlineDegradation("pool", 2, 0, torch.device("cpu"), pool=str(pool))
    with pytest.raises(UsageError, match="data.degradation.params"):
        OnlineDegradation("classic", 4, 0, torch.device("cpu"), params={"sigma": [3, 1]})
    # highorder params are checked as realsr degrade --highorder-config checks them (one shared method)
    for bad, msg in (({"first": 5}, "first must be a mapping of keys, got int 5"),
                     ({"second_stage_prob": "abc"}, "second_stage_prob: expected a number, got 'abc'")):
        with pytest.raises(UsageError, match=f"config data.degradation.params: {msg}"):
            OnlineDegradation("highorder", 4, 0, torch.device("cpu"), params=bad)
    # the trainer runs on an HR folder with each mode
    for mode in ("pool", "classic", "highorder", "bicubic"):
        deg_cfg = {"mode": mode, "pool": str(pool) if mode == "pool" else None}
        data = {"train": str(pairs / "HR"), "degradation": deg_cfg, "noise_pool": None if mode == "pool" else str(pool)}
        cfg = from_dict(kit.tiny(pairs, data=data, optim={"iterations": 2}))
        assert Trainer(cfg, tmp_path / f"run_{mode}").run()["iteration"] == 2, mode


def test_resume_applies_changed_optimiser_settings(tmp_path, pairs, kit, caplog):
    cfg = from_dict(kit.tiny(pairs, optim={"iterations": 3}))
    Trainer(cfg, tmp_path / "run").run()
    lower = from_dict(kit.tiny(pairs, optim={"iterations": 6, "generator": {"lr": 1e-6, "betas": [0.8, 0.99]}}))
    with caplog.at_level("WARNING", logger="realsr"):
        t = Trainer(lower, tmp_path / "run", resume=True)
    # named as in the config, with the old and the new value
    assert ("resumed with changed optimiser settings: optim.generator.betas: [0.9, 0.99] -> [0.8, 0.99], "
            "optim.generator.lr: 0.0002 -> 1e-06") in caplog.text
    # iteration 3 is past the milestone at 3: factor 0.5
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(0.5e-6) and t.sched_g.base_lrs == [1e-6]
    t.run()
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(0.5e-6)
    # a checkpoint whose optimiser state lacks a setting (an older writer): named as not recorded
    from realsr.train import checkpoint as ckpt

    st, path = ckpt.latest_checkpoint(tmp_path / "run" / "checkpoints")
    for g in st["opt_g"]["param_groups"]:
        del g["weight_decay"]
    torch.save(st, path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="realsr"):
        Trainer(from_dict(kit.tiny(pairs, optim={"iterations": 6, "generator": {"lr": 1e-6, "betas": [0.8, 0.99]}})),
                tmp_path / "run", resume=True)
    assert "resumed with changed optimiser settings: optim.generator.weight_decay: (not recorded) -> 0" in caplog.text


def test_a_bad_new_run_leaves_the_old_one_alone(tmp_path, pairs, kit):
    cfg = from_dict(kit.tiny(pairs, optim={"iterations": 3}))
    Trainer(cfg, tmp_path / "run").run()
    before = sorted(p.name for p in (tmp_path / "run").rglob("*"))
    with pytest.raises(UsageError, match="training data folder not found"):
        Trainer(from_dict(kit.tiny(tmp_path / "typo")), tmp_path / "run", overwrite=True)
    with pytest.raises(UsageError, match="training data folder not found"):
        Trainer(from_dict(kit.tiny(tmp_path / "typo")), tmp_path / "run", resume=True)
    assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == before
    assert "typo" not in (tmp_path / "run" / "config.yaml").read_text()


def test_settings_that_fail_only_with_data_are_checked_before_training(tmp_path, pairs, kit):
    vgg = kit.tiny(pairs, discriminator={"arch": "vgg128"}, losses={"gan": {"weight": 0.01}})
    with pytest.raises(UsageError, match="vgg128 discriminator takes 128x128 inputs but data.patch_size is 32"):
        Trainer(from_dict(vgg), tmp_path / "a")
    from realsr.degrade.kernels import gaussian_kernel
    from realsr.degrade.pool import write_synthetic_pool

    write_synthetic_pool(tmp_path / "pool", gaussian_kernel(13, 1.5), n_noise=1, noise_size=4)
    with pytest.raises(UsageError, match=r"smallest noise patch \(4 px\) is smaller than the LR crop \(8 px\)"):
        Trainer(from_dict(kit.tiny(pairs, data={"noise_pool": str(tmp_path / "pool")})), tmp_path / "b")
    with pytest.raises(UsageError, match="log.save_every must be >= 1"):
        from_dict(kit.tiny(pairs, log={"save_every": 0}))
    with pytest.raises(UsageError, match="data.val_crop"):
        from_dict(kit.tiny(pairs, data={"val_crop": 16}))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_nan_is_caught_before_validation(tmp_path, pairs, kit, monkeypatch):
    import realsr.train.trainer as tr

    real = tr.pixel_loss
    calls = {"n": 0}

    def sometimes_nan(a, b, kind="l1"):
        calls["n"] += 1
        return real(a, b, kind) * (float("nan") if calls["n"] == 2 else 1.0)

    monkeypatch.setattr(tr, "pixel_loss", sometimes_nan)
    cfg = from_dict(kit.tiny(pairs, data={"val": str(pairs)}, log={"every": 4, "val_every": 2, "save_every": 100}))
    with pytest.raises(TrainingError, match="at iteration 2"):
        Trainer(cfg, tmp_path / "run").run()
    assert not (tmp_path / "run" / "model_best.safetensors").exists()


def test_engine_options_reach_the_step(tmp_path, pairs, kit):
    """AdamW, gradient clipping, channels_last, charbonnier, hinge GAN with BasicSR's D gradient and
    a late GAN start: each is used, and the GAN terms appear only from optim.gan_start on."""
    tree = kit.tiny(pairs, discriminator={"arch": "patchgan", "args": {"ndf": 8, "n_layers": 1}},
                    losses={"pixel": {"kind": "charbonnier"}, "gan": {"weight": 0.01, "kind": "hinge", "d_detach_means": True}},
                    optim={"iterations": 3, "gan_start": 1, "grad_clip": 1e-3,
                           "generator": {"type": "adamw", "weight_decay": 0.01}},
                    engine={"channels_last": "on"})
    t = Trainer(from_dict(tree), tmp_path / "run")
    assert isinstance(t.opt_g, torch.optim.AdamW) and t.opt_g.param_groups[0]["weight_decay"] == 0.01
    assert t.G.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    stream = t.batches(0)
    t.forward_backward(next(stream), 0, 0)
    t._step(t.opt_g, t.G.parameters())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in t.G.parameters()]))
    assert norm <= 1e-3 * 1.001
    t.run()
    steps = kit.losses_of(tmp_path / "run")
    assert "gan" not in steps[0][1] and "d" not in steps[0][1]
    assert {"gan", "d"} <= set(steps[1][1]) and {"gan", "d"} <= set(steps[2][1])


def test_smaller_options_are_used(tmp_path, pairs, kit, caplog, monkeypatch):
    """No flips/rotations keeps crops in source orientation; val_images limits validation; a
    CUDA-only precision on the CPU warns; deterministic mode switches torch's global flag."""
    from realsr.images import read_image

    items = load_items(pairs, 4, 32, paired=True, in_memory=True)
    ds = CropDataset(items, 4, 32, seed=1, flip=False, rotate=False)
    for g in range(6):
        s = ds[g]
        src = read_image(pairs / "HR" / f"{items[ds.image_index(g)].name}.png")
        crop = (s["hr"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        found = any(np.array_equal(crop, src[y:y + 32, x:x + 32])
                    for y in range(0, src.shape[0] - 31, 4) for x in range(0, src.shape[1] - 31, 4))
        assert found, g
    was = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        cfg = from_dict(kit.tiny(pairs, data={"val": str(pairs), "val_images": 2}, optim={"iterations": 1},
                                 engine={"precision": "bf16", "deterministic": True}))
        with caplog.at_level("WARNING", logger="realsr.train"):
            t = Trainer(cfg, tmp_path / "run")
        assert "applies on CUDA only" in caplog.text and torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        t.run()
    finally:
        torch.use_deterministic_algorithms(was[0])
        torch.backends.cudnn.deterministic = was[1]
    v = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert v[-1]["val"]["images"] == 2


def test_mixup_mixes_hr_and_lr_alike_and_is_keyed(pairs, kit, tmp_path):
    cfg = from_dict(kit.tiny(pairs, data={"mixup": {"prob": 1.0, "alpha": 1.2}}))
    tr = Trainer(cfg, tmp_path / "r", progress=False)
    lr = torch.rand(4, 3, 8, 8)
    hr = lr.repeat_interleave(4, 2).repeat_interleave(4, 3)
    a_lr, a_hr = tr._mixup(lr, hr, (0, 0, 0))
    b_lr, b_hr = tr._mixup(lr, hr, (0, 0, 0))
    assert torch.equal(a_lr, b_lr) and torch.equal(a_hr, b_hr)
    assert not torch.equal(a_lr, lr)
    assert torch.allclose(a_hr[:, :, ::4, ::4], a_lr, atol=1e-6)  # one lambda and one permutation for both
    # a convex mix: lam * x + (1 - lam) * x[perm] for some lam in (0, 1) and permutation
    c_lr, _ = tr._mixup(lr, hr, (1, 0, 0))
    assert not torch.equal(c_lr, a_lr)
    off = Trainer(from_dict(kit.tiny(pairs)), tmp_path / "o", progress=False)
    assert off._mixup(lr, hr, (0, 0, 0))[0] is lr


def test_cycle_branch_trains_the_lr_side_and_resumes(pairs, kit, tmp_path):
    """SRResCycGAN's LR side: G_LR and D_y get their own steps, the cycle and LR-GAN terms are
    logged, and a resumed run continues exactly."""
    tree = kit.tiny(pairs, cycle={"weight": 10.0, "gan_weight": 1.0, "generator_args": {"nf": 8, "blocks": 1},
                                  "discriminator_args": {"ndf": 8, "n_layers": 1}})
    full = Trainer(from_dict(tree), tmp_path / "full", progress=False)
    g0 = [p.detach().clone() for p in full.cycle.G.parameters()]
    full.run()
    assert any(not torch.equal(a, b) for a, b in zip(g0, full.cycle.G.parameters()))
    part = Trainer(from_dict(tree, ["optim.iterations=3"]), tmp_path / "part", progress=False)
    part.run()
    Trainer(from_dict(tree), tmp_path / "part", resume=True, progress=False).run()
    a, b = kit.losses_of(tmp_path / "full"), kit.losses_of(tmp_path / "part")
    assert {"pixel", "cycle", "lr_gan", "lr_d"} <= set(a[0][1])
    for (_, x), (_, y) in zip(a, b):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-5, abs=1e-7), k
    from realsr.train.cycle import LRGenerator

    assert LRGenerator(4, nf=8, blocks=1)(torch.rand(2, 3, 16, 12)).shape == (2, 3, 4, 3)
    with pytest.raises(UsageError, match="power-of-2 scale"):
        LRGenerator(3)


def test_value_range_gradient_difference_tv_and_high_pass_reach_the_step(pairs, kit, tmp_path):
    """SRResCGAN's options on the engine: the losses see [0, value_range] (first-iteration terms
    scale by 255 from the same start), tv kind gradient_difference compares SR and HR gradients, and
    D gets the high-pass images."""
    from realsr.train.losses import high_pass

    first = {}
    for vr in (1.0, 255.0):
        tree = kit.tiny(pairs, losses={"pixel": {"weight": 1.0}, "tv": {"kind": "gradient_difference", "weight": 1.0},
                                       "gan": {"weight": 0.1}, "value_range": vr},
                        discriminator={"arch": "patchgan", "args": {"ndf": 8, "n_layers": 1}, "highpass": True},
                        optim={"iterations": 1})
        tr = Trainer(from_dict(tree), tmp_path / str(vr), progress=False)
        tr.run()
        first[vr] = kit.losses_of(tmp_path / str(vr))[0][1]
        x = torch.rand(1, 3, 16, 16)
        assert torch.equal(tr._d_input(x), high_pass(x))
    for k in ("pixel", "tv"):
        assert first[255.0][k] == pytest.approx(255 * first[1.0][k], rel=1e-4), k
    # the plain TV of the SR image is another number from the same start
    Trainer(from_dict(kit.tiny(pairs, losses={"tv": {"kind": "l1", "weight": 1.0}}, optim={"iterations": 1})),
            tmp_path / "plain", progress=False).run()
    plain = kit.losses_of(tmp_path / "plain")[0][1]
    assert first[1.0]["pixel"] == pytest.approx(plain["pixel"], rel=1e-6)
    assert abs(plain["tv"] - first[1.0]["tv"]) > 1e-3 * plain["tv"]


def test_ssim_and_ms_ssim_terms_are_trained_and_logged(pairs, kit, tmp_path):
    """losses.ssim / losses.ms_ssim (the SRResCycGAN AIM 2020 terms) are logged beside the pixel
    term, weighted, and take the same value on the [0, 255] scale (data range = value_range)."""
    first = {}
    for vr in (1.0, 255.0):
        tree = kit.tiny(pairs, losses={"value_range": vr, "ssim": {"weight": 2.0},
                                       "ms_ssim": {"weight": 3.0, "small_images": "shrink_window"}},
                        optim={"iterations": 2})
        Trainer(from_dict(tree), tmp_path / str(vr), progress=False).run()
        logged = kit.losses_of(tmp_path / str(vr))
        assert {"pixel", "ssim", "ms_ssim"} <= set(logged[0][1])
        first[vr] = logged[0][1]
        assert 0 < first[vr]["ssim"] <= 2 * 2.0 and 0 < first[vr]["ms_ssim"] <= 3.0
    for k in ("ssim", "ms_ssim"):
        assert first[255.0][k] == pytest.approx(first[1.0][k], rel=1e-4), k
    assert first[255.0]["pixel"] == pytest.approx(255 * first[1.0]["pixel"], rel=1e-4)


def test_tensorboard_events_survive_overwrite_and_resume(tmp_path, pairs, kit):
    """With TensorBoard installed, RUN/tensorboard holds every logged loss once: a run started again
    with ``overwrite`` writes fresh events (the clearing must not delete the new file), and a
    resumed run hides the steps the killed run logged after its checkpoint."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = from_dict(kit.tiny(pairs, log={"tensorboard": True}))

    def steps(run: Path) -> list[int]:
        acc = EventAccumulator(str(run / "tensorboard"))
        acc.Reload()
        return [e.step for e in acc.Scalars("loss/pixel")]

    Trainer(cfg, tmp_path / "a").run()
    assert steps(tmp_path / "a") == [1, 2, 3, 4, 5, 6]
    Trainer(cfg, tmp_path / "a", overwrite=True).run()
    assert steps(tmp_path / "a") == [1, 2, 3, 4, 5, 6]

    kit.run_killed_at(Trainer(cfg, tmp_path / "b"), 5)
    assert steps(tmp_path / "b") == [1, 2, 3, 4, 5]
    Trainer(cfg, tmp_path / "b", resume=True).run()
    assert steps(tmp_path / "b") == [1, 2, 3, 4, 5, 6]
    a = {e.step: e.value for e in EventAccumulator(str(tmp_path / "a" / "tensorboard")).Reload().Scalars("loss/pixel")}
    b = {e.step: e.value for e in EventAccumulator(str(tmp_path / "b" / "tensorboard")).Reload().Scalars("loss/pixel")}
    assert a == b


def test_compiled_runs_train_save_and_resume_like_plain_ones(tmp_path, pairs, kit, monkeypatch):
    """engine.compile wraps G and D in torch.compile (traced here with ``engine.compile_backend:
    aot_eager``: the same graph capture and autograd as on a GPU, without inductor's C++ build). The
    losses follow the plain run's, model files and checkpoints carry no wrapper prefixes, a compiled
    run killed at iteration 4 resumes to the same end, and a plain run resumes from a compiled run's
    checkpoint. A compile mode is for inductor only."""
    real = torch.compile
    calls = []

    def spy(model, **kw):
        calls.append((type(model).__name__, kw))
        return real(model, **kw)

    monkeypatch.setattr(torch, "compile", spy)
    torch._dynamo.reset()
    tree = kit.tiny(pairs, discriminator={"arch": "patchgan", "args": {"ndf": 8, "n_layers": 1}},
                    losses={"gan": {"weight": 0.01, "kind": "ragan"}}, data={"val": str(pairs)})
    Trainer(from_dict(tree), tmp_path / "plain").run()
    assert not calls
    compiled = from_dict({**tree, "engine": {"compile": True, "compile_backend": "aot_eager"}})
    Trainer(compiled, tmp_path / "c").run()
    assert calls == [("RRDBNet", {"backend": "aot_eager"}), ("NLayerDiscriminator", {"backend": "aot_eager"})]
    calls.clear()  # inductor gets the mode (recorded, not compiled: inductor's C++ build takes minutes here)
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append((type(model).__name__, kw)) or model)
    Trainer(from_dict({**tree, "engine": {"compile": True, "compile_mode": "max-autotune"}}), tmp_path / "i")
    assert calls == [(n, {"backend": "inductor", "mode": "max-autotune"}) for n in ("RRDBNet", "NLayerDiscriminator")]
    monkeypatch.setattr(torch, "compile", spy)
    with pytest.raises(UsageError, match="compile_mode reduce-overhead needs engine.compile_backend: inductor"):
        from_dict({**tree, "engine": {"compile": True, "compile_backend": "aot_eager", "compile_mode": "reduce-overhead"}})
    with pytest.raises(UsageError, match="engine.compile_backend: 'tvm' is not one of"):
        from_dict({**tree, "engine": {"compile_backend": "tvm"}})
    plain, comp = kit.losses_of(tmp_path / "plain"), kit.losses_of(tmp_path / "c")
    assert [i for i, _ in comp] == [1, 2, 3, 4, 5, 6]
    for (_, a), (_, b) in zip(plain, comp):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-6) for k in a)
    w, _ = read_safetensors(tmp_path / "c" / "model.safetensors")
    assert not any("_orig_mod" in k for k in w)
    st = ckpt.read_checkpoint(ckpt.list_checkpoints(tmp_path / "c" / "checkpoints")[-1][1])
    assert not any("_orig_mod" in k for part in ("generator", "discriminator") for k in st[part])

    kit.run_killed_at(Trainer(compiled, tmp_path / "k"), 4)
    Trainer(compiled, tmp_path / "k", resume=True).run()
    assert kit.losses_of(tmp_path / "k") == comp
    wk, _ = read_safetensors(tmp_path / "k" / "model.safetensors")
    assert all(torch.equal(w[k], wk[k]) for k in w)

    kit.run_killed_at(Trainer(compiled, tmp_path / "m"), 4)  # compiled checkpoint, plain resume
    Trainer(from_dict(tree), tmp_path / "m", resume=True).run()
    assert [i for i, _ in kit.losses_of(tmp_path / "m")] == [1, 2, 3, 4, 5, 6]


def test_noise_injection_on_pairs_that_already_carry_noise_is_warned(tmp_path, kit, caplog):
    """data.noise_pool on pairs that already carry noise (degrade noise steps, a learned degradation,
    real captures; sub-images judged by their source) adds noise twice: warned at start-up (the
    Impressionism recipe injects into clean LR); clean pairs and pairs with no manifest: silent."""
    import json

    from realsr.degrade.kernels import gaussian_kernel
    from realsr.degrade.pool import write_synthetic_pool
    from realsr.manifest import noisy_pairs

    pool = tmp_path / "pool"
    write_synthetic_pool(pool, gaussian_kernel(13, 1.5), n_noise=1, noise_size=16)
    pairs = kit.block_pairs(tmp_path / "pairs")
    manifest = pairs / "manifest.json"
    record = json.loads(manifest.read_text())
    names = sorted(p.stem for p in (pairs / "LR").glob("*.png"))
    n = len(names)
    record.update(stage="degrade", pairs=[
        {"name": nm, "status": "ok", "noise": [{"op": "pool_noise", "tiles": 1}] if i else None, "learned": None}
        for i, nm in enumerate(names)] + [{"name": "gone", "status": "failed", "noise": None}])
    manifest.write_text(json.dumps(record))
    assert noisy_pairs(pairs) == (n - 1, n, manifest)

    def warnings(folder, name, **data):
        caplog.clear()
        with caplog.at_level("WARNING", logger="realsr"):
            Trainer(from_dict(kit.tiny(folder, data=data, optim={"iterations": 1})), tmp_path / name)
        return [r.getMessage() for r in caplog.records if "already carry noise" in r.getMessage()]

    assert warnings(pairs, "a", noise_pool=str(pool)) == [
        f"{n - 1} of {n} pairs recorded in {manifest} already carry noise (noise steps, a learned degradation or "
        "real captures) and data.noise_pool adds real noise again; the Impressionism recipe injects it into clean "
        "LR (realsr degrade --mode pool --no-pool-noise)"]
    assert warnings(pairs, "b") == []  # no injection
    for e in record["pairs"]:
        e["noise"] = None
    manifest.write_text(json.dumps(record))
    assert noisy_pairs(pairs) == (0, n, manifest) and warnings(pairs, "c", noise_pool=str(pool)) == []
    record["pairs"][0]["learned"] = [{"model": "dsgan"}]  # a learned degradation is noisy too
    manifest.write_text(json.dumps(record))
    assert noisy_pairs(pairs) == (1, n, manifest)
    # sub-images are judged by the dataset they were cut from
    subs = kit.block_pairs(tmp_path / "subs")
    sub_record = json.loads((subs / "manifest.json").read_text())
    sub_record.update(stage="subimages", params={"source": str(pairs)},
                      pairs=[{"name": "s", "status": "ok", "source": names[0]}])
    (subs / "manifest.json").write_text(json.dumps(sub_record))
    assert noisy_pairs(subs) == (1, n, manifest)
    assert len(warnings(subs, "e", noise_pool=str(pool))) == 1
    # real captures carry their camera's noise
    record.update(stage="align")
    manifest.write_text(json.dumps(record))
    assert noisy_pairs(pairs) == (n, n, manifest)
    manifest.write_text("{broken")
    assert noisy_pairs(pairs) == (0, 0, None) and noisy_pairs(subs) == (0, 0, None)
    assert warnings(pairs, "d", noise_pool=str(pool)) == []
