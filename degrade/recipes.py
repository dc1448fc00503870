"""Random degradation recipes: draw the steps (:mod:`realsr.degrade.pipeline`) of one pair.

Each ``sample_*`` function is pure: given a NumPy ``Generator``, the HR size (rows, cols; already
mod-cropped to a multiple of ``scale``) and the mode's parameters, it returns the list of steps with
every random choice made. Modes:

- ``pool`` (Impressionism, METHODS.md 2b.3/2b.5): a pool kernel, blur, keep every S-th pixel from 0,
  tiles of zero-mean real noise covering the LR.
- ``classic`` (Samsung-SLSI NTIRE 2020, METHODS.md 6; parameter meanings are [INFERENCE], unverified
  against the paper): isotropic Gaussian blur (15x15, sigma in [0.2, 3] HR px), one of nearest /
  bilinear / bicubic / Lanczos3 downscaling, Gaussian (sigma in [0, 5] DN) and/or Poisson (peak in
  [50, 150]) noise, optional JPEG.
- ``bicubic``: MATLAB ``imresize`` bicubic with antialiasing (METHODS.md 7.4).
- ``highorder``: Real-ESRGAN's second-order pipeline (Wang et al. 2021, its published default
  ranges): blur, resize, noise, JPEG, twice, then a final resize + sinc filter and JPEG in random order.
- learned modes (:data:`realsr.degrade.learned.LEARNED_MODES`, e.g. ``dsgan``): one ``learned``
  step run by a loaded network (:mod:`realsr.degrade.learned`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from realsr.errors import RealsrError, UsageError
from realsr.resize import METHODS

from .learned import LEARNED_MODES, WEIGHTS_HELP, learned_step

MODES = ("pool", "classic", "bicubic", "highorder", *LEARNED_MODES)
NOISE_CHOICES = ("none", "gaussian", "poisson", "both")


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**63 - 1))


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _params_json(p: Any) -> dict[str, Any]:
    """A dataclass as plain JSON types (tuples become lists, as after a round trip through a file)."""
    return json.loads(json.dumps(asdict(p)))


def _check_range(name: str, r: tuple[float, float], lo: float = 0.0, hi: float = math.inf) -> None:
    if len(r) != 2 or not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{name} must be a range [a, b] with {lo:g} <= a <= b <= {hi:g}, got {list(r)}")


# ----------------------------------------------------------------------------------------- classic
@dataclass(frozen=True)
class ClassicParams:
    """Ranges of the classic multi-degradation (defaults: the Samsung-SLSI NTIRE 2020 paper's ranges).

    ``sigma``: Gaussian blur std (HR px) range; ``kernel_size``: its support; ``methods``: the
    downscaling kernels, one drawn per image; ``antialias``: widen them when downscaling (off: the
    blur is the anti-aliasing, as in a camera); ``noise``: the noise kinds drawn from per image;
    ``gaussian_sigma`` (DN on 0-255) and ``poisson_peak`` (photon-count scale) ranges;
    ``jpeg_prob`` and ``jpeg_quality`` range.
    """

    sigma: tuple[float, float] = (0.2, 3.0)
    kernel_size: int = 15
    methods: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "lanczos3")
    antialias: bool = False
    noise: tuple[str, ...] = ("gaussian", "poisson", "both")
    gaussian_sigma: tuple[float, float] = (0.0, 5.0)
    poisson_peak: tuple[float, float] = (50.0, 150.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        _check_range("sigma", self.sigma, 1e-3)
        _check_range("gaussian_sigma", self.gaussian_sigma)
        _check_range("poisson_peak", self.poisson_peak, 1e-3)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ValueError(f"methods must be some of {', '.join(METHODS)}, got {list(self.methods)}")
        if not self.noise or any(n not in NOISE_CHOICES for n in self.noise):
            raise ValueError(f"noise must be some of {', '.join(NOISE_CHOICES)}, got {list(self.noise)}")
        if not 0 <= self.jpeg_prob <= 1:
            raise ValueError(f"jpeg_prob must be in [0, 1], got {self.jpeg_prob}")

    def to_json(self) -> dict[str, Any]:
        return _params_json(self)


def sample_classic(rng: np.random.Generator, hr_shape: tuple[int, int], scale: int,
                   p: ClassicParams = ClassicParams()) -> list[dict[str, Any]]:
    """Steps of one classic degradation of an HR of ``hr_shape`` (multiple of ``scale``)."""
    h, w = hr_shape
    s = _uniform(rng, p.sigma)
    steps: list[dict[str, Any]] = [
        {"op": "blur", "kernel": {"type": "gaussian", "size": p.kernel_size, "sigma_x": s, "sigma_y": s, "theta": 0.0}},
        {"op": "resize", "method": p.methods[int(rng.integers(len(p.methods)))], "size": [h // scale, w // scale],
         "antialias": p.antialias},
    ]
    kind = p.noise[int(rng.integers(len(p.noise)))]
    if kind in ("gaussian", "both"):
        steps.append({"op": "gaussian_noise", "sigma": _uniform(rng, p.gaussian_sigma), "gray": False, "seed": _seed(rng)})
    if kind in ("poisson", "both"):
        steps.append({"op": "poisson_noise", "peak": _uniform(rng, p.poisson_peak), "scale": 1.0, "gray": False,
                      "seed": _seed(rng)})
    if rng.random() < p.jpeg_prob:
        steps += [{"op": "clip"}, {"op": "jpeg", "quality": int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))}]
    return steps


# ----------------------------------------------------------------------------------------- bicubic
def bicubic_steps(hr_shape: tuple[int, int], scale: int, bit_depth: int | None = 8) -> list[dict[str, Any]]:
    """MATLAB ``imresize(HR, 1/scale)`` (bicubic, antialiased) of a mod-cropped HR. With
    ``bit_depth`` 8 or 16, MATLAB's integer semantics: rounded to that depth after each 1-D pass, as
    MATLAB does on uint8/uint16 images (how the benchmark LR files were made); None: float."""
    h, w = hr_shape
    step: dict[str, Any] = {"op": "resize", "method": "bicubic", "size": [h // scale, w // scale], "antialias": True}
    if bit_depth:
        step["round_passes"] = 2**bit_depth - 1
    return [step]


# --------------------------------------------------------------------------------------- highorder
@dataclass(frozen=True)
class StageParams:
    """One stage of the second-order pipeline (Real-ESRGAN's option names in brackets)."""

    blur_prob: float = 1.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)  # [kernel_range]
    # kernel types and probabilities [kernel_list, kernel_prob]
    kernel_types: tuple[str, ...] = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sigma: tuple[float, float] = (0.2, 3.0)  # [blur_sigma], HR px
    beta_generalized: tuple[float, float] = (0.5, 4.0)  # [betag_range]
    beta_plateau: tuple[float, float] = (1.0, 2.0)  # [betap_range]
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep [resize_prob]
    resize_range: tuple[float, float] = (0.15, 1.5)  # [resize_range]
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_sigma: tuple[float, float] = (1.0, 30.0)  # DN [noise_range]
    poisson_scale: tuple[float, float] = (0.05, 3.0)  # [poisson_scale_range]
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple[int, int] = (30, 95)  # [jpeg_range]


KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
SECOND_STAGE = StageParams(blur_prob=0.8, sigma=(0.2, 1.5), beta_generalized=(0.5, 4.0), beta_plateau=(1.0, 2.0),
                           resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2), noise_sigma=(1.0, 25.0),
                           poisson_scale=(0.05, 2.5))


