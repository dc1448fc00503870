"""Training throughput: iterations per second of the Impressionism ESRGAN x4 recipe (METHODS.md 2b.6)
through the realsr engine (``realsr.train.trainer.Trainer``) and through a plain fp32 PyTorch loop, in
the same process on the same device.

The recipe: RRDBNet (23 blocks, 64 features, growth 32), batch 16 of LR 32x32 / HR 128x128 patches,
L1 x0.01 + VGG19 ``conv5_4`` (before ReLU) perceptual L1 x1 + RaGAN x0.005 with the ``vgg128``
discriminator, Adam 1e-4 (betas 0.9, 0.999) for G and D, no EMA: the values of
``examples/impressionism_esrgan_x4_track1.yaml``, without its online noise injection and initial
weights (random weights cost the same). One iteration = one generator step and one discriminator
step (ESRGAN's order: the D step sees the SR batch from before the G update).

- **engine**: a :class:`Trainer` built from a config tree on a temporary pair dataset (``--images``
  synthetic 256x256 HR scenes, their MATLAB-bicubic x4 LR, ``HR/`` + ``LR/`` + ``manifest.json``).
  Engine options come from the command line (``--precision``, ``--channels-last``, ``--compile``,
  ``--workers``, ``--gpu-degradation``: degrade HR crops on the device with ``data.degradation`` instead
  of reading the stored LR). Timed: ``Trainer.train_step`` on micro-batches pulled from
  ``Trainer.batches(0)`` (loader, crops, flips, host-to-device copies, degradation included). Not
  timed: ``Trainer.run``'s logging, NaN checks, validation and checkpoints.
- **plain**: a straightforward loop written here: the same networks (realsr's registry and
  discriminator builder) and realsr's VGG feature extractor, fp32, contiguous (NCHW) tensors, no
  compile, no data loading: ``--plain-batches`` batches of aligned random crops of the same pairs are
  made once and sit on the device; per iteration the ESRGAN G step (D frozen) then the D step.

Each loop first runs ``--warmup`` untimed iterations (torch.compile compiles there; reported as
``warmup_seconds``), then ``--rounds`` timed rounds of ``--iterations`` iterations, the two loops
taking turns in ABBA order so that drift on a shared machine hits both alike; it/s are totals over all
rounds, ``ratio_engine_over_plain`` is engine it/s over plain it/s.

Both use the perceptual loss with an *untrained* VGG19 (``vgg_weights: random``): the benchmark needs
no VGG file; the cost is the same as with the pretrained weights, the loss values mean nothing. On CUDA
the clock is read after ``torch.cuda.synchronize()``, and ``cudnn.benchmark`` is on for both loops
(the Trainer turns it on for the whole process; BasicSR's and mmsr's training scripts do too). With
``nvidia-smi`` on the path, a background thread samples ``utilization.gpu`` (every 0.2 s) during each
loop's timed rounds; the mean is reported per loop.

    python benchmarks/train_bench.py --device cpu --blocks 4 --batch 4 --iterations 5 --rounds 2 --warmup 2 --workers 1
    python benchmarks/train_bench.py --device cuda --precision bf16 --channels-last on --compile \\
        --gpu-degradation bicubic --workers 6            # the full recipe on a GPU
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

try:  # run as `python benchmarks/x.py` or as `python -m benchmarks.x`
    from machine import machine
except ImportError:
    from benchmarks.machine import machine
import torch.nn.functional as F
from realsr.train.config import from_dict
from realsr.train.infer import resolve_device
from realsr.train.models import build
from realsr.train.models.discriminators import build_discriminator
from realsr.train.vgg import VGGFeatures

from realsr.images import write_png
from realsr.resize import imresize
from realsr.synthetic import synthetic_scene

SCALE = 4
HR_SIZE = 256  # side of the synthetic HR images
BETAS = (0.9, 0.999)
LR_RATE = 1e-4
W_PIX, W_PERC, W_GAN = 0.01, 1.0, 0.005


# ----------------------------------------------------------------------------------------- data
def make_pairs(folder: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic HR scenes and their x4 MATLAB-bicubic LR, written as a realsr pair dataset."""
    for sub in ("HR", "LR"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        hr = synthetic_scene(HR_SIZE, HR_SIZE, seed=i)
        lr = imresize(hr, scale=1 / SCALE)
        write_png(folder / "HR" / f"p{i:03d}.png", hr)
        write_png(folder / "LR" / f"p{i:03d}.png", lr)
        pairs.append((hr, lr))
    (folder / "manifest.json").write_text(json.dumps(
        {"format": "realsr-pairs", "version": 1, "scale": SCALE, "pairs": []}))
    return pairs


def config_tree(args: argparse.Namespace, data: Path, total: int) -> dict:
    tree = {
        "name": "train_bench", "scale": SCALE, "seed": 0,
        "model": {"arch": "rrdbnet", "args": {"nf": args.features, "nb": args.blocks, "gc": 32}},
        "discriminator": {"arch": "vgg128", "args": {"num_feat": 64, "input_size": SCALE * args.lr_patch}},
        "data": {"train": str(data), "patch_size": SCALE * args.lr_patch, "batch_size": args.batch,
                 "flip": True, "rotate": True, "in_memory": True, "workers": args.workers,
                 "prefetch": args.prefetch},
        "losses": {"pixel": {"kind": "l1", "weight": W_PIX},
                   "perceptual": {"weight": W_PERC, "layers": {"conv5_4": 1.0}, "vgg_weights": "random",
                                  "criterion": "l1", "use_input_norm": True},
                   "gan": {"kind": "ragan", "weight": W_GAN}},
        "optim": {"iterations": total,
                  "generator": {"type": "adam", "lr": LR_RATE, "betas": list(BETAS)},
                  "discriminator": {"type": "adam", "lr": LR_RATE, "betas": list(BETAS)},
                  "schedule": {"type": "multistep", "milestones": [4999, 9999, 19999, 29999], "gamma": 0.5},
                  "ema": args.ema},
        "engine": {"device": args.device, "precision": args.precision, "channels_last": args.channels_last,
                   "compile": args.compile, "compile_mode": args.compile_mode, "deterministic": False},
        "log": {"progress": False, "tensorboard": False},
    }
    if args.gpu_degradation != "off":
        tree["data"]["degradation"] = {"mode": args.gpu_degradation}
    return tree


# -------------------------------------------------------------------------------- measurement aids
def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class GpuUtil:
    """Samples ``nvidia-smi --query-gpu=utilization.gpu`` in a background thread while active."""

    def __init__(self, dev: torch.device, interval: float = 0.2):
        self.dev, self.interval = dev, interval
        self.samples: list[float] = []
        self.error: str | None = None
        self.cmd: list[str] | None = None
        if dev.type != "cuda":
            self.error = "not a CUDA device"
        elif shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found"
        else:
            base = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
            try:  # the device's UUID names the right GPU whatever CUDA_VISIBLE_DEVICES says
                uuid = str(torch.cuda.get_device_properties(dev).uuid)
                cmd = base + ["-i", uuid if uuid.startswith("GPU-") else "GPU-" + uuid]
                self._query(cmd)
                self.cmd = cmd
            except Exception:  # noqa: BLE001 -- fall back to the torch index
                self.cmd = base + ["-i", str(dev.index or 0)]
                try:
                    self._query(self.cmd)
                except Exception as e:  # noqa: BLE001
                    self.error = f"nvidia-smi failed: {e}"
                    self.cmd = None

    @staticmethod
    def _query(cmd: list[str]) -> float:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
        return float(out.strip().splitlines()[0])

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.samples.append(self._query(self.cmd))
            except Exception as e:  # noqa: BLE001
                self.error = f"nvidia-smi failed: {e}"
                return
            stop.wait(self.interval)

    def start(self) -> None:
        """Sample until :meth:`stop`; the samples of successive periods add up."""
        self._stop = threading.Event()
        self._thread = None
        if self.cmd is not None:
            self._thread = threading.Thread(target=self._loop, args=(self._stop,), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def report(self) -> dict:
        if not self.samples:
            return {"mean_percent": None, "note": self.error or "no samples (timed loop too short)"}
        return {"mean_percent": round(statistics.fmean(self.samples), 1), "min_percent": min(self.samples),
                "samples": len(self.samples), "interval_s": self.interval, "query": " ".join(self.cmd)}


class Timer:
    """Timed segments of one loop: ``warm(n)`` runs the untimed warm-up iterations, each ``run(n)``
    adds ``n`` iterations on the clock (and under the GPU utilisation sampler)."""

    def __init__(self, step, dev: torch.device):
        self.step, self.dev = step, dev
        self.util = GpuUtil(dev) if dev.type == "cuda" else None
        self.rounds: list[tuple[int, float]] = []
        self.warm_n, self.warm_s = 0, 0.0
        self.last: dict = {}

    def _iterate(self, n: int) -> float:
        sync(self.dev)
        t = time.perf_counter()
        for _ in range(n):
            self.last = self.step()
        sync(self.dev)
        return time.perf_counter() - t

    def warm(self, n: int) -> None:
        self.warm_n, self.warm_s = n, self._iterate(n)

    def run(self, n: int) -> None:
        if self.util is not None:
            self.util.start()
        try:
            self.rounds.append((n, self._iterate(n)))
        finally:
            if self.util is not None:
                self.util.stop()

    def result(self) -> dict:
        n = sum(k for k, _ in self.rounds)
        s = sum(t for _, t in self.rounds)
        out = {"iterations": n, "seconds": round(s, 3), "it_per_s": round(n / s, 4), "s_per_it": round(s / n, 4),
               "it_per_s_per_round": [round(k / t, 4) for k, t in self.rounds],
               "warmup_iterations": self.warm_n, "warmup_seconds": round(self.warm_s, 3),
               "last_losses": {k: round(float(v), 5) for k, v in self.last.items()}}
        if self.util is not None:
            out["gpu_utilisation"] = self.util.report()
        return out


# ------------------------------------------------------------------------------------ plain loop
def to_tensor(images: list[np.ndarray], dev: torch.device) -> torch.Tensor:
    """uint8 (H, W, 3) crops -> a contiguous (NCHW) float (B, 3, H, W) batch in [0, 1] on ``dev``
    (``astype`` of the transposed view would keep NHWC strides, i.e. channels_last in disguise)."""
    x = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32) / 255
    return torch.from_numpy(x).to(dev).contiguous()


def plain_loop(args: argparse.Namespace, dev: torch.device, pairs: list[tuple[np.ndarray, np.ndarray]]):
    """The recipe as one would first write it: fp32, NCHW, eager, data already on the device."""
    torch.manual_seed(0)
    G = build("rrdbnet", scale=SCALE, nf=args.features, nb=args.blocks, gc=32).to(dev).train()
    D = build_discriminator("vgg128", num_feat=64, input_size=SCALE * args.lr_patch).to(dev).train()
    vgg = VGGFeatures(["conv5_4"], "random").to(dev)  # frozen, eval mode
    opt_g = torch.optim.Adam(G.parameters(), lr=LR_RATE, betas=BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR_RATE, betas=BETAS)

    rng = np.random.default_rng(0)
    lp = args.lr_patch
    batches = []
    for _ in range(args.plain_batches):
        lrs, hrs = [], []
        for _ in range(args.batch):
            hr, lr = pairs[int(rng.integers(len(pairs)))]
            y, x = (int(v) for v in rng.integers(0, lr.shape[0] - lp + 1, 2))
            lrs.append(lr[y:y + lp, x:x + lp])
            hrs.append(hr[y * SCALE:(y + lp) * SCALE, x * SCALE:(x + lp) * SCALE])
        batches.append((to_tensor(lrs, dev), to_tensor(hrs, dev)))

    def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    state = {"i": 0}

    def step() -> dict:
        lr, hr = batches[state["i"] % len(batches)]
        state["i"] += 1
        # generator step, D frozen
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        sr = G(lr)
        l_pix = W_PIX * F.l1_loss(sr, hr)
        l_perc = W_PERC * F.l1_loss(vgg(sr)["conv5_4"], vgg(hr)["conv5_4"].detach())
        fake_g = D(sr)
        real_g = D(hr).detach()
        l_gan = W_GAN * (bce(real_g - fake_g.mean(), 0.0) + bce(fake_g - real_g.mean(), 1.0)) / 2
        (l_pix + l_perc + l_gan).backward()
        opt_g.step()
        # discriminator step on the SR from before the G update
        for p in D.parameters():
            p.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        real = D(hr)
        fake = D(sr.detach())
        l_d = (bce(real - fake.mean(), 1.0) + bce(fake - real.mean(), 0.0)) / 2
        l_d.backward()
        opt_d.step()
        return {"pixel": l_pix.detach(), "perceptual": l_perc.detach(), "gan": l_gan.detach(), "d": l_d.detach()}

    return step


# ---------------------------------------------------------------------------------------- engine
def engine_loop(args: argparse.Namespace, dev: torch.device, data: Path, run: Path):
    """A Trainer on the pair dataset; returns its step (``train_step`` on micro-batches pulled from
    ``batches(0)``), what the engine made of the options, and a function that stops its loader."""
    from realsr.train.trainer import Trainer

    total = args.warmup + args.iterations * args.rounds
    cfg = from_dict(config_tree(args, data, total))
    tr = Trainer(cfg, run, progress=False)
    stream = [tr.batches(0)]
    acc = cfg.optim.accumulate

    def step() -> dict:
        return tr.train_step([next(stream[0]) for _ in range(acc)])

    def close() -> None:
        stream.clear()  # the loader's worker processes stop with their iterator
        gc.collect()

    effective = {"device": str(tr.device),
                 "autocast": str(tr.amp_dtype).replace("torch.", "") if tr.amp_dtype is not None else "off (fp32)",
                 "grad_scaler": tr.scaler.is_enabled(), "channels_last": tr.channels_last,
                 "compile": cfg.engine.compile and f"{cfg.engine.compile_backend}, mode {cfg.engine.compile_mode}",
                 "data_workers": cfg.data.workers,
                 "lr_source": (f"on-device degradation ({cfg.data.degradation.mode})" if cfg.data.degradation
                               else "stored LR crops (pair dataset)"),
                 "ema": cfg.optim.ema}
    return step, effective, close


# --------------------------------------------------------------------------------------- machine
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                    help="engine autocast precision (CUDA only; fp32 elsewhere)")
    ap.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                    help="engine memory format (auto: on for CUDA)")
    ap.add_argument("--compile", action="store_true", help="engine: torch.compile G and D")
    ap.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                    default="default", help="engine: torch.compile mode (inductor)")
    ap.add_argument("--workers", type=int, default=2, help="engine: data loader worker processes")
    ap.add_argument("--prefetch", type=int, default=4, help="engine: batches prefetched per worker")
    ap.add_argument("--gpu-degradation", choices=("off", "bicubic", "classic"), default="off",
                    help="engine: make the LR from HR crops on the device (data.degradation) instead of reading stored LR")
    ap.add_argument("--ema", type=float, default=0.0, help="engine: generator EMA decay (0: off, as the recipe)")
    ap.add_argument("--blocks", type=int, default=23, help="RRDB blocks (recipe: 23)")
    ap.add_argument("--features", type=int, default=64, help="RRDBNet features (recipe: 64)")
    ap.add_argument("--batch", type=int, default=16, help="batch size (recipe: 16)")
    ap.add_argument("--lr-patch", type=int, default=32, choices=(32, 64),
                    help="LR patch side (recipe: 32; the vgg128 discriminator takes 128 or 256 HR inputs)")
    ap.add_argument("--iterations", type=int, default=10, help="timed iterations per loop and round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="timed rounds; the loops take turns (ABBA), totals over all rounds are reported")
    ap.add_argument("--warmup", type=int, default=5, help="untimed iterations first (compile happens here)")
    ap.add_argument("--images", type=int, default=8, help="synthetic 256x256 training pairs")
    ap.add_argument("--plain-batches", type=int, default=4, help="pre-made batches the plain loop cycles through")
    ap.add_argument("--skip-plain", action="store_true", help="only the engine")
    args = ap.parse_args()
    if min(args.iterations, args.rounds, args.batch, args.images, args.plain_batches) < 1 or args.warmup < 0:
        ap.error("--iterations, --rounds, --batch, --images and --plain-batches must be >= 1, --warmup >= 0")

    dev = resolve_device(args.device)
    args.device = str(dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    res: dict = {
        "machine": machine(dev),
        "settings": {
            "recipe": "Impressionism ESRGAN x4 (METHODS.md 2b.6)",
            "generator": f"rrdbnet nb={args.blocks} nf={args.features} gc=32",
            "full_recipe_scale": args.blocks == 23 and args.features == 64 and args.batch == 16 and args.lr_patch == 32,
            "discriminator": f"vgg128 num_feat=64 input_size={SCALE * args.lr_patch}",
            "batch": args.batch, "lr_patch": args.lr_patch, "hr_patch": SCALE * args.lr_patch,
            "losses": f"L1 x{W_PIX} + VGG19 conv5_4 L1 x{W_PERC} + RaGAN x{W_GAN}",
            "optimizers": f"Adam lr {LR_RATE} betas {BETAS} for G and D",
            "vgg_weights": "random: an untrained VGG19 (no weights file needed; same cost as the pretrained one, loss values meaningless)",
            "warmup": args.warmup, "iterations_per_round": args.iterations, "rounds": args.rounds,
            "engine_options": {"precision": args.precision, "channels_last": args.channels_last,
                               "compile": args.compile, "workers": args.workers, "prefetch": args.prefetch,
                               "gpu_degradation": args.gpu_degradation, "ema": args.ema},
            "data": f"{args.images} synthetic {HR_SIZE}x{HR_SIZE} HR scenes + MATLAB-bicubic x{SCALE} LR",
        },
    }
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        data = Path(tmp) / "pairs"
        pairs = make_pairs(data, args.images)
        timers: dict[str, Timer] = {}
        if not args.skip_plain:  # built and warmed first: it sees no setting the Trainer makes
            timers["plain"] = Timer(plain_loop(args, dev, pairs), dev)
            timers["plain"].warm(args.warmup)
        estep, res["engine_effective"], close = engine_loop(args, dev, data, Path(tmp) / "run")
        timers["engine"] = Timer(estep, dev)
        timers["engine"].warm(args.warmup)
        names = list(timers)
        for r in range(args.rounds):  # ABBA order, so drift on a shared machine hits both alike
            for name in (names if r % 2 == 0 else names[::-1]):
                timers[name].run(args.iterations)
        close()
        effective = res.pop("engine_effective")
        for name, t in timers.items():
            res[name] = t.result()
        res["engine_effective"] = effective
        if "plain" in res:
            res["plain"]["data"] = f"{args.plain_batches} pre-made batches of aligned random crops on the device, cycled"
        if dev.type == "cuda":
            res["max_memory_allocated_mib_both_loops"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 20, 1)
    if "plain" in res:
        ratio = res["engine"]["it_per_s"] / res["plain"]["it_per_s"]
        res["ratio_engine_over_plain"] = round(ratio, 3)
        res["target"] = ("H100 target: >= 2x the plain loop with bf16, channels_last, compile, on-device "
                         "degradation, GPU utilisation > 90 %")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
