"""The training engine behind ``realsr train``: one class, :class:`Trainer`, that runs a
:class:`~realsr.train.config.TrainConfig` into a run folder (ARCHITECTURE.md):

``RUN/config.yaml`` (resolved), ``RUN/log.jsonl``, ``RUN/checkpoints/iter_*.pt``,
``RUN/model.safetensors`` (EMA weights when EMA is on), ``RUN/model_best.safetensors`` (best
validation PSNR), ``RUN/samples/*.png`` (bicubic | SR | HR crops), ``RUN/curves.png``.

One iteration = ``optim.accumulate`` micro-batches per process, then one optimiser step of the
generator (and of the discriminator when a GAN loss is on). The generator step uses the
discriminator before its update and the discriminator step uses the SR batch from before the
generator update (BasicSR's order). Distributed runs (``torchrun``) wrap both networks in DDP; the
generator's adversarial term runs through the unwrapped discriminator, whose gradients are not
wanted there. Loss terms are checked for NaN/Inf at every log step (no per-iteration device sync);
a bad value stops the run naming the term and iteration, before anything is saved.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from realsr.atomic import remove_stale_temporaries, write_bytes_atomic
from realsr.devices import to_device
from realsr.errors import RealsrError, UsageError
from realsr.images import from_float, to_float, write_png
from realsr.manifest import noisy_pairs, settings_differences

from . import checkpoint as ckpt
from .config import TrainConfig, dump_yaml, to_dict
from .curves import draw_curves
from .data import CropDataset, NoiseInjection, OnlineDegradation, SampleOrder, load_items, load_val, make_loader
from .infer import InferOptions, NonFiniteOutput, resolve_device, upscale_image
from .losses import (PerceptualLoss, discriminator_adv_loss, generator_adv_loss, gradient_difference_loss, high_pass,
                     ms_ssim_loss, pixel_loss, ssim_loss, tv_loss)
from .metrics import psnr, ssim
from .model_files import load_model, save_model
from .models import SRNet, build
from .models.discriminators import build_discriminator
from .weights import load_error_detail

log = logging.getLogger("realsr.train")


#: config keys (per section) that a resume may change without changing what is trained
RESUME_FREE = {"optim": ("iterations", "generator", "discriminator", "convergence"),
               "data": ("workers", "prefetch", "val", "val_images", "val_crop"),
               "engine": ("device", "compile", "compile_backend", "compile_mode", "channels_last")}


class TrainingError(RealsrError):
    """The run cannot go on (NaN/Inf loss ...); checkpoints written so far are intact."""


# ------------------------------------------------------------------------------ small utilities
def holds_ddp(m: Any) -> bool:
    """Whether ``m`` is a DistributedDataParallel wrapper or a torch.compile wrapper around one."""
    while isinstance(m, nn.Module):
        if isinstance(m, nn.parallel.DistributedDataParallel):
            return True
        m = getattr(m, "_orig_mod", None)
    return False


def unwrap(m: nn.Module) -> nn.Module:
    """The plain module inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(m, "module") and isinstance(m.module, nn.Module):
            m = m.module
        elif hasattr(m, "_orig_mod"):
            m = m._orig_mod
        else:
            return m


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema_p <- decay * ema_p + (1 - decay) * p`` for every parameter (BasicSR's ``model_ema``);
    buffers are copied."""
    e_params = [p for p in ema.parameters()]
    m_params = [p.detach() for p in model.parameters()]
    torch._foreach_mul_(e_params, decay)
    torch._foreach_add_(e_params, m_params, alpha=1 - decay)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


def lr_factor(it: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at iteration ``it`` (0-based): linear warm-up, then multistep
    (x ``gamma`` at each milestone passed) or cosine down to ``eta_min`` at the last iteration."""
    s = cfg.optim.schedule
    if s.warmup and it < s.warmup:
        return (it + 1) / s.warmup
    if s.type == "multistep":
        return s.gamma ** sum(1 for m in s.milestones if it >= m)
    if s.type == "cosine":
        periods = s.periods or [max(1, cfg.optim.iterations - s.warmup)]
        weights = s.restart_weights or [1.0] * len(periods)
        t, k = it - s.warmup, 0
        while k < len(periods) - 1 and t >= periods[k]:
            t -= periods[k]
            k += 1
        frac = min(1.0, t / periods[k])
        return s.eta_min + weights[k] * (1 - s.eta_min) * 0.5 * (1 + math.cos(math.pi * frac))
    return 1.0


def _optimizer(params: Any, o: Any) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if o.type == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def _dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (0, 1, 0 alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _checkpoint_generator(spec: str) -> dict[str, torch.Tensor] | None:
    """The generator weights (EMA when present) of a realsr training checkpoint, or None when
    ``spec`` is not one."""
    if not str(spec).endswith(".pt"):
        return None
    try:
        c = ckpt.read_checkpoint(spec)
    except UsageError:
        return None
    return c.get("ema") or c["generator"]


def init_generator_weights(model: SRNet, spec: str, strict: bool = True) -> None:
    """Load ``spec`` into ``model``: a realsr training checkpoint (its EMA weights when present), a
    realsr model file, or an official checkpoint (through the architecture's key map).
    ``strict=False`` loads only the tensors whose names and shapes fit and keeps the rest (e.g. an
    x4 network started from an x2 model, as EDSR and RCAN did); at least one must fit."""
    state = _checkpoint_generator(spec)
    if strict:
        if state is None:
            args = {k: v for k, v in model.arch_args.items() if k != "scale"}
            state = load_model(spec, model.arch, model.scale, **args).state_dict()
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise UsageError(f"the checkpoint's generator does not fit this model ({load_error_detail(e)})", spec) from None
        return
    if state is None:
        from .weights import load_state, read_safetensors

        if str(spec).lower().endswith(".safetensors"):
            state = read_safetensors(spec)[0]
        else:
            state = type(model).map_state(load_state(spec, "initial weights"))
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise UsageError(f"no tensor of the file fits architecture {model.arch!r}", spec)
    model.load_state_dict(fit, strict=False)
    log.info("initialised %d of %d tensors from %s (%d kept fresh)", len(fit), len(own), spec, len(own) - len(fit))


# ------------------------------------------------------------------------------------- trainer
class Trainer:
    """Builds everything a run needs from ``cfg``; :meth:`run` trains to ``cfg.optim.iterations``.

    ``resume``: continue from the newest readable checkpoint in ``RUN/checkpoints``. A run folder
    that already holds checkpoints is refused without ``resume`` or ``overwrite``.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                 overwrite: bool = False, progress: bool = True):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.rank, self.world, self.local_rank = _dist_info()
        self.main = self.rank == 0
        self.progress = progress and cfg.log.progress and self.main
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._setup_device()
        self._find_resume_state(resume, overwrite)
        if cfg.engine.deterministic:
            # cuBLAS is deterministic only with a fixed workspace, set before its first call
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)

        # networks
        s = cfg.scale
        self.G: SRNet = build(cfg.model.arch, scale=s, **cfg.model.args)
        if cfg.model.init and not self._resume_state:
            init_generator_weights(self.G, cfg.model.init, cfg.model.init_strict)
        self.use_gan = cfg.losses.gan.weight > 0
        self.D: nn.Module | None = None
        if self.use_gan:
            self.D = build_discriminator(cfg.discriminator.arch, **cfg.discriminator.args)
            if cfg.discriminator.init and not self._resume_state:
                from .weights import load_state

                try:
                    self.D.load_state_dict(load_state(cfg.discriminator.init, "discriminator weights"))
                except RuntimeError as e:
                    raise UsageError(f"discriminator weights do not fit ({load_error_detail(e)})", cfg.discriminator.init) from None
        self.G.to(self.device).train()
        if self.D is not None:
            self.D.to(self.device).train()
        self.channels_last = cfg.engine.channels_last == "on" or (cfg.engine.channels_last == "auto" and self.device.type == "cuda")
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            if self.D is not None:
                self.D.to(memory_format=torch.channels_last)
        self.ema: SRNet | None = None
        if cfg.optim.ema > 0:
            self.ema = copy.deepcopy(self.G).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)

        # optimisation
        self.method = None
        g_params = self.G.parameters()
        if cfg.method == "d2c":
            from .d2c import D2CStep

            g_params = D2CStep.generator_parameters(self.G)
        self.opt_g = _optimizer(g_params, cfg.optim.generator)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, lambda it: lr_factor(it, cfg))
        self.opt_d = self.sched_d = None
        if self.D is not None:
            self.opt_d = _optimizer(self.D.parameters(), cfg.optim.discriminator)
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, lambda it: lr_factor(it, cfg))
        cuda = self.device.type == "cuda"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.engine.precision) if cuda else None
        if cfg.engine.precision != "fp32" and not cuda:
            log.warning("engine.precision %s applies on CUDA only; training in fp32 on %s", cfg.engine.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if cfg.method == "d2c":
            self.method = D2CStep(self)
        elif cfg.method == "ddnsr":
            from .ddnsr import DDNSRStep

            self.method = DDNSRStep(self)
        self.cycle = None
        if cfg.cycle.weight > 0:
            from .cycle import CycleBranch

            self.cycle = CycleBranch(self)

        # losses
        L = cfg.losses
        self.perceptual = None
        if L.perceptual.weight > 0:
            self.perceptual = PerceptualLoss(dict(L.perceptual.layers), L.perceptual.vgg_weights,
                                             criterion=L.perceptual.criterion,
                                             use_input_norm=L.perceptual.use_input_norm).to(self.device)

        # state from a checkpoint
        self.iteration = 0
        self.best: dict[str, Any] = {}
        if self._resume_state:
            self._load_state(self._resume_state)
            self._resume_state = None

        # wrappers
        if self.method is not None:
            self.method.wrap(self._wrap)
            self.G_train: nn.Module = self.G
        else:
            self.G_train = self._wrap(self.G)
        self.D_train: nn.Module | None = self._wrap(self.D) if self.D is not None else None
        if self.cycle is not None:
            self.cycle.wrap(self._wrap)

        # data
        d = cfg.data
        if not d.train:
            raise UsageError("no training data: set data.train in the config or give --train-data")
        self.degrade = None
        if d.degradation is not None:
            g = d.degradation
            self.degrade = OnlineDegradation(g.mode, s, cfg.seed, self.device, g.pool, g.pool_noise, g.params, g.quantize)
        self.noise = NoiseInjection(d.noise_pool, cfg.seed, self.device) if d.noise_pool else None
        noisy, ok, record = noisy_pairs(d.train) if self.noise is not None and self.degrade is None else (0, 0, None)
        if noisy:
            log.warning("%d of %d pairs recorded in %s already carry noise (noise steps, a learned degradation or real "
                        "captures) and data.noise_pool adds real noise again; the Impressionism recipe injects it "
                        "into clean LR (realsr degrade --mode pool --no-pool-noise)", noisy, ok, record)
        unpaired = self.degrade is not None or cfg.method == "ddnsr"
        items = load_items(d.train, s, d.patch_size, paired=not unpaired, in_memory=d.in_memory)
        if cfg.method == "ddnsr":
            from .ddnsr import UnpairedDataset, source_items

            src = source_items(cfg.ddnsr.source, d.patch_size, s, d.in_memory)
            self.dataset: Any = UnpairedDataset(items, src, s, d.patch_size, cfg.seed, d.flip, d.rotate)
        else:
            self.dataset = CropDataset(items, s, d.patch_size, cfg.seed, d.flip, d.rotate)
        if self.method is not None:
            self.method.set_epoch_size(len(items))
        self.val = load_val(d.val, s, d.val_images, d.val_crop) if (d.val and self.main) else []
        self._check_fit()
        self._check_run_folder()
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._term_names: list[str] = []
        # everything is checked: only now touch the run folder
        self._prepare_folder(resume, overwrite)
        self._writer = self._open_tensorboard() if (self.main and cfg.log.tensorboard) else None

    # ------------------------------------------------------------------------------ set-up
    def _setup_device(self) -> None:
        spec = self.cfg.engine.device
        if self.world > 1:
            if not dist.is_initialized():
                backend = "nccl" if (spec != "cpu" and torch.cuda.is_available()) else "gloo"
                dist.init_process_group(backend)
            if dist.get_backend() == "nccl":
                torch.cuda.set_device(self.local_rank)
                self.device = torch.device("cuda", self.local_rank)
                return
            self.device = torch.device("cpu")
            return
        self.device = resolve_device(spec)

    def _wrap(self, m: nn.Module) -> nn.Module:
        """``m`` wrapped in DDP (distributed runs), then compiled (engine.compile): PyTorch's order
        for the two, in which compilation sees DDP's gradient buckets and splits the graph there,
        so that the all-reduce of one bucket overlaps the backward pass of the next (compiling
        first would leave one all-reduce after the whole compiled backward)."""
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            m = nn.parallel.DistributedDataParallel(m, device_ids=ids)
        e = self.cfg.engine
        if e.compile:
            kw = {"mode": e.compile_mode} if e.compile_backend == "inductor" and e.compile_mode != "default" else {}
            m = torch.compile(m, backend=e.compile_backend, **kw)
        return m

    def _barrier(self) -> None:
        if self.world > 1:
            # on NCCL name this process's GPU: without it the barrier guesses the device from the
            # rank (and warns), which is wrong when ranks and GPUs are numbered differently
            ids = [self.device.index] if dist.get_backend() == "nccl" and self.device.index is not None else None
            if ids:
                dist.barrier(device_ids=ids)
            else:
                dist.barrier()

    def _find_resume_state(self, resume: bool, overwrite: bool) -> None:
        """Read the checkpoint to resume from, or refuse a folder that holds a run; changes nothing."""
        self._resume_state = None
        if resume:
            found = ckpt.latest_checkpoint(self.ckpt_dir)
            if found is None:
                raise UsageError("nothing to resume: no readable checkpoint (start again: CONFIG -o RUN --overwrite)",
                                 self.ckpt_dir)
            self._resume_state, path = found
            log.info("resuming from %s", path)
        elif (ckpt.list_checkpoints(self.ckpt_dir) or (self.run_dir / "log.jsonl").exists()) and not overwrite:
            raise UsageError("the run folder already holds a run: use --resume to continue it or "
                             "--overwrite to start again", self.run_dir)

    def _check_fit(self) -> None:
        """Settings that only fail once data, networks and pools are known, checked before any work."""
        cfg, d = self.cfg, self.cfg.data
        if d.batch_size % (cfg.optim.accumulate * self.world):
            raise UsageError(f"data.batch_size ({d.batch_size}) must be a multiple of optim.accumulate x processes "
                             f"({cfg.optim.accumulate} x {self.world})")
        size = getattr(unwrap(self.D), "input_size", None) if self.D is not None else None
        if size is not None and size != d.patch_size:
            raise UsageError(f"the {cfg.discriminator.arch} discriminator takes {size}x{size} inputs but data.patch_size "
                             f"is {d.patch_size} (set discriminator.args.input_size or the patch size)")
        lr_patch = d.patch_size // cfg.scale
        if lr_patch < self.G.min_input_size:
            raise UsageError(f"data.patch_size ({d.patch_size}) gives {lr_patch}-px LR crops; {cfg.model.arch} needs "
                             f"at least {self.G.min_input_size} px")
        for bank, what in ((getattr(self.noise, "bank", None), "data.noise_pool"),
                           (getattr(self.degrade, "bank", None), "data.degradation.pool")):
            if bank is not None and bank.min_size < lr_patch:
                raise UsageError(f"{what}: its smallest noise patch ({bank.min_size} px) is smaller than the LR crop "
                                 f"({lr_patch} px)")

    def _check_run_folder(self) -> None:
        """The run folder may not lie inside a data folder: its files (curves.png, samples/) would
        be read as training or validation images by the next run."""
        run = self.run_dir.resolve()
        for what, folder in (("data.train", self.cfg.data.train), ("data.val", self.cfg.data.val),
                             ("ddnsr.source", self.cfg.ddnsr.source if self.cfg.method == "ddnsr" else None)):
            if folder and (run == Path(folder).resolve() or Path(folder).resolve() in run.parents):
                raise UsageError(f"the run folder lies inside the {what} folder {folder}, whose images it would "
                                 "mix with its own files; use another -o", self.run_dir)

    def _prepare_folder(self, resume: bool, overwrite: bool) -> None:
        """Clear the folder for a new run (``overwrite``), write the resolved config, cut the log back."""
        if not resume and overwrite and self.main:
            for name in ("checkpoints", "samples", "tensorboard"):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
            for name in ("log.jsonl", "curves.png", "model.safetensors", "model_best.safetensors",
                         "degradation.safetensors"):
                (self.run_dir / name).unlink(missing_ok=True)
        self._barrier()
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if remove_stale_temporaries(self.run_dir):
                log.info("removed temporary files left by an interrupted run")
            write_bytes_atomic(self.run_dir / "config.yaml", dump_yaml(self.cfg).encode())
            if resume:
                self._truncate_log(self.iteration)
        self._barrier()

    def _open_tensorboard(self) -> Any:
        """A TensorBoard writer in RUN/tensorboard, or None when the package is not installed. Opened
        after the folder is prepared (``overwrite`` clears it); on resume, events that a killed run
        wrote after the checkpoint's iteration are purged (TensorBoard hides steps >= ``purge_step``)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 -- TensorBoard is optional
            return None
        try:
            return SummaryWriter(str(self.run_dir / "tensorboard"),
                                 purge_step=self.iteration + 1 if self.iteration else None)
        except OSError as e:
            log.warning("TensorBoard logging is off: %s", e)
            return None

    def _truncate_log(self, iteration: int) -> None:
        """Drop log records after ``iteration`` (the killed run's steps that the checkpoint lacks)
        and any torn last line."""
        path = self.run_dir / "log.jsonl"
        if not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("iteration", 0) <= iteration:
                keep.append(line)
        write_bytes_atomic(path, ("\n".join(keep) + "\n" if keep else "").encode())

    # ---------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (see :mod:`realsr.train.checkpoint`)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "iteration": self.iteration, "config": to_dict(self.cfg), "world": self.world,
            "generator": self.G.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
            "discriminator": self.D.state_dict() if self.D is not None else None,
            "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "sched_d": self.sched_d.state_dict() if self.sched_d else None,
            "scaler": self.scaler.state_dict(), "rng": rng, "best": self.best,
            "method": self.method.state_dict() if self.method is not None else None,
            "cycle": self.cycle.state_dict() if self.cycle is not None else None,
        }

    def _load_state(self, st: dict[str, Any]) -> None:
        try:
            self.G.load_state_dict(st["generator"])
            if self.ema is not None:
                self.ema.load_state_dict(st["ema"] if st.get("ema") else st["generator"])
            if self.D is not None:
                if st.get("discriminator") is None:
                    raise KeyError("discriminator")
                self.D.load_state_dict(st["discriminator"])
                self.opt_d.load_state_dict(st["opt_d"])
                self.sched_d.load_state_dict(st["sched_d"])
            self.opt_g.load_state_dict(st["opt_g"])
            self.sched_g.load_state_dict(st["sched_g"])
            if st.get("scaler"):
                self.scaler.load_state_dict(st["scaler"])
            if self.method is not None:
                if st.get("method") is None:
                    raise KeyError("method")
                self.method.load_state_dict(st["method"])
            if self.cycle is not None:
                if st.get("cycle") is None:
                    raise KeyError("cycle")
                self.cycle.load_state_dict(st["cycle"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise UsageError(f"the checkpoint does not fit this configuration ({load_error_detail(e)})",
                             self.ckpt_dir) from None
        self._warn_changed_settings(st.get("config"))
        self._apply_optim_config(self.opt_g, self.sched_g, self.cfg.optim.generator, "optim.generator")
        if self.opt_d is not None:
            self._apply_optim_config(self.opt_d, self.sched_d, self.cfg.optim.discriminator, "optim.discriminator")
        self.iteration = int(st["iteration"])
        self.best = dict(st.get("best") or {})
        torch.set_rng_state(st["rng"]["torch"])
        if "cuda" in st["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng"]["cuda"], self.device)

    def _warn_changed_settings(self, saved: Any) -> None:
        """Warn when a resumed run's config differs from the checkpoint's in what shapes the training
        (seed, data, losses, model ...): the result is then no longer that of one uninterrupted run.
        Changes a resume is meant for (iterations, logging, validation, workers, device) pass
        silently; optimiser changes get their own warning."""
        if not isinstance(saved, dict):
            return

        def shaping(c: dict[str, Any]) -> dict[str, Any]:
            c = {k: dict(v) if isinstance(v, dict) else v for k, v in c.items() if k not in ("name", "log")}
            for section, keys in RESUME_FREE.items():
                for k in keys:
                    c.get(section, {}).pop(k, None)
            return c

        old, new = shaping(saved), shaping(to_dict(self.cfg))
        if old != new:
            log.warning("resumed with changed settings (%s): the run is no longer the same as one uninterrupted run",
                        settings_differences(old, new, limit=5))

    def _apply_optim_config(self, opt: torch.optim.Optimizer, sched: Any, o: Any, section: str) -> None:
        """After loading a checkpoint: the config's rate, betas and weight decay win (a resume may
        change them, e.g. a lower rate after a divergence); Adam's moments are kept. ``section``:
        the config section of ``o`` (``optim.generator`` ...), for the warning."""
        factor = lr_factor(sched.last_epoch, self.cfg)
        changed: dict[str, str] = {}
        for g in opt.param_groups:
            new = {"initial_lr": o.lr, "lr": o.lr * factor, "betas": tuple(o.betas), "weight_decay": o.weight_decay}
            for k, v in new.items():
                if k != "lr" and g.get(k) != v:  # the config's names: the scheduler's initial_lr is lr
                    old = list(g[k]) if isinstance(g.get(k), tuple) else g.get(k, "(not recorded)")
                    changed[f"{section}.{'lr' if k == 'initial_lr' else k}"] = f"{old} -> {list(v) if isinstance(v, tuple) else v}"
            g.update(new)
        sched.base_lrs = [o.lr] * len(opt.param_groups)
        if changed:
            log.warning("resumed with changed optimiser settings: %s",
                        ", ".join(f"{k}: {v}" for k, v in sorted(changed.items())))

    # --------------------------------------------------------------------------- one step
    def batches(self, start: int) -> Iterator[dict[str, Any]]:
        """Micro-batches for this process from iteration ``start`` on (``accumulate`` per iteration)."""
        d = self.cfg.data
        order = SampleOrder(d.batch_size, self.cfg.optim.accumulate, self.rank, self.world, start)
        loader = make_loader(self.dataset, order, d.workers, d.prefetch, pin=self.device.type == "cuda")
        return iter(loader)

    def _inputs(self, batch: dict[str, Any], it: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        hr = batch["hr"].to(self.device, non_blocking=nb)
        key = (it, micro, self.rank)
        if self.degrade is not None:
            lr = self.degrade(hr, key)
        else:
            lr = batch["lr"].to(self.device, non_blocking=nb)
        if self.noise is not None:
            lr = self.noise(lr, key)
        if self.cfg.data.mixup.prob > 0:
            lr, hr = self._mixup(lr, hr, key)
        if self.channels_last:
            hr = hr.contiguous(memory_format=torch.channels_last)
            lr = lr.contiguous(memory_format=torch.channels_last)
        return lr, hr

    def _d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees of an image batch: itself, or its high-pass (SRResCGAN)."""
        return high_pass(x) if self.cfg.discriminator.highpass else x

    def _mixup(self, lr: torch.Tensor, hr: torch.Tensor, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """SRResCGAN's mixup: with probability ``data.mixup.prob`` both batches become
        ``lam * x + (1 - lam) * x[perm]``, ``lam ~ Beta(alpha, alpha)``; drawn from (seed, key)."""
        m = self.cfg.data.mixup
        rng = np.random.default_rng([self.cfg.seed, 23, *key])
        if m.prob <= 0 or rng.random() >= m.prob:
            return lr, hr
        lam = float(rng.beta(m.alpha, m.alpha))
        perm = to_device(rng.permutation(hr.shape[0]), hr.device)
        return lam * lr + (1 - lam) * lr[perm], lam * hr + (1 - lam) * hr[perm]

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def forward_backward(self, batch: dict[str, Any], it: int, micro: int) -> dict[str, torch.Tensor]:
        """Losses of one micro-batch, back-propagated (scaled by 1/accumulate) into the generator's
        and discriminator's gradients; returns the (detached, unscaled) loss terms."""
        acc = self.cfg.optim.accumulate
        last = micro == acc - 1
        lr, hr = self._inputs(batch, it, micro)
        pr = self.G.pixel_range
        sync_g = self.G_train.no_sync() if (self.world > 1 and not last) else contextlib.nullcontext()
        with sync_g:
            with self._autocast():
                sr = self.G_train(lr * pr) / pr if pr != 1 else self.G_train(lr)
                terms = self.sr_terms(sr, hr, it)
                if self.cycle is not None:
                    terms.update(self.cycle.generator_terms(sr, lr))
                total = torch.stack(list(terms.values())).sum()
            self.scaler.scale(total / acc).backward()
        terms.update(self.discriminator_backward(sr, hr, it, last, acc))
        if self.cycle is not None:
            terms.update(self.cycle.discriminator_backward(lr, last, acc))
        return {k: v.detach() for k, v in terms.items()}

    def gan_active(self, it: int) -> bool:
        """Whether the GAN terms (and the discriminator step) are on at iteration ``it``."""
        return self.use_gan and it >= self.cfg.optim.gan_start

    def sr_terms(self, sr: torch.Tensor, hr: torch.Tensor, it: int) -> dict[str, torch.Tensor]:
        """The weighted ``losses`` terms of the SR output ``sr`` against ``hr`` (both [0, 1] RGB,
        (B, 3, H, W)): pixel, perceptual, TV, SSIM, MS-SSIM and, from ``optim.gan_start``, the generator's GAN term
        (the discriminator frozen). Computed in [0, ``losses.value_range``]; in the autograd graph."""
        L = self.cfg.losses
        vr = L.value_range  # the losses and D see [0, value_range] (255 for SRResCGAN)
        sr_l, hr_l = (sr * vr, hr * vr) if vr != 1 else (sr, hr)
        terms: dict[str, torch.Tensor] = {}
        if L.pixel.weight > 0:
            terms["pixel"] = L.pixel.weight * pixel_loss(sr_l.float(), hr_l, L.pixel.kind)
        if self.perceptual is not None:
            terms["perceptual"] = L.perceptual.weight * self.perceptual(sr_l.float(), hr_l)
        if L.tv.weight > 0:
            terms["tv"] = L.tv.weight * (gradient_difference_loss(sr_l.float(), hr_l) if L.tv.kind == "gradient_difference"
                                         else tv_loss(sr_l.float(), L.tv.kind))
        if L.ssim.weight > 0:  # 1 - SSIM with data range value_range: the same value on either scale
            c = L.ssim
            terms["ssim"] = c.weight * ssim_loss(sr_l.float(), hr_l.float(), data_range=vr, window=c.window,
                                                 sigma=c.sigma, k1=c.k1, k2=c.k2)
        if L.ms_ssim.weight > 0:
            c = L.ms_ssim
            terms["ms_ssim"] = c.weight * ms_ssim_loss(sr_l.float(), hr_l.float(), data_range=vr, window=c.window,
                                                       sigma=c.sigma, k1=c.k1, k2=c.k2, weights=c.scale_weights,
                                                       small=c.small_images)
        if self.gan_active(it):
            d_raw = unwrap(self.D)
            d_raw.requires_grad_(False)
            try:
                fake = d_raw(self._d_input(sr_l)).float()
                real = d_raw(self._d_input(hr_l)).float().detach() if L.gan.kind == "ragan" else None
            finally:
                d_raw.requires_grad_(True)
            terms["gan"] = L.gan.weight * generator_adv_loss(L.gan.kind, fake, real)
        return terms

    def discriminator_backward(self, sr: torch.Tensor, hr: torch.Tensor, it: int, last: bool,
                               acc: int) -> dict[str, torch.Tensor]:
        """The discriminator's loss on real ``hr`` against ``sr`` (detached; [0, 1] RGB),
        back-propagated into its gradients (scaled by 1/``acc``); nothing before ``optim.gan_start``."""
        if not self.gan_active(it):
            return {}
        L = self.cfg.losses
        vr = L.value_range
        sync_d = self.D_train.no_sync() if (self.world > 1 and not last) else contextlib.nullcontext()
        with sync_d:
            with self._autocast():
                real = self.D_train(self._d_input(hr * vr)).float()
                fake = self.D_train(self._d_input(sr.detach() * vr)).float()
                d_loss = discriminator_adv_loss(L.gan.kind, real, fake, detach_means=L.gan.d_detach_means)
            self.scaler.scale(d_loss / acc).backward()
        return {"d": d_loss, "d_real": real.mean(), "d_fake": fake.mean()}

    def _step(self, opt: torch.optim.Optimizer, params: Any) -> None:
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        self.scaler.step(opt)

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One iteration on ``accumulate`` micro-batches: gradients, optimiser steps, schedulers, EMA."""
        it = self.iteration
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_d is not None:
            self.opt_d.zero_grad(set_to_none=True)
        if self.method is not None:
            sums = self.method.step(micro_batches)
        else:
            sums = {}
            if self.cycle is not None:
                self.cycle.zero_grad()
            for a, b in enumerate(micro_batches):
                for k, v in self.forward_backward(b, it, a).items():
                    sums[k] = sums.get(k, 0) + v / len(micro_batches)
            self._step(self.opt_g, self.G.parameters())
            if "d" in sums:
                self._step(self.opt_d, self.D.parameters())
            if self.cycle is not None:
                self.cycle.step()
        self.scaler.update()
        self.sched_g.step()
        if self.sched_d is not None:
            with warnings.catch_warnings():  # before gan_start D does not step; its schedule still follows the iteration
                warnings.filterwarnings("ignore", "Detected call of")
                self.sched_d.step()
        if self.ema is not None:
            ema_update(self.ema, self.G, self.cfg.optim.ema)
        self.iteration += 1
        return sums

    # -------------------------------------------------------------------------- checks, logs
    def _check_finite(self) -> dict[str, float]:
        """Mean of the loss terms since the last check (averaged over processes); raises
        :class:`TrainingError` naming the first non-finite term and its iteration."""
        if not self._pending:
            return {}
        names = sorted({k for _, t in self._pending for k in t})
        vals = torch.stack([torch.stack([t.get(k, torch.zeros((), device=self.device)).float() for k in names])
                            for _, t in self._pending])
        bad = ~torch.isfinite(vals)
        if self.world > 1:
            flag = bad.any().float().reshape(1)
            dist.all_reduce(flag)
            if flag.item() and not bad.any():
                raise TrainingError("a non-finite loss on another process; see its message")
        if bad.any():
            i, j = (int(v) for v in bad.nonzero()[0])
            it = self._pending[i][0]
            raise TrainingError(f"loss term '{names[j]}' is {vals[i, j].item()} at iteration {it + 1}; "
                                f"nothing was saved after the last checkpoint (lower the learning rate, "
                                f"enable optim.grad_clip, or resume with --resume)")
        mean = vals.mean(0)
        if self.world > 1:
            dist.all_reduce(mean)
            mean /= self.world
        self._pending = []
        return dict(zip(names, mean.tolist()))

    def _log(self, rec: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, allow_nan=True) + "\n")
        if self._writer is not None:
            for k, v in (rec.get("losses") or {}).items():
                self._writer.add_scalar(f"loss/{k}", v, rec["iteration"])
            for k, v in (rec.get("val") or {}).items():
                if isinstance(v, (int, float)):
                    self._writer.add_scalar(f"val/{k}", v, rec["iteration"])

    def _records(self) -> list[dict[str, Any]]:
        path = self.run_dir / "log.jsonl"
        out = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def _draw_curves(self) -> None:
        if self.main:
            write_png(self.run_dir / "curves.png", draw_curves(self._records()))

    # --------------------------------------------------------------------------- validation
    def inference_model(self) -> SRNet:
        """The weights to validate and publish: the EMA copy when EMA is on."""
        return self.ema if self.ema is not None else self.G

    def validate(self) -> dict[str, Any]:
        """PSNR / SSIM (Y, border = scale; the eval protocol) of the inference model on the
        validation pairs, with the MATLAB-bicubic baseline; saves sample crops."""
        from realsr.resize import imresize

        model = self.inference_model()
        s = self.cfg.scale
        opts = InferOptions(tile=512, overlap=16, device=str(self.device))
        rows = []
        branch_rows: dict[str, list[float]] = {}
        samples = self.run_dir / "samples"
        for i, p in enumerate(self.val):
            try:
                sr_f = upscale_image(model, p.lr, opts)
            except NonFiniteOutput:
                sr_f = np.array([np.nan])
            if not np.isfinite(sr_f).all():
                raise TrainingError(f"the model's output on validation image {p.name} is not finite at iteration "
                                    f"{self.iteration}; nothing was saved after the last checkpoint")
            # as realsr eval: SR and bicubic quantised to the reference's bit depth
            sr, bic = from_float(sr_f, p.hr.dtype), from_float(to_float(imresize(p.lr, scale=s)), p.hr.dtype)
            rows.append((psnr(sr, p.hr, s), ssim(sr, p.hr, s), psnr(bic, p.hr, s)))
            for b in getattr(model, "branch_names", ()):
                with model.outputting(b):
                    out = from_float(upscale_image(model, p.lr, opts), p.hr.dtype)
                branch_rows.setdefault(b, []).append(psnr(out, p.hr, s))
            sr8, hr8, bic8 = (from_float(to_float(a), np.uint8) for a in (sr, p.hr, bic))
            if i < self.cfg.log.samples:
                c = self.cfg.log.sample_size
                h, w = hr8.shape[:2]
                y, x = max(0, (h - c) // 2), max(0, (w - c) // 2)
                crop = np.concatenate([a[y:y + c, x:x + c] for a in (bic8, sr8, hr8)], axis=1)
                short = p.name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")  # names: <= 255 bytes
                write_png(samples / f"{self.iteration:08d}_{short}.png", crop)
        arr = np.array(rows, dtype=np.float64)
        out = {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean()),
               "psnr_bicubic": float(arr[:, 2].mean()), "images": len(rows)}
        for b, vals in branch_rows.items():  # D2C-SR: each branch's own PSNR beside the fused one
            out[f"psnr_branch_{b}"] = float(np.mean(vals))
        return out

    # --------------------------------------------------------------------------- saving
    def _meta(self) -> dict[str, Any]:
        return {"run": self.cfg.name, "iteration": self.iteration, "ema": self.ema is not None}

    def save(self) -> None:
        """Checkpoint + ``model.safetensors`` (rank 0); every process waits for it."""
        if self.main:
            ckpt.save_checkpoint(self.ckpt_dir, self.state(), self.cfg.log.keep)
            save_model(self.run_dir / "model.safetensors", self.inference_model(), self._meta())
            if hasattr(self.method, "save_outputs"):  # DDNSR: its degradation network
                self.method.save_outputs(self.run_dir, self._meta())
        self._barrier()

    def _validate_and_log(self) -> None:
        if self.main and self.val:
            v = self.validate()
            if not self.best or v["psnr"] > self.best.get("psnr", -math.inf):
                self.best = {"psnr": v["psnr"], "iteration": self.iteration}
                save_model(self.run_dir / "model_best.safetensors", self.inference_model(),
                           dict(self._meta(), val_psnr=v["psnr"]))
            self._log({"iteration": self.iteration, "val": v, "best": self.best})
            log.info("iteration %d: validation PSNR %.3f dB (bicubic %.3f), SSIM %.4f",
                     self.iteration, v["psnr"], v["psnr_bicubic"], v["ssim"])
        self._barrier()

    # --------------------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        """Train from the current iteration to ``optim.iterations``; returns a summary."""
        cfg = self.cfg
        total = cfg.optim.iterations
        start = self.iteration
        t0 = time.perf_counter()
        if start > total:
            log.warning("the checkpoint is at iteration %d, past optim.iterations (%d): nothing to train; "
                        "raise optim.iterations to go on", start, total)
        elif start == total:
            log.info("the run is already at iteration %d of %d", start, total)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=start, desc=cfg.name, unit="it", dynamic_ncols=True)
        stream = self.batches(start) if start < total else iter(())
        last_t, last_it = time.perf_counter(), start
        try:
            while self.iteration < total:
                micro = [next(stream) for _ in range(cfg.optim.accumulate)]
                terms = self.train_step(micro)
                self._pending.append((self.iteration - 1, terms))
                it = self.iteration
                done = it == total
                validate = bool(cfg.log.val_every and it % cfg.log.val_every == 0) or done
                if it % cfg.log.every == 0 or done or it % cfg.log.save_every == 0 or validate:
                    means = self._check_finite()
                    now = time.perf_counter()
                    speed = (it - last_it) / max(now - last_t, 1e-9)
                    last_t, last_it = now, it
                    self._log({"iteration": it, "losses": means, "lr": self.opt_g.param_groups[0]["lr"],
                               "it_s": speed, "time": now - t0})
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k in ("pixel", "perceptual", "gan", "d", "branches", "convergence")})
                if validate:
                    self._validate_and_log()
                if it % cfg.log.save_every == 0 or done:
                    self.save()
                    self._draw_curves()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.close()
        return {"iteration": self.iteration, "seconds": time.perf_counter() - t0, "best": self.best,
                "run": str(self.run_dir)}

    def close(self) -> None:
        """End a distributed run: the DDP wrappers are replaced by their modules first, because each
        holds the process group, which would otherwise outlive ``destroy_process_group`` and be torn
        down during interpreter exit (with gloo, 3 of 55 two-process runs under load then aborted with
        "terminate called without an active exception" after training had finished)."""
        if self.world > 1 and dist.is_initialized():
            for holder in (h for h in (self, self.method, self.cycle) if h is not None):
                for name, value in list(vars(holder).items()):
                    if holds_ddp(value):  # DDP itself, or a compiled DDP
                        setattr(holder, name, unwrap(value))
            gc.collect()
            dist.destroy_process_group()