@dataclass(frozen=True)
class HighOrderParams:
    """Real-ESRGAN's degradation (defaults: its published ``train_realesrgan_x4plus.yml``).

    ``methods``: resize kernels drawn per resize (Real-ESRGAN: area, bilinear, bicubic);
    ``final_sinc_prob``: the final sinc filter's probability; ``poisson_peak``: Poisson photon scale
    (Real-ESRGAN uses 2^ceil(log2(#grey levels)), 256 for 8-bit images).
    """

    first: StageParams = StageParams()
    second: StageParams = SECOND_STAGE
    second_stage_prob: float = 1.0
    final_sinc_prob: float = 0.8
    methods: tuple[str, ...] = ("area", "bilinear", "bicubic")
    poisson_peak: float = 256.0

    def __post_init__(self) -> None:
        for name, st in (("first", self.first), ("second", self.second)):
            try:
                if len(st.kernel_types) != len(st.kernel_probs) or abs(sum(st.kernel_probs) - 1) > 1e-6:
                    raise ValueError("kernel_types and kernel_probs must have the same length and the probs sum to 1")
                if any(t not in KERNEL_KINDS for t in st.kernel_types):
                    raise ValueError(f"kernel_types must be some of {', '.join(KERNEL_KINDS)}")
                if len(st.resize_probs) != 3 or abs(sum(st.resize_probs) - 1) > 1e-6 or min(st.resize_probs) < 0:
                    raise ValueError("resize_probs (up, down, keep) must be three probabilities summing to 1")
                if not st.kernel_sizes or any(int(k) != k or k < 1 or k % 2 == 0 for k in st.kernel_sizes):
                    raise ValueError("kernel_sizes must be odd positive integers (the kernel centre is a pixel)")
                _check_range("sigma", st.sigma, 1e-3)
                _check_range("beta_generalized", st.beta_generalized, 1e-3)
                _check_range("beta_plateau", st.beta_plateau, 1e-3)
                _check_range("resize_range", st.resize_range, 1e-3)
                if not st.resize_range[0] <= 1 <= st.resize_range[1]:
                    raise ValueError("resize_range must contain 1 (down from its low end, up to its high end)")
                _check_range("noise_sigma", st.noise_sigma)
                _check_range("poisson_scale", st.poisson_scale)
                _check_range("jpeg_quality", st.jpeg_quality, 1, 100)
                for p in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
                    if not 0 <= getattr(st, p) <= 1:
                        raise ValueError(f"{p} must be in [0, 1]")
            except (TypeError, ValueError) as e:
                raise ValueError(f"highorder {name} stage: {e}") from None
        if not self.methods or any(m not in METHODS for m in self.methods):
            raise ValueError(f"methods must be some of {', '.join(METHODS)}")
        if not self.poisson_peak > 0:
            raise ValueError("poisson_peak must be > 0")
        for p in ("second_stage_prob", "final_sinc_prob"):
            if not 0 <= getattr(self, p) <= 1:
                raise ValueError(f"{p} must be in [0, 1]")

    def to_json(self) -> dict[str, Any]:
        return _params_json(self)

    @classmethod
    def from_overrides(cls, obj: Any) -> "HighOrderParams":
        """Real-ESRGAN's defaults with the keys of ``obj`` (a mapping, e.g. read from YAML: stage
        sections merge key by key) replaced; ValueError naming the key for unknown keys and values
        of the wrong kind (YAML gives strings or lists where numbers belong)."""
        base = cls().to_json()
        _check_like(obj, base, "")
        for key, value in obj.items():
            if isinstance(base[key], dict):
                base[key].update(value)
            else:
                base[key] = value
        return cls.from_json(base)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "HighOrderParams":
        def stage(d: dict[str, Any]) -> StageParams:
            return StageParams(**{f.name: tuple(d[f.name]) if isinstance(d[f.name], list) else d[f.name]
                                  for f in fields(StageParams) if f.name in d})
        return cls(first=stage(obj["first"]), second=stage(obj["second"]),
                   **{k: tuple(v) if isinstance(v, list) else v for k, v in obj.items() if k not in ("first", "second")})


