"""SR architectures: ``build(name, **arch_args)``, ``names()``, and the :class:`SRNet` contract
(:mod:`realsr.train.models.base`). Registered: ``bicubic``, ``d2csr``, ``edsr``, ``rcan``, ``rrdbnet``,
``srrescgan``. GAN discriminators (not SRNets) are in :mod:`.discriminators`."""

from . import bicubic, d2csr, edsr, rcan, rrdbnet, srrescgan  # noqa: F401  (registration)
from .base import SRNet, arch_class, build, names, register

__all__ = ["SRNet", "arch_class", "build", "names", "register"]
