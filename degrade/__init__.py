"""Degradation: analytic and estimated (KernelGAN) blur kernels, real-noise pools, degradation operators.

Public API: :func:`estimate_kernel` / :func:`estimate_kernels` (KernelGAN, batched),
:func:`collect_noise`, :class:`Pool` (``Pool.load(path)``), :func:`build_pool`.
"""

from .build_pool import PoolSettings, build_pool, discover_sources
from .estimate import KernelEstimate, estimate_kernel, estimate_kernels
from .kernelgan_params import KernelGANParams
from .kernels import KernelChecks
from .noise import NoiseParams, collect_noise, zero_mean
from .pool import Pool
from .pool_degrade import degrade_with_pool, pool_noise

__all__ = [
    "KernelChecks", "KernelEstimate", "KernelGANParams", "NoiseParams", "Pool", "PoolSettings", "build_pool",
    "collect_noise", "degrade_with_pool", "discover_sources", "estimate_kernel", "estimate_kernels", "pool_noise", "zero_mean",
]
