"""Training configuration: a typed tree of dataclasses read from YAML, validated, with defaults.

``load_config(path, overrides)`` reads a YAML file, applies ``key.sub=value`` overrides (values are
parsed as YAML: ``optim.lr=1e-4``, ``model.args={num_block: 4}``) and returns a :class:`TrainConfig`.
Unknown keys, wrong types and impossible values raise :class:`~realsr.errors.UsageError` naming the
key (``losses.pixel.wieght: unknown key (known: kind, weight)``). ``to_dict`` gives the resolved
tree that every run writes to ``RUN/config.yaml``.

Units: ``data.patch_size`` is in HR pixels; ``data.batch_size`` is the *effective* batch (all
processes and accumulation steps together), so a recipe means the same on 1 or 8 GPUs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from realsr.errors import UsageError

log = logging.getLogger("realsr.train")


@dataclass
class ModelConfig:
    #: registry name (``realsr.train.models.names()``)
    arch: str = "rrdbnet"
    #: architecture arguments (besides ``scale``)
    args: dict = field(default_factory=dict)
    #: weights to start from: a realsr model file, an official checkpoint or a training checkpoint
    init: Optional[str] = None
    #: false: load only the tensors whose names and shapes fit (e.g. x4 from an x2 model: the
    #: upsampler stays freshly initialised); true: every tensor must fit
    init_strict: bool = True


@dataclass
class DiscriminatorConfig:
    #: ``vgg128``, ``patchgan``, ``unet``; null = no discriminator (no GAN loss)
    arch: Optional[str] = None
    args: dict = field(default_factory=dict)
    init: Optional[str] = None
    #: feed D high-pass images, ``0.5 + 0.5 * (x - boxblur9x9(x))`` (SRResCGAN's FilterHigh)
    highpass: bool = False


@dataclass
class DegradationConfig:
    """On-the-fly degradation of HR crops on the training device (the LR folder is then not used)."""

    #: ``pool`` (Impressionism kernels [+ noise]), ``classic``, ``highorder`` or ``bicubic``
    mode: str = "bicubic"
    #: pool folder (pool.json) for ``mode: pool``
    pool: Optional[str] = None
    #: add the pool's noise in ``pool`` mode
    pool_noise: bool = True
    #: overrides of the mode's parameter ranges (``realsr.degrade.recipes`` ClassicParams / HighOrderParams)
    params: dict = field(default_factory=dict)
    #: round the LR to 8-bit levels, as a saved LR file would be
    quantize: bool = True


@dataclass
class MixupConfig:
    """Mixup of training batches (SRResCGAN): with probability ``prob`` per micro-batch,
    ``lam ~ Beta(alpha, alpha)`` and both HR and LR become ``lam * x + (1 - lam) * x[perm]`` with one
    random permutation of the batch."""

    prob: float = 0.0
    alpha: float = 1.2


@dataclass
class DataConfig:
    #: pair dataset (HR/ + LR/) or, with ``degradation``, a folder of HR images (or DATASET/HR)
    train: Optional[str] = None
    #: validation pairs (HR/ + LR/); null = no validation
    val: Optional[str] = None
    #: HR crop side in pixels (a multiple of the scale)
    patch_size: int = 128
    #: effective batch size (summed over processes and accumulation steps)
    batch_size: int = 16
    #: random horizontal flips and 90-degree rotations (with transposes), as BasicSR's augment()
    flip: bool = True
    rotate: bool = True
    #: keep decoded images in memory (else read from disk per sample)
    in_memory: bool = True
    #: data loader worker processes per training process
    workers: int = 2
    prefetch: int = 4
    #: inject zero-mean noise crops from this pool into the LR (Impressionism's noiseDataset)
    noise_pool: Optional[str] = None
    degradation: Optional[DegradationConfig] = None
    #: batch mixup (off by default; SRResCGAN: prob 0.5, alpha 1.2)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    #: validate on at most this many images (0 = all) ...
    val_images: int = 0
    #: ... each cropped to its centre, at most this many HR pixels per side (0 = whole image)
    val_crop: int = 0


@dataclass
class PixelLossConfig:
    weight: float = 1.0
    #: ``l1``, ``l2`` or ``charbonnier``
    kind: str = "l1"


@dataclass
class PerceptualLossConfig:
    weight: float = 0.0
    #: layer name -> weight (``conv5_4`` = before ReLU, ``relu5_4`` = after)
    layers: dict = field(default_factory=lambda: {"conv5_4": 1.0})
    #: a torchvision-format VGG19 state dict (``vgg19-dcbb9e9d.pth``) or safetensors; needed when weight > 0
    vgg_weights: Optional[str] = None
    #: ``l1``, ``l2`` or ``fro``
    criterion: str = "l1"
    use_input_norm: bool = True


@dataclass
class GanLossConfig:
    weight: float = 0.0
    #: ``ragan`` (relativistic average), ``vanilla``, ``lsgan`` or ``hinge``
    kind: str = "ragan"
    #: ragan discriminator step: detach the other side's mean (BasicSR's two half-backwards) instead
    #: of letting the gradient flow through both means (ESRGAN/mmsr code, Real-SR); same value
    d_detach_means: bool = False


@dataclass
class TvLossConfig:
    weight: float = 0.0
    #: ``l1`` / ``l2``: total variation of the SR image; ``gradient_difference``: L1 distance of the
    #: SR and HR finite-difference gradients (SRResCGAN's ``TV_L1LOSS(sr, hr)``)
    kind: str = "l1"


@dataclass
class SsimLossConfig:
    """``weight * (1 - SSIM(sr, hr))`` (:func:`~realsr.train.losses.ssim_loss`) on the
    ``value_range`` scale with data range ``value_range`` (so the value does not depend on it).
    Defaults: Wang et al. 2004 (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03)."""

    weight: float = 0.0
    #: odd side of the Gaussian window, its sigma and the stabilising constants
    window: int = 11
    sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03


@dataclass
class MsSsimLossConfig(SsimLossConfig):
    """``weight * (1 - MS-SSIM(sr, hr))`` (:func:`~realsr.train.losses.ms_ssim_loss`): the window,
    constants and data range of ``losses.ssim`` (inherited fields, separate values), plus:"""

    #: exponent per scale, finest first; their number is the number of scales (Wang et al. 2003)
    scale_weights: list = field(default_factory=lambda: [0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    #: patches too small for every scale at the full window (5 scales, 11 px: under 161 px):
    #: ``error`` (refused when the config is read) or ``shrink_window`` (the coarse scales use the
    #: largest odd window that fits, e.g. 7 px at the 5th scale of a 128-px patch)
    small_images: str = "error"


@dataclass
class LossConfig:
    pixel: PixelLossConfig = field(default_factory=PixelLossConfig)
    perceptual: PerceptualLossConfig = field(default_factory=PerceptualLossConfig)
    gan: GanLossConfig = field(default_factory=GanLossConfig)
    tv: TvLossConfig = field(default_factory=TvLossConfig)
    ssim: SsimLossConfig = field(default_factory=SsimLossConfig)
    ms_ssim: MsSsimLossConfig = field(default_factory=MsSsimLossConfig)
    #: the losses and the discriminator see images in [0, value_range]: 1 (most recipes) or 255
    #: (SRResCGAN, whose L1 x10, VGG on [0, 255] tensors and TV are defined on that scale)
    value_range: float = 1.0


@dataclass
class OptimizerConfig:
    #: ``adam`` or ``adamw``
    type: str = "adam"
    lr: float = 2e-4
    betas: list = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    #: ``multistep``, ``cosine`` or ``constant``
    type: str = "multistep"
    #: multistep: iterations at which the rate is multiplied by ``gamma``
    milestones: list = field(default_factory=list)
    gamma: float = 0.5
    #: cosine: the final rate as a fraction of the base rate
    eta_min: float = 1e-7
    #: cosine with restarts (BasicSR's CosineAnnealingRestartLR): cycle lengths in iterations;
    #: empty = one cycle over the whole run
    periods: list = field(default_factory=list)
    #: peak of each cycle as a fraction of the base rate (default 1 for every cycle)
    restart_weights: list = field(default_factory=list)
    #: linear warm-up from 0 over this many iterations
    warmup: int = 0


@dataclass
class OptimConfig:
    iterations: int = 1000
    generator: OptimizerConfig = field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    #: clip the generator's (and discriminator's) gradient norm; 0 = off
    grad_clip: float = 0.0
    #: micro-batches per optimiser step (the effective batch is split into them)
    accumulate: int = 1
    #: decay of the exponential moving average of the generator weights; 0 = no EMA
    ema: float = 0.999
    #: the second network's optimiser (``method: d2c``: the convergence network)
    convergence: OptimizerConfig = field(default_factory=OptimizerConfig)
    #: no discriminator and no GAN loss before this iteration (G trains alone first). Not BasicSR's
    #: net_d_init_iters, which trains D alone at the start
    gan_start: int = 0


@dataclass
class D2CConfig:
    """D2C-SR training (``method: d2c``, METHODS.md 1.4-1.5). The branch and convergence losses use
    ``losses.pixel`` (``kind: l2`` = the official MSE); the divergence weight follows the official
    epoch schedule: 0 up to epoch ``start_epoch``; afterwards ``weight * 0.5^(epoch // halve_epochs)``
    in the first ``on_epochs`` of every ``period_epochs`` (epochs 1000-1199, 2000-2199, ... with the
    defaults); ``schedule: always`` keeps ``weight`` on from the first iteration."""

    #: ``joint`` (official code: every iteration one step of the divergence network, then a fresh
    #: forward of it and one step of the convergence network) or ``sequential`` (the divergence
    #: network alone for ``divergence_iterations``, then the convergence network alone)
    mode: str = "joint"
    #: sequential mode: iterations of the first stage (0 = half of optim.iterations)
    divergence_iterations: int = 0
    #: divergence loss weight (diver_w)
    weight: float = 2e-5
    #: triplet margins of siblings (11-12, 21-22) and cousins (11-21 ...); cousins get the larger one
    margin_same: float = 2e-5
    margin_diff: float = 5e-5
    #: extra weight of the sibling terms (decay_rate)
    sibling_weight: float = 0.8
    #: true: the divergence loss trains the network (the paper); false: it is only logged, as in
    #: the released code, which turns it into a Python float before adding it (no gradient)
    in_graph: bool = True
    #: ``official`` (the epoch schedule above) or ``always``
    schedule: str = "official"
    #: iterations per epoch for the schedule; 0 = training images // batch size (the official
    #: N_train / batch)
    epoch_iterations: int = 0
    start_epoch: int = 200
    period_epochs: int = 1000
    on_epochs: int = 200
    halve_epochs: int = 2000


@dataclass
class CycleConfig:
    """SRResCycGAN's LR side (:mod:`realsr.train.cycle`): an LR generator, an LR-domain
    discriminator and the cycle LR -> SR -> LR. Off while ``weight`` is 0."""

    #: L1 cycle loss weight (SRResCycGAN: 10)
    weight: float = 0.0
    #: adversarial weight of the LR generator against the LR discriminator
    gan_weight: float = 1.0
    #: LR generator arguments (``nf``, ``blocks``)
    generator_args: dict = field(default_factory=dict)
    #: LR-domain discriminator (a ``discriminator.arch`` name) and its arguments
    discriminator: str = "patchgan"
    discriminator_args: dict = field(default_factory=dict)


@dataclass
class DDNSRConfig:
    """DDNSR (:mod:`realsr.train.ddnsr`, METHODS.md 4): the degradation network trained with the
    reconstruction network (``model``) on unpaired clean HR (``data.train``) and real LR
    (``source``) crops. Used when ``method: ddnsr``."""

    #: folder of real LR photos (its ``LR/`` subfolder when it has one); ``--source-data`` sets it
    source: Optional[str] = None
    #: ``dual`` (HR + real LR, the paper) or ``single`` (the LR input replaced by zeros: the ablation)
    input: str = "dual"
    #: degradation-network loss weights (official 0.1, 1.0, 10.0)
    content_weight: float = 0.1
    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    #: VGG19 layers (pre-activation) of the content and cycle losses (official block3_conv4, block2_conv2)
    content_layer: str = "conv3_4"
    cycle_layer: str = "conv2_2"
    #: ``vgg`` (official) or ``pixel`` (MSE on the images themselves; needs no VGG19 weights)
    features: str = "vgg"
    #: local torchvision VGG19 weights (default: ``losses.perceptual.vgg_weights``)
    vgg_weights: Optional[str] = None
    #: ImageNet mean/std normalisation before VGG (official: none, raw [0, 1] RGB)
    vgg_input_norm: bool = False
    #: degradation network arguments: ``nf`` (64), ``blocks`` (8), ``source_layers`` (4)
    network: dict = field(default_factory=dict)
    #: the LR-domain discriminator D_down (official ``ddnsr_vgg`` 128 features, 3 stages) and its arguments
    discriminator: str = "ddnsr_vgg"
    discriminator_args: dict = field(default_factory=dict)
    #: clear every optimiser's moments at each ``optim.schedule.milestones`` (official: new Adam per phase)
    reset_optimizers: bool = True


@dataclass
class EngineConfig:
    #: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    device: str = "auto"
    #: ``fp32``, ``bf16`` or ``fp16`` autocast (CUDA only; fp32 elsewhere)
    precision: str = "fp32"
    #: channels_last memory format: ``auto`` = on CUDA
    channels_last: str = "auto"
    #: torch.compile the generator (and discriminator); in distributed runs the DDP-wrapped module is
    #: compiled, so that compilation splits the graph at DDP's gradient buckets (overlapping the
    #: all-reduce with the backward pass)
    compile: bool = False
    #: torch.compile backend: ``inductor`` (generated kernels), ``aot_eager`` (graph capture and
    #: autograd without code generation: for debugging, and what the tests use), ``cudagraphs``
    compile_backend: str = "inductor"
    #: torch.compile mode (inductor only): ``default``, ``reduce-overhead`` (CUDA graphs: fewer
    #: kernel launches for small batches), ``max-autotune``, ``max-autotune-no-cudagraphs``
    compile_mode: str = "default"
    #: deterministic algorithms (slower on CUDA; CPU runs are deterministic anyway)
    deterministic: bool = False


@dataclass
class LogConfig:
    #: log losses every N iterations (also the NaN/Inf check interval)
    every: int = 10
    #: validate every N iterations (0 = only at the end)
    val_every: int = 500
    #: write a checkpoint every N iterations (and at the end)
    save_every: int = 500
    #: checkpoints kept (oldest removed)
    keep: int = 2
    #: validation sample crops saved per validation
    samples: int = 4
    #: HR side of the saved sample crops
    sample_size: int = 128
    #: progress bar
    progress: bool = True
    #: TensorBoard event files in RUN/tensorboard when the package is installed
    tensorboard: bool = True


@dataclass
class TrainConfig:
    name: str = "run"
    scale: int = 4
    seed: int = 0
    #: ``standard`` (one generator, optional GAN) or ``d2c`` (D2C-SR's divergence and convergence
    #: networks, ``model.arch: d2csr``; settings in ``d2c``) or ``ddnsr`` (DDNSR's degradation
    #: network trained with the model on unpaired data; settings in ``ddnsr``)
    method: str = "standard"
    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    log: LogConfig = field(default_factory=LogConfig)
    d2c: D2CConfig = field(default_factory=D2CConfig)
    cycle: CycleConfig = field(default_factory=CycleConfig)
    ddnsr: DDNSRConfig = field(default_factory=DDNSRConfig)


_CHOICES = {
    "method": ("standard", "d2c", "ddnsr"),
    "ddnsr.input": ("dual", "single"),
    "ddnsr.features": ("vgg", "pixel"),
    "d2c.mode": ("joint", "sequential"),
    "d2c.schedule": ("official", "always"),
    "optim.convergence.type": ("adam", "adamw"),
    "data.degradation.mode": ("pool", "classic", "highorder", "bicubic"),
    "losses.pixel.kind": ("l1", "l2", "charbonnier"),
    "losses.perceptual.criterion": ("l1", "l2", "fro"),
    "losses.gan.kind": ("ragan", "vanilla", "lsgan", "hinge"),
    "losses.tv.kind": ("l1", "l2", "gradient_difference"),
    "losses.ms_ssim.small_images": ("error", "shrink_window"),
    "optim.generator.type": ("adam", "adamw"),
    "optim.discriminator.type": ("adam", "adamw"),
    "optim.schedule.type": ("multistep", "cosine", "constant"),
    "engine.precision": ("fp32", "bf16", "fp16"),
    "engine.channels_last": ("auto", "on", "off"),
    "engine.compile_backend": ("inductor", "aot_eager", "cudagraphs"),
    "engine.compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
}


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against (and mildly coerced to) the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise UsageError(f"config key {key}: expected a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):  # YAML 1.1 reads "1e6" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    elif tp is dict:
        if isinstance(value, dict):
            return dict(value)
    if value is None:
        raise UsageError(f"config key {key}: may not be null (expected {_type_name(tp)})")
    raise UsageError(f"config key {key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise UsageError(f"config key {prefix}{unknown[0]}: unknown key (known: {', '.join(names)})")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    obj = cls(**kwargs)
    for f in dataclasses.fields(cls):  # nested defaults that arrived as None from YAML
        key = prefix + f.name
        if key in _CHOICES and getattr(obj, f.name) not in _CHOICES[key]:
            raise UsageError(f"config key {key}: {getattr(obj, f.name)!r} is not one of {', '.join(_CHOICES[key])}")
    return obj


def _set(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise UsageError(f"override {dotted}: {p} is not a mapping")
        node = node[p]
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=1e-4"`` -> ``("optim.lr", 1e-4)``; the value is read as YAML."""
    if "=" not in text:
        raise UsageError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UsageError(f"override {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def from_dict(data: dict, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A validated :class:`TrainConfig` from a plain mapping plus ``key=value`` overrides."""
    tree = _plain(data)
    for text in overrides:
        _set(tree, *parse_override(text))
    cfg = _build(TrainConfig, tree)
    check(cfg)
    return cfg


def _plain(data: Any) -> Any:
    return {k: _plain(v) for k, v in data.items()} if isinstance(data, dict) else data


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (None: all defaults) and apply ``key=value`` overrides."""
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise UsageError("config file not found", path) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"cannot read config: {first}", path) from None
        if not isinstance(data, dict):
            raise UsageError("config file must hold a YAML mapping", path)
    try:
        return from_dict(data, overrides)
    except UsageError as e:
        if path is not None and e.path is None and not e.message.startswith("override"):  # not the file's fault
            e.path = os.fspath(path)
        raise


def resume_config(run_dir: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The config to continue the run in ``run_dir``: its ``config.yaml`` with ``overrides``. When
    that file is missing or unreadable (deleted, or cut off by a full disk), the copy every checkpoint
    holds is used instead, with a warning; :class:`UsageError` when there is neither."""
    from . import checkpoint as ckpt

    saved = Path(run_dir) / "config.yaml"
    problem = "missing"
    if saved.is_file():
        try:
            data = yaml.safe_load(saved.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return load_config(saved, overrides)
            problem = "not a YAML mapping"
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            problem = f"unreadable ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
    found = ckpt.latest_checkpoint(Path(run_dir) / "checkpoints")
    if found is None or not isinstance(found[0].get("config"), dict):
        raise UsageError("nothing to resume: no readable config.yaml and no readable checkpoint", run_dir)
    log.warning("config.yaml is %s: using the config saved in %s", problem, found[1])
    return from_dict(found[0]["config"], overrides)


def _non_finite(tree: Any, where: str = "") -> list[tuple[str, float]]:
    """``(dotted key, value)`` of every NaN or infinite float in a nested dict/list (a YAML ``.nan``
    passes every range check, since comparisons with NaN are false, and would reach the optimiser)."""
    if isinstance(tree, float):
        return [] if math.isfinite(tree) else [(where, tree)]
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [hit for k, v in items for hit in _non_finite(v, f"{where}.{k}" if where and isinstance(k, str)
                                                      else f"{where}[{k}]" if where else str(k))]


def check(cfg: TrainConfig) -> None:
    """Consistency rules that single fields cannot express."""
    def bad(msg: str) -> None:
        raise UsageError(f"config: {msg}")

    if cfg.scale < 1:
        bad(f"scale must be >= 1, got {cfg.scale}")
    for where, value in _non_finite(to_dict(cfg)):
        bad(f"{where} must be a finite number, got {value}")
    if isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**63:
        bad(f"seed must be an integer in [0, 2^63), got {cfg.seed}")
    d = cfg.data
    if d.patch_size < cfg.scale or d.patch_size % cfg.scale:
        bad(f"data.patch_size ({d.patch_size}) must be a positive multiple of the scale ({cfg.scale})")
    if d.batch_size < 1:
        bad("data.batch_size must be >= 1")
    if cfg.optim.accumulate < 1 or d.batch_size % cfg.optim.accumulate:
        bad(f"data.batch_size ({d.batch_size}) must be a multiple of optim.accumulate ({cfg.optim.accumulate})")
    if cfg.optim.iterations < 1:
        bad("optim.iterations must be >= 1")
    if not 0 <= cfg.optim.ema < 1:
        bad(f"optim.ema must be in [0, 1), got {cfg.optim.ema}")
    if d.workers < 0 or d.prefetch < 1:
        bad("data.workers must be >= 0 and data.prefetch >= 1")
    e = cfg.engine
    if e.compile_mode != "default" and e.compile_backend != "inductor":
        bad(f"engine.compile_mode {e.compile_mode} needs engine.compile_backend: inductor, not {e.compile_backend}")
    if d.degradation is not None and d.degradation.mode == "pool" and not d.degradation.pool:
        bad("data.degradation.mode is pool but data.degradation.pool is not set")
    if d.degradation is not None and d.degradation.mode == "pool" and d.degradation.pool_noise and d.noise_pool:
        bad("data.noise_pool is set and data.degradation adds pool noise too (set data.degradation.pool_noise: "
            "false, or data.noise_pool: null), else the noise is added twice")
    if cfg.losses.gan.weight > 0 and not cfg.discriminator.arch:
        bad("losses.gan.weight > 0 needs discriminator.arch")
    if cfg.losses.perceptual.weight > 0 and not cfg.losses.perceptual.vgg_weights:
        bad("losses.perceptual.weight > 0 needs losses.perceptual.vgg_weights (a local VGG19 file; nothing is downloaded)")
    for k in ("pixel", "perceptual", "gan", "tv", "ssim", "ms_ssim"):
        if getattr(cfg.losses, k).weight < 0:
            bad(f"losses.{k}.weight must be >= 0")
    if not any(getattr(cfg.losses, k).weight > 0 for k in ("pixel", "perceptual", "gan", "tv", "ssim", "ms_ssim")):
        bad("every loss weight is 0")
    _check_ssim(cfg, bad)
    for name in ("generator", "discriminator", "convergence"):
        o = getattr(cfg.optim, name)
        if len(o.betas) != 2 or o.lr <= 0:
            bad(f"optim.{name}: lr must be > 0 and betas two numbers")
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in o.betas):
            bad(f"optim.{name}.betas must be two numbers in [0, 1), got {o.betas}")
        if o.weight_decay < 0:
            bad(f"optim.{name}.weight_decay must be >= 0, got {o.weight_decay}")
    s = cfg.optim.schedule
    if s.gamma <= 0 or s.warmup < 0 or cfg.optim.grad_clip < 0:
        bad("optim.schedule.gamma must be > 0, optim.schedule.warmup >= 0 and optim.grad_clip >= 0")
    if any(not isinstance(m, int) for m in s.milestones):
        bad("optim.schedule.milestones must be integers")
    if any(not isinstance(p, int) or p < 1 for p in s.periods):
        bad("optim.schedule.periods must be positive integers")
    if s.restart_weights and len(s.restart_weights) != len(s.periods):
        bad("optim.schedule.restart_weights needs one weight per period")
    for k in ("every", "keep", "sample_size", "save_every"):
        if getattr(cfg.log, k) < 1:
            bad(f"log.{k} must be >= 1")
    for k in ("val_every", "samples"):
        if getattr(cfg.log, k) < 0:
            bad(f"log.{k} must be >= 0")
    if not 0 <= d.mixup.prob <= 1 or d.mixup.alpha <= 0:
        bad("data.mixup.prob must be in [0, 1] and data.mixup.alpha > 0")
    if cfg.cycle.weight < 0 or cfg.cycle.gan_weight < 0:
        bad("cycle.weight and cycle.gan_weight must be >= 0")
    if cfg.losses.value_range <= 0:
        bad("losses.value_range must be > 0 (1 or 255)")
    if d.val_images < 0 or d.val_crop < 0:
        bad("data.val_images and data.val_crop must be >= 0")
    if d.val_crop % cfg.scale:
        bad(f"data.val_crop ({d.val_crop}) must be a multiple of the scale ({cfg.scale})")
    if d.val_crop and d.val_crop < 2 * cfg.scale + 11:
        bad(f"data.val_crop ({d.val_crop}) leaves no room for the {cfg.scale}-px border and the 11-px SSIM window "
            f"(at least {2 * cfg.scale + 11})")


    if cfg.method == "d2c":
        if cfg.model.arch != "d2csr":
            bad(f"method d2c trains the d2csr architecture, not model.arch {cfg.model.arch!r}")
        if any(getattr(cfg.losses, k).weight > 0 for k in ("gan", "perceptual", "tv", "ssim", "ms_ssim")):
            bad("method d2c uses losses.pixel only (the branch and convergence losses); set the other weights to 0")
        if cfg.losses.pixel.weight <= 0:
            bad("method d2c needs losses.pixel.weight > 0")
        c = cfg.d2c
        if min(c.weight, c.margin_same, c.margin_diff, c.sibling_weight) < 0:
            bad("d2c.weight, margins and sibling_weight must be >= 0")
        if c.divergence_iterations < 0 or c.divergence_iterations >= cfg.optim.iterations and c.mode == "sequential":
            bad(f"d2c.divergence_iterations ({c.divergence_iterations}) must be in [0, optim.iterations)")
        if c.epoch_iterations < 0 or min(c.period_epochs, c.halve_epochs) < 1 or c.on_epochs < 0 or c.start_epoch < 0:
            bad("d2c.epoch_iterations, start_epoch and on_epochs must be >= 0; period_epochs and halve_epochs >= 1")
        if cfg.cycle.weight > 0:
            bad("method d2c has no cycle branch (set cycle.weight: 0)")
    elif cfg.model.arch == "d2csr":
        bad("model.arch d2csr is trained with method: d2c")
    if cfg.method == "ddnsr":
        c = cfg.ddnsr
        if cfg.scale < 2 or cfg.scale & (cfg.scale - 1):
            bad(f"method ddnsr needs a power-of-2 scale (its degradation network downsamples by stride-2 stages), not {cfg.scale}")
        if not c.source:
            bad("method ddnsr needs ddnsr.source, a folder of real LR photos (or give --source-data)")
        if d.degradation is not None or d.noise_pool or d.mixup.prob > 0 or cfg.cycle.weight > 0:
            bad("method ddnsr learns its own degradation: leave data.degradation, data.noise_pool, data.mixup "
                "and cycle off")
        if min(c.content_weight, c.adv_weight, c.cycle_weight) < 0:
            bad("ddnsr.content_weight, adv_weight and cycle_weight must be >= 0")
        if max(c.content_weight, c.adv_weight, c.cycle_weight) == 0:
            bad("ddnsr: content_weight, adv_weight and cycle_weight are all 0, so the degradation network learns nothing")
        known = {"nf": int, "blocks": int, "source_layers": int}
        for k, v in c.network.items():
            if k not in known:
                bad(f"ddnsr.network: unknown key {k!r} (known: {', '.join(known)}; the scale and input come from "
                    "scale and ddnsr.input)")
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "blocks" else 1):
                bad(f"ddnsr.network.{k} must be an integer >= {0 if k == 'blocks' else 1}, got {v!r}")
        if c.features == "vgg" and (c.content_weight > 0 or c.cycle_weight > 0) \
                and not (c.vgg_weights or cfg.losses.perceptual.vgg_weights):
            bad("ddnsr.features: vgg needs ddnsr.vgg_weights (or losses.perceptual.vgg_weights), a local VGG19 "
                "file; or set ddnsr.features: pixel")
        from .vgg import LAYER_INDEX

        for k in ("content_layer", "cycle_layer"):
            if getattr(c, k) not in LAYER_INDEX:
                bad(f"ddnsr.{k}: unknown VGG19 layer {getattr(c, k)!r} (conv1_1 ... conv5_4, relu.., pool..)")


def _check_ssim(cfg: TrainConfig, bad: Any) -> None:
    """``losses.ssim`` / ``losses.ms_ssim``: the window, constants and scale weights, and that the
    training patches are big enough for the window at every scale (so a run cannot fail at its
    first iteration)."""
    for name in ("ssim", "ms_ssim"):
        c = getattr(cfg.losses, name)
        if c.weight <= 0:
            continue
        if c.window < 1 or c.window % 2 == 0:
            bad(f"losses.{name}.window must be an odd number >= 1, got {c.window}")
        if c.sigma <= 0 or c.k1 <= 0 or c.k2 <= 0:
            bad(f"losses.{name}.sigma, k1 and k2 must be > 0")
        if c.window > cfg.data.patch_size:
            bad(f"losses.{name}.window ({c.window}) is larger than data.patch_size ({cfg.data.patch_size})")
    m = cfg.losses.ms_ssim
    if m.weight <= 0:
        return
    w = m.scale_weights
    if not w or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in w):
        bad("losses.ms_ssim.scale_weights must be a non-empty list of numbers >= 0 (one per scale)")
    coarsest = cfg.data.patch_size
    for _ in range(len(w) - 1):  # the 2x2 mean keeps ceil(side / 2) (losses.ms_ssim_sides)
        coarsest = (coarsest + 1) // 2
    if m.small_images == "error" and coarsest < m.window:
        bad(f"losses.ms_ssim: a {cfg.data.patch_size}-px patch is {coarsest} px at scale {len(w)}, smaller than "
            f"the {m.window}-px window (use a bigger data.patch_size, fewer losses.ms_ssim.scale_weights or "
            "losses.ms_ssim.small_images: shrink_window)")


def to_dict(cfg: TrainConfig) -> dict:
    """The resolved configuration as a plain mapping (what ``RUN/config.yaml`` holds)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
