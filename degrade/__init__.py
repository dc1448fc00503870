"""Degradation: analytic and estimated (KernelGAN) blur kernels, real-noise pools, degradation operators.

Public API: :func:`estimate_kernel` / :func:`estimate_kernels` (KernelGAN, batched),
:func:`collect_noise`, :class:`Pool` (``Pool.load(path)``), :func:`build_pool`; degrading:
:func:`degrade_pair` / :func:`regenerate` (one image, every mode), :func:`apply_steps`,
:func:`degrade_dataset`, the mode parameters, learned degradations (:class:`LearnedSpec`,
:func:`load_degrader`; the networks need torch) and :func:`write_realism_report`. The batched torch
operators are in :mod:`realsr.degrade.ops` (imported on demand: it needs torch).
"""

from .build_pool import PoolSettings, build_pool, discover_sources
from .degrade_dataset import DegradeSettings, degrade_dataset
from .degrade_pair import clean_up, degrade_pair, pair_seed, regenerate
from .estimate import KernelEstimate, estimate_kernel, estimate_kernels
from .kernelgan_params import KernelGANParams
from .kernels import KernelChecks
from .learned import LEARNED_MODES, LearnedSpec, load_degrader
from .noise import NoiseParams, collect_noise, zero_mean
from .pool import Pool
from .pipeline import apply_steps
from .pool_degrade import degrade_with_pool, pool_noise
from .realism import compare_sets, image_figures, write_realism_report
from .recipes import MODES, ClassicParams, HighOrderParams, ModeParams

__all__ = [
    "LEARNED_MODES", "MODES", "ClassicParams", "DegradeSettings", "HighOrderParams", "KernelChecks", "KernelEstimate",
    "KernelGANParams", "LearnedSpec", "ModeParams", "NoiseParams", "Pool", "PoolSettings", "apply_steps", "build_pool",
    "clean_up", "collect_noise", "compare_sets", "degrade_dataset", "degrade_pair", "degrade_with_pool",
    "discover_sources", "estimate_kernel", "estimate_kernels", "image_figures", "load_degrader", "pair_seed",
    "pool_noise", "regenerate", "write_realism_report", "zero_mean",
]