def _check_like(value: Any, default: Any, where: str) -> None:
    """ValueError unless ``value`` has the shape of ``default`` (a mapping with known keys, a list
    of numbers or names, a number), naming the key."""
    name = where or "the parameters"
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a mapping of keys, got {type(value).__name__} {value!r}")
        for k, v in value.items():
            if k not in default:
                raise ValueError(f"unknown key {f'{where}.' if where else ''}{k} (known: {', '.join(default)})")
            _check_like(v, default[k], f"{where}.{k}" if where else str(k))
    elif isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a list like {list(default)}, got {value!r}")
        for v in value:
            _check_like(v, default[0], f"{name} item")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a name, got {value!r}")
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {value!r}")


def random_kernel_spec(rng: np.random.Generator, st: StageParams) -> dict[str, Any]:
    """A Real-ESRGAN-style random kernel spec (:mod:`realsr.degrade.kernel_family`)."""
    size = int(st.kernel_sizes[int(rng.integers(len(st.kernel_sizes)))])
    if rng.random() < st.sinc_prob:
        # Real-ESRGAN: omega in [pi/3, pi] for small kernels, [pi/5, pi] otherwise
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return {"type": "sinc", "size": size, "cutoff": float(rng.uniform(lo, math.pi))}
    kind = st.kernel_types[int(rng.choice(len(st.kernel_types), p=np.asarray(st.kernel_probs) / sum(st.kernel_probs)))]
    sx = _uniform(rng, st.sigma)
    if kind.endswith("aniso"):
        sy, theta = _uniform(rng, st.sigma), float(rng.uniform(-math.pi, math.pi))
    else:
        sy, theta = sx, 0.0
    spec: dict[str, Any] = {"type": "gaussian", "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta}
    if kind.startswith("generalized"):
        spec.update(type="generalized", beta=_beta(rng, st.beta_generalized))
    elif kind.startswith("plateau"):
        spec.update(type="plateau", beta=_beta(rng, st.beta_plateau))
    return spec


def _beta(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    """BasicSR's shape draw: U(lo, 1) or U(1, hi) with probability 1/2 each (so beta < 1 half the time)."""
    lo, hi = lo_hi
    return float(rng.uniform(lo, 1.0)) if rng.random() < 0.5 and lo < 1 else float(rng.uniform(max(1.0, lo), max(1.0, hi)))


def _stage(rng: np.random.Generator, st: StageParams, size: tuple[int, int], base: tuple[int, int],
           p: HighOrderParams) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    steps: list[dict[str, Any]] = []
    if rng.random() < st.blur_prob:
        steps.append({"op": "blur", "kernel": random_kernel_spec(rng, st)})
    kind = int(rng.choice(3, p=np.asarray(st.resize_probs)))
    f = (float(rng.uniform(1.0, st.resize_range[1])) if kind == 0
         else float(rng.uniform(st.resize_range[0], 1.0)) if kind == 1 else 1.0)
    new = (max(1, int(base[0] * f)), max(1, int(base[1] * f)))
    if new != size:
        steps.append({"op": "resize", "method": p.methods[int(rng.integers(len(p.methods)))], "size": list(new),
                      "antialias": True})
    gray = bool(rng.random() < st.gray_noise_prob)
    if rng.random() < st.gaussian_noise_prob:
        steps.append({"op": "gaussian_noise", "sigma": _uniform(rng, st.noise_sigma), "gray": gray, "seed": _seed(rng)})
    else:
        steps.append({"op": "poisson_noise", "peak": p.poisson_peak, "scale": _uniform(rng, st.poisson_scale),
                      "gray": gray, "seed": _seed(rng)})
    steps += [{"op": "clip"}, {"op": "jpeg", "quality": int(rng.integers(st.jpeg_quality[0], st.jpeg_quality[1] + 1))}]
    return steps, new


def sample_highorder(rng: np.random.Generator, hr_shape: tuple[int, int], scale: int,
                     p: HighOrderParams = HighOrderParams()) -> list[dict[str, Any]]:
    """Steps of one second-order degradation; the LR is ``hr_shape / scale`` exactly."""
    h, w = hr_shape
    lr = (h // scale, w // scale)
    steps, size = _stage(rng, p.first, (h, w), (h, w), p)
    if rng.random() < p.second_stage_prob:
        more, size = _stage(rng, p.second, size, lr, p)
        steps += more
    final_resize = {"op": "resize", "method": p.methods[int(rng.integers(len(p.methods)))], "size": list(lr),
                    "antialias": True}
    sinc = ([{"op": "blur", "kernel": {"type": "sinc", "size": int(p.second.kernel_sizes[int(rng.integers(len(p.second.kernel_sizes)))]),
                                        "cutoff": float(rng.uniform(math.pi / 3, math.pi))}}]
            if rng.random() < p.final_sinc_prob else [])
    jpeg = [{"op": "clip"}, {"op": "jpeg", "quality": int(rng.integers(p.second.jpeg_quality[0], p.second.jpeg_quality[1] + 1))}]
    # Real-ESRGAN: [resize + sinc, JPEG] or [JPEG, resize + sinc], with equal probability
    steps += ([final_resize] + sinc + jpeg) if rng.random() < 0.5 else (jpeg + [final_resize] + sinc)
    return steps


# -------------------------------------------------------------------------------------------- pool
def sample_pool(rng: np.random.Generator, hr_shape: tuple[int, int], scale: int, pool: Any,
                noise: bool = True) -> list[dict[str, Any]]:
    """Steps of one Impressionism degradation with ``pool`` (a :class:`realsr.degrade.pool.Pool`):
    a kernel drawn uniformly, blur, every ``scale``-th pixel from 0, real-noise tiles covering the LR."""
    from .pool_degrade import draw_noise_tiles

    if pool.scale != scale:
        raise UsageError(f"the pool was built for x{pool.scale}, not x{scale}", pool.record)
    k, entry = pool.random_kernel(rng)
    if min(hr_shape) < k.shape[0]:
        raise RealsrError(f"HR {hr_shape[1]}x{hr_shape[0]} is smaller than the {k.shape[0]}-px kernel")
    steps: list[dict[str, Any]] = [{"op": "blur", "kernel": {"type": "pool", "file": entry["file"]}},
                                   {"op": "subsample", "scale": scale}]
    if noise:
        lr = (math.ceil(hr_shape[0] / scale), math.ceil(hr_shape[1] / scale))
        steps.append({"op": "pool_noise", "tiles": draw_noise_tiles(lr, pool, rng)})
    return steps


@dataclass(frozen=True)
class ModeParams:
    """The parameters of every mode (only the chosen mode's are used and recorded)."""

    classic: ClassicParams = field(default_factory=ClassicParams)
    highorder: HighOrderParams = field(default_factory=HighOrderParams)
    pool_noise: bool = True


def sample_steps(mode: str, rng: np.random.Generator, hr_shape: tuple[int, int], scale: int,
                 params: ModeParams = ModeParams(), pool: Any = None, bit_depth: int | None = 8,
                 learned: Any = None) -> list[dict[str, Any]]:
    """The steps of one pair in ``mode`` (one of :data:`MODES`); ``bit_depth`` of the HR (8, 16, or
    None for float) sets the per-pass rounding of ``bicubic``; ``learned``: the loaded
    :class:`~realsr.degrade.learned.LearnedDegrader` of a learned mode."""
    if mode == "pool":
        if pool is None:
            raise UsageError("--mode pool needs --pool POOL")
        return sample_pool(rng, hr_shape, scale, pool, params.pool_noise)
    if mode == "classic":
        return sample_classic(rng, hr_shape, scale, params.classic)
    if mode == "bicubic":
        return bicubic_steps(hr_shape, scale, bit_depth)
    if mode == "highorder":
        return sample_highorder(rng, hr_shape, scale, params.highorder)
    if mode in LEARNED_MODES:
        if learned is None or learned.mode != mode:
            raise UsageError(f"--mode {mode} needs --weights FILE ({WEIGHTS_HELP.get(mode, 'its network')})")
        if learned.scale != scale:
            raise UsageError(f"the {mode} degrader was loaded for x{learned.scale}, not x{scale}")
        return [learned_step(learned, rng)]
    raise UsageError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
