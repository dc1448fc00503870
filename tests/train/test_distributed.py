"""DDP through torchrun with 2 gloo processes on the CPU: the averaged gradients equal one
process's with the doubled batch (the same samples), and rank 0's run equals the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from realsr.train.config import from_dict
from realsr.train.trainer import Trainer
from realsr.train.weights import read_safetensors


WORKER = r'''
import json, sys, torch
from realsr.train.config import from_dict
from realsr.train.trainer import Trainer
cfg = from_dict(json.loads(sys.argv[1]))
t = Trainer(cfg, sys.argv[2])
assert t.world == 2
stream = t.batches(0)
t.forward_backward(next(stream), 0, 0)
if t.main:
    torch.save({n: p.grad for n, p in t.G.named_parameters()}, sys.argv[3])
t.run()
t.close()
# close() hands back the DDP wrappers (each holds the process group, compiled or not) before
# destroying the group
import torch.distributed as dist
from realsr.train.trainer import holds_ddp
assert not dist.is_initialized()
assert not [n for h in (t, t.method, t.cycle) if h is not None for n, v in vars(h).items() if holds_ddp(v)]
'''


def _grads_single(cfg, run: Path) -> dict[str, torch.Tensor]:
    t = Trainer(cfg, run)
    t.forward_backward(next(t.batches(0)), 0, 0)
    grads = {n: p.grad.clone() for n, p in t.G.named_parameters()}
    t.run()
    return grads


def test_two_gloo_processes_match_one_process(tmp_path, kit):
    pairs = kit.block_pairs(tmp_path / "pairs")
    vgg = tmp_path / "vgg.pth"
    from realsr.train.vgg import vgg19_features

    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in vgg19_features(4).state_dict().items()}, vgg)
    tree = kit.tiny(pairs, optim={"iterations": 3}, log={"save_every": 3},
                losses={"pixel": {"weight": 1.0}, "tv": {"weight": 0.01},
                        "perceptual": {"weight": 0.1, "layers": {"conv1_2": 1.0}, "vgg_weights": str(vgg)}})
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), json.dumps(tree), str(tmp_path / "ddp"), str(tmp_path / "grads.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    one = _grads_single(from_dict(tree), tmp_path / "one")
    for n, g in one.items():
        assert (ddp_grads[n] - g).abs().max() <= 1e-4 * g.abs().max() + 1e-9, n
    # rank 0 logged and saved; the losses (averaged over processes) and weights equal the single run's
    a, b = kit.losses_of(tmp_path / "ddp"), kit.losses_of(tmp_path / "one")
    assert [i for i, _ in a] == [1, 2, 3]
    for (_, la), (_, lb) in zip(a, b):
        for k in lb:
            assert abs(la[k] - lb[k]) <= 1e-4 * abs(lb[k]) + 1e-7, k
    wa, _ = read_safetensors(tmp_path / "ddp" / "model.safetensors")
    wb, _ = read_safetensors(tmp_path / "one" / "model.safetensors")
    for k in wb:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    assert len(list((tmp_path / "ddp" / "checkpoints").glob("iter_*.pt"))) == 1


RUN_ONLY = r'''
import json, sys
from realsr.train.config import from_dict
from realsr.train.trainer import Trainer
t = Trainer(from_dict(json.loads(sys.argv[1])), sys.argv[2])
assert t.world == 2
t.run()
t.close()
# close() hands back the DDP wrappers (each holds the process group, compiled or not) before
# destroying the group
import torch.distributed as dist
from realsr.train.trainer import holds_ddp
assert not dist.is_initialized()
assert not [n for h in (t, t.method, t.cycle) if h is not None for n, v in vars(h).items() if holds_ddp(v)]
'''


def _two_processes_match_one(tmp_path: Path, tree: dict, kit, terms: tuple[str, ...], files: tuple[str, ...],
                             atol: float, ddp_tree: dict | None = None, script_text: str = RUN_ONLY) -> None:
    """``ddp_tree`` (default ``tree``) trained by torchrun with 2 gloo processes (``script_text``) and
    ``tree`` by one process: the named loss terms agree (relative 1e-4 plus ``atol``) and so do the
    weights in ``files``."""
    script = tmp_path / "worker.py"
    script.write_text(script_text)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), json.dumps(ddp_tree or tree), str(tmp_path / "ddp")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    Trainer(from_dict(tree), tmp_path / "one", progress=False).run()
    a, b = kit.losses_of(tmp_path / "ddp"), kit.losses_of(tmp_path / "one")
    assert len(a) == len(b) > 0
    for (_, la), (_, lb) in zip(a, b):
        for k in terms:
            assert abs(la[k] - lb[k]) <= 1e-4 * abs(lb[k]) + atol, k
    for f in files:
        wa, _ = read_safetensors(tmp_path / "ddp" / f)
        wb, _ = read_safetensors(tmp_path / "one" / f)
        for k in wb:
            assert torch.allclose(wa[k], wb[k], atol=1e-5), (f, k)


def test_d2c_under_two_gloo_processes_matches_one_process(tmp_path, kit):
    """D2C-SR wraps its two networks in DDP separately; with the divergence weight at 0 (its
    batch standardisation is per process, as in the official multi-GPU code) two processes with
    half batches train the same weights as one process."""
    pairs = kit.block_pairs(tmp_path / "pairs")
    tree = kit.tiny(pairs, method="d2c", optim={"iterations": 3, "ema": 0}, log={"save_every": 3},
                    model={"arch": "d2csr", "args": {"num_feat": 8, "num_group": 1, "num_block": 1, "reduction": 4}},
                    losses={"pixel": {"kind": "l2", "weight": 1.0}}, d2c={"weight": 0.0})
    _two_processes_match_one(tmp_path, tree, kit, ("branches", "convergence"), ("model.safetensors",), 1e-7)


def test_ddnsr_under_two_gloo_processes_matches_one_process(tmp_path, kit):
    """DDNSR wraps R, the degradation network and D_down in DDP separately (R runs twice per
    micro-batch, once without gradients); with D_down's batch norm in ``inference`` mode (batch
    statistics are per process) two processes with half batches train the same networks."""
    import numpy as np

    from realsr.images import write_png
    from realsr.synthetic import synthetic_scene

    hr, src = tmp_path / "hr", tmp_path / "src"
    hr.mkdir()
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(hr / f"h{i}.png", synthetic_scene(64, 64, seed=i))
        write_png(src / f"s{i}.png", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    tree = kit.tiny(hr, method="ddnsr", optim={"iterations": 3, "ema": 0}, log={"save_every": 3},
                    losses={"pixel": {"kind": "l2", "weight": 1.0}},
                    ddnsr={"source": str(src), "features": "pixel", "network": {"nf": 8, "blocks": 1},
                           "discriminator_args": {"num_feat": 8, "batch_norm": "inference"}})
    tree["data"]["rotate"] = False
    _two_processes_match_one(tmp_path, tree, kit, ("pixel", "content_down", "cycle_down", "adv_down", "d_down"),
                             ("model.safetensors", "degradation.safetensors"), 1e-6)


def test_compiled_ddp_under_two_gloo_processes_matches_one_plain_process(tmp_path, kit):
    """engine.compile in a distributed run compiles the DDP-wrapped G and D (PyTorch's order: the
    compiled graph is split at DDP's gradient buckets); traced with the aot_eager backend and with
    gradient accumulation (DDP's no_sync through the compiled wrapper), two such processes train
    what one plain process trains, and close() hands back the compiled wrappers."""
    pairs = kit.block_pairs(tmp_path / "pairs")
    tree = kit.tiny(pairs, optim={"iterations": 3, "ema": 0, "accumulate": 2}, log={"save_every": 3},
                    discriminator={"arch": "patchgan", "args": {"ndf": 8, "n_layers": 1, "norm": "none"}},
                    losses={"pixel": {"weight": 1.0}, "gan": {"weight": 0.01, "kind": "lsgan"}})
    # (per-sample GAN terms and no batch norm: RaGAN's batch means and batch statistics are per process)
    compiled = {**tree, "engine": {**tree.get("engine", {}), "compile": True, "compile_backend": "aot_eager"}}
    # the wrappers are compile(DDP(m)), not DDP(compile(m)); a comm hook counts G's bucket all-reduces:
    # one backward's worth per iteration, i.e. none for the first micro-batch (no_sync through the
    # compiled wrapper; the averaged gradients alone could not tell, the all-reduce being linear)
    wrapped = ("t = Trainer(from_dict(json.loads(sys.argv[1])), sys.argv[2])\n"
               "import torch\n"
               "from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook\n"
               "for m in (t.G_train, t.D_train):\n"
               "    assert isinstance(m, torch._dynamo.eval_frame.OptimizedModule), type(m)\n"
               "    assert isinstance(m._orig_mod, torch.nn.parallel.DistributedDataParallel), type(m._orig_mod)\n"
               "calls = []\n"
               "def hook(state, bucket):\n"
               "    calls.append(1)\n"
               "    return allreduce_hook(state, bucket)\n"
               "t.G_train._orig_mod.register_comm_hook(None, hook)\n")
    wrapped_end = "assert len(calls) == 3, len(calls)  # 3 iterations; the tiny G fits in one 25 MB bucket\n"
    script = RUN_ONLY.replace("t = Trainer(from_dict(json.loads(sys.argv[1])), sys.argv[2])\n", wrapped).replace(
        "t.run()\n", "t.run()\n" + wrapped_end)
    _two_processes_match_one(tmp_path, tree, kit, ("pixel", "gan", "d", "d_real", "d_fake"), ("model.safetensors",),
                             1e-6, ddp_tree=compiled, script_text=script)
    assert [i for i, _ in kit.losses_of(tmp_path / "ddp")] == [1, 2, 3]
    wa, _ = read_safetensors(tmp_path / "ddp" / "model.safetensors")
    assert not any("_orig_mod" in k or k.startswith("module.") for k in wa)
